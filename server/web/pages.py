"""The upload page at ``/``: the HTML shell, the ali-oss bundle it loads and its security headers.

Everything the page does happens in the browser (``static/app.js`` on top of the reusable
``static/ossgate-upload.js``); the server only renders what the page must know before it can
ask the API anything: whether the demo login exists, which origins may hand it a bearer token
by ``postMessage``, where the API lives, and where the ali-oss bundle comes from.

The response carries a strict Content-Security-Policy: scripts and styles only from this
origin (plus the CDN bundle when one is configured), no inline code, and network access only
to this origin and the one OSS origin the page uploads to. A page that holds upload
credentials must not be able to send them anywhere else, even after an injection.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from flask_cors import CORS

from server.bucket.urls import sdk_origin, upload_origins
from server.config import Settings
from server.origins import flask_cors_origin

log = logging.getLogger(__name__)
bp = Blueprint("pages", __name__)

#: Where ``make`` copies the npm ``ali-oss`` browser bundle (never committed).
VENDOR_BUNDLE = "vendor/aliyun-oss-sdk.min.js"
#: Where ``make`` copies the npm ``uppy`` bundle and its styles, for the page at ``/uppy``.
UPPY_BUNDLE = "vendor/uppy.min.js"
UPPY_STYLES = "vendor/uppy.min.css"
#: The files another origin's page may load (``static/``-relative): the upload module's entry,
#: its parts, the ali-oss bundle it needs and the Uppy bundle (classic, ES module and styles,
#: for ``<script crossorigin>``, ``import`` and ``<link crossorigin>``); not the page's own
#: code (app.js, i18n.js, uppy-page.js).
MODULE_FILES = (
    r"(?:ossgate-upload\.js|upload/[A-Za-z0-9_-]+\.js|vendor/aliyun-oss-sdk\.min\.js"
    r"|vendor/uppy\.min\.(?:js|mjs|css))"
)
#: The emulator settings the demo page may show; the root secret is never among them.
_SHOWN_EMULATOR_SETTINGS = (
    "OSSGATE_OSS_ENDPOINT",
    "OSSGATE_OSS_BUCKET",
    "OSSGATE_OSS_REGION",
    "OSSGATE_STS_ENDPOINT",
    "OSSGATE_STS_ROLE_ARN",
)


@dataclass(frozen=True)
class SdkSource:
    """Where the page loads ali-oss from: ``integrity`` is set for a CDN build only."""

    url: str
    integrity: str | None
    origin: str | None  # the CDN's origin, for script-src; None when self-hosted


def sdk_source(settings: Settings) -> SdkSource:
    """The self-hosted bundle, or ``OSSGATE_OSS_SDK_URL`` with its ``OSSGATE_OSS_SDK_SRI``
    (config requires the hash with the URL)."""
    url = settings.oss_sdk_url
    if not url:
        return SdkSource(url_for("static", filename=VENDOR_BUNDLE), None, None)
    parts = urlsplit(url)
    return SdkSource(url, settings.oss_sdk_sri, f"{parts.scheme}://{parts.netloc}")


def oss_origin(settings: Settings) -> str:
    """The one origin ali-oss sends this app's uploads to (server.bucket.urls)."""
    return sdk_origin(settings.oss_bucket, settings.oss_region, settings.oss_endpoint)


def message_origins(settings: Settings) -> tuple[str, ...]:
    """Origins allowed to embed the page and hand it a bearer token by ``postMessage``.

    The same origins that may call the API (``OSSGATE_CORS_ORIGINS``); a ``*`` there is not
    carried over: handing tokens to a page must name who may do it.
    """
    return tuple(o for o in settings.cors_origins if o != "*")


def content_security_policy(settings: Settings, sdk: SdkSource) -> str:
    """The page's CSP: only this origin, the OSS upload origin and the CDN bundle if any."""
    scripts = ["'self'"] + ([sdk.origin] if sdk.origin else [])
    # Only the host apps that may hand the page a token may frame it (clickjacking on the
    # login form otherwise); modern browsers prefer this over X-Frame-Options.
    frames = list(message_origins(settings)) or ["'none'"]
    directives = [
        "default-src 'none'",
        f"script-src {' '.join(scripts)}",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' "
        + " ".join(upload_origins(settings.oss_bucket, settings.oss_region, settings.oss_endpoint)),
        "form-action 'self'",
        "base-uri 'none'",
        f"frame-ancestors {' '.join(frames)}",
    ]
    return "; ".join(directives)


