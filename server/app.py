"""The application factory.

The application factory reads and validates the configuration once, builds the parts the app
is made of (token verifier, credential cache, limiter) and registers one blueprint per
concern. Everything the app is made of can be read in ``create_app``.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from flask import Flask
from flask_cors import CORS
from werkzeug.middleware.proxy_fix import ProxyFix

from server import observability
from server.auth import bearer as auth
from server.auth import dev_login
from server.auth.identity import user_key
from server.auth.ratelimit import UserRateLimit
from server.bucket.access import ServerBucket
from server.callbacks import api as callback_api
from server.callbacks.keys import PublicKeyStore
from server.callbacks.params import callback_options
from server.config import MIN_JWT_SECRET_BYTES, ConfigError, load_settings
from server.credentials import api as token_api
from server.credentials.cache import CredentialCache
from server.credentials.sts_client import AliyunStsClient, StsClient
from server.destinations import api as destinations_api
from server.destinations.catalog import Destinations, load_destinations
from server.errors import bound_json_depth, refuse_oversize_requests, register_error_handlers
from server.events.outbox import Outbox
from server.metrics import api as metrics_api
from server.origins import flask_cors_origin
from server.post_policy import api as post_policy_api
from server.services import EXTENSION_KEY, Services
from server.uploads import api as uploads_api
from server.uploads.grant_log import GrantLog
from server.uploads.records import UploadRecords, default_database_url, make_engine
from server.uppy import api as uppy_api
from server.web import health, openapi, pages

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 1024 * 1024


def _page_folder(name: str) -> Path:
    """Where the page's ``templates`` or ``static`` folder is.

    A wheel carries them inside the package (``server/templates``, ``server/static``: see
    setup.cfg's package_dir); a checkout or an editable install has them only at the
    repository's top level (docs/architecture.md), next to ``server/``.
    """
    packaged = files("server").joinpath(name)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return ROOT / name


def _environment() -> dict[str, str]:
    """The process environment over a ``.env`` file in the working directory, if any."""
    values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    values.update(os.environ)
    return values


class OssgateFlask(Flask):
    """Flask, with ``ensure_sync`` answered once per function instead of on every call.

    Flask asks ``inspect.iscoroutinefunction`` about the view and about every request hook,
    on every request: about 8 µs of a warm token request that a bare endpoint answers in
    about 100. ossgate's views and hooks never change once registered, so each answer is
    kept (async ones are still wrapped, as Flask does).
    """

    #: Functions answered; past this many (nothing ossgate registers comes close) answers
    #: are no longer kept, so nothing can make the table grow without bound.
    MAX_SYNC_ANSWERS = 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_answers: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        answer = self._sync_answers.get(func)
        if answer is None:
            answer = super().ensure_sync(func)
            if len(self._sync_answers) < self.MAX_SYNC_ANSWERS:
                self._sync_answers[func] = answer
        return answer


def settle_heap() -> None:
    """Collect once, then leave everything alive now out of the garbage collector's passes.

    A started app holds some 100 MiB of long-lived objects (Flask, SQLAlchemy, oss2,
    cryptography, the compiled statements, the key store); the collector's full passes walked
    all of them again and again, which cost a warm token request about a tenth of its CPU
    against a bare Flask worker's small heap. ``gc.freeze`` moves them to a generation no
    pass visits; objects made later are collected as before. Called when a server's app is
    built from the environment (a gunicorn worker), not for tests' apps or CLI commands,
    which come and go in one process.
    """
    gc.collect()
    gc.freeze()


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    sts_client: StsClient | None = None,
    serving: bool = True,
    settle: bool = True,
) -> Flask:
    """Build the ossgate Flask application.

    Configuration comes from ``OSSGATE_*`` / ``ALIBABA_CLOUD_*`` variables (environment, then
    ``.env``). ``test_config``, when given, is used *instead* of the environment (its other
    keys, such as ``TESTING``, go to ``app.config``), so tests never depend on the machine's
    variables. Raises ConfigError naming the variable when the configuration is unusable.

    ``serving=False`` builds the parts for commands that answer no HTTP request (the worker,
    ``uploads reconcile``, ``events``): the JWT settings are not required, and the app gets
    no routes at all, so it could not vend a credential even if someone served it.

    Built from the environment (``server:create_app()`` under gunicorn), the process's heap
    is then settled (``settle_heap``), unless ``settle=False`` (the CLI).
    """
    app = OssgateFlask(
        "server",  # the package's name: instance folder and logger as before the split
        instance_relative_config=True,
        template_folder=str(_page_folder("templates")),
        static_folder=str(_page_folder("static")),
    )
    source = dict(test_config) if test_config is not None else _environment()
    settings = load_settings(source, serving=serving)
    if test_config is not None:
        app.config.update(
            {k: v for k, v in test_config.items() if not k.startswith(("OSSGATE_", "ALIBABA_"))}
        )
    app.config["OSSGATE"] = settings
    # No endpoint takes more than a small JSON or form body; refuse bigger ones (413) before
    # anything reads them. The callback endpoint has a tighter cap of its own.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    register_error_handlers(app)
    refuse_oversize_requests(app)
    bound_json_depth(app)
    observability.init_app(app, settings)
    if settings.jwt_secret_too_short:
        log.warning(
            "OSSGATE_JWT_SECRET is shorter than %d bytes (RFC 7518 §3.2): tokens signed with it "
            "can be guessed offline; use a random secret of 32 bytes or more",
            MIN_JWT_SECRET_BYTES,
        )
    if serving:
        auth.init_app(app, settings)
        dev_login.check_dev_login_config(settings)
    destinations = load_destinations(settings)
    _check_callback_fits(destinations)
    sts = sts_client or AliyunStsClient(settings)
    database_url = settings.database_url or default_database_url(app.instance_path)
    credentials = CredentialCache(
        sts,
        duration_seconds=settings.sts_duration_seconds,
        refresh_margin_seconds=settings.sts_refresh_margin_seconds,
        max_entries=settings.credential_cache_size,
    )
    records = UploadRecords(make_engine(database_url))
    app.extensions[EXTENSION_KEY] = Services(
        settings=settings,
        destinations=destinations,
        sts_client=sts,
        credentials=credentials,
        rate_limit=UserRateLimit(settings),
        records=records,
        key_store=PublicKeyStore(settings.callback_trusted_key_urls),
        server_bucket=ServerBucket(settings, list(destinations), credentials),
        grant_log=GrantLog(records.engine),
        events=Outbox(records.engine),
    )
    if not serving:
        return app
    if settings.cors_origins:
        CORS(
            app,
            resources={
                r"/api/*": {"origins": [flask_cors_origin(o) for o in settings.cors_origins]}
            },
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "Date"],  # Date: credentials timed on our clock
            max_age=600,
        )
    pages.allow_module_imports(app, settings)

    if settings.trusted_proxies:
        # X-Forwarded-For/-Proto/-Host/-Prefix from that many proxies in front of us; the
        # prefix matters for callbacks, whose signature covers the path OSS called.
        n = settings.trusted_proxies
        # Flask's documented way to add WSGI middleware; its types call wsgi_app a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_prefix=n)  # type: ignore[method-assign]

    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(token_api.bp)
    app.register_blueprint(post_policy_api.bp)
    app.register_blueprint(uploads_api.bp)
    app.register_blueprint(destinations_api.bp)
    app.register_blueprint(uppy_api.bp)
    app.register_blueprint(callback_api.bp)
    app.register_blueprint(openapi.bp)
    metrics_api.init_app(app, settings)
    if settings.dev_users:
        app.register_blueprint(dev_login.bp)
    if test_config is None and settle:
        settle_heap()
    return app


def _check_callback_fits(destinations: Destinations) -> None:
    """Build the callback parameters once for the longest possible user key, at start."""
    longest = user_key("x" * 64)
    for destination in destinations:
        try:
            callback_options(destination, longest)
        except ValueError as exc:
            raise ConfigError(f"OSSGATE_CALLBACK_BODY / OSSGATE_CALLBACK_URL: {exc}") from None