def _check_bundle(sdk: SdkSource) -> bool:
    """Whether the self-hosted bundle is there (``make`` copies it); warn once if not.

    The page itself tells the user too (no ``window.OSS``), in their language.
    """
    if sdk.origin is not None:
        return True
    static = current_app.static_folder
    present = static is not None and (Path(static) / VENDOR_BUNDLE).is_file()
    if not present and not current_app.config.get("_OSSGATE_BUNDLE_WARNED"):
        current_app.config["_OSSGATE_BUNDLE_WARNED"] = True
        log.warning("static/%s is missing: run `make` to copy the ali-oss bundle", VENDOR_BUNDLE)
    return present


@bp.get("/")
def index() -> Response:
    """The upload page (HTML). No secrets in it: the bearer token stays in the browser."""
    settings: Settings = current_app.config["OSSGATE"]
    sdk = sdk_source(settings)
    _check_bundle(sdk)
    emulator = current_app.config.get("EMULATOR_SETTINGS") or {}
    html = render_template(
        "index.html",
        sdk=sdk,
        dev_login=bool(settings.dev_users),
        message_origins=" ".join(message_origins(settings)),
        form_upload=settings.form_upload,
        form_upload_types=",".join(settings.form_upload_types),
        emulator={k: emulator[k] for k in _SHOWN_EMULATOR_SETTINGS if k in emulator},
        api={
            "token": url_for("tokens.sts_token"),
            "uploads": url_for("uploads.list_uploads"),
            "login": url_for("dev_login.login") if settings.dev_users else "",
            "post_policy": url_for("post_policy.post_policy"),
        },
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = content_security_policy(settings, sdk)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/uppy")
def uppy_page() -> Response:
    """Uppy's Dashboard uploading through ``POST /api/uppy/sign`` (static/uppy-page.js).

    The same sign-in as ``/`` (the demo login or a host application's token) and the same
    strict policy, plus ``blob:`` images: the Dashboard previews chosen pictures from blobs.
    """
    settings: Settings = current_app.config["OSSGATE"]
    static = current_app.static_folder
    present = static is not None and (Path(static) / UPPY_BUNDLE).is_file()
    if not present and not current_app.config.get("_OSSGATE_UPPY_WARNED"):
        current_app.config["_OSSGATE_UPPY_WARNED"] = True
        log.warning("static/%s is missing: run `make` to copy the Uppy bundle", UPPY_BUNDLE)
    html = render_template(
        "uppy.html",
        uppy_js=UPPY_BUNDLE,
        uppy_css=UPPY_STYLES,
        dev_login=bool(settings.dev_users),
        login_url=url_for("dev_login.login") if settings.dev_users else "",
        base_url=url_for("pages.index"),
        message_origins=" ".join(message_origins(settings)),
    )
    response = Response(html, mimetype="text/html")
    policy = content_security_policy(settings, SdkSource("", None, None))
    response.headers["Content-Security-Policy"] = policy.replace(
        "img-src 'self' data:", "img-src 'self' data: blob:"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def allow_module_imports(app: Flask, settings: Settings) -> None:
    """Let pages of ``OSSGATE_CORS_ORIGINS`` import the upload module from this server.

    A ``<script type="module">`` (and everything it imports) and a ``<script crossorigin>`` are
    fetched in CORS mode, so another origin can run ``import {Uploader} from
    "https://ossgate.example/static/ossgate-upload.js"`` only if the answer names its origin.
    The same origins as the API's, for GET only and without credentials (the files are
    public; the module authenticates with a bearer token, never a cookie). ``Vary: Origin``
    always: whether the header is there depends on the request's Origin, so a cache in front
    must not hand one origin's answer (or an answer without it) to another.
    """
    if not settings.cors_origins:
        return
    static_path = app.static_url_path or "/static"
    pattern = f"^{static_path}/{MODULE_FILES}$"
    CORS(
        app,
        resources={pattern: {"origins": [flask_cors_origin(o) for o in settings.cors_origins]}},
        methods=["GET"],
        supports_credentials=False,
        intercept_exceptions=False,
    )
    module_path = re.compile(pattern)

    @app.after_request
    def _vary_on_origin(response: Response) -> Response:
        if request.endpoint == "static" and module_path.match(request.path):
            response.vary.add("Origin")
        return response
