"""``ossgate demo``: the whole thing on one machine, with no Aliyun account.

Starts the emulator (STS + OSS) in this process, builds the app on the emulator's settings
with a demo user, sets the bucket up as ``ossgate bucket apply`` would (CORS for the page's
origin, overwrite protection for the upload prefix), runs the worker's sweep in a thread, and
serves the app in the foreground. As more of ossgate lands it joins here, so ``make demo``
always shows everything there is.

The rest of the configuration is the user's: every ``OSSGATE_*`` variable of the environment
and ``./.env`` (limits, content types, a destinations file, form uploads, …) applies as it
would to ``ossgate run``, so ``OSSGATE_MAX_UPLOAD_BYTES=1000 make demo`` shows a 1000-byte
limit. Only what the demo needs to own is its own: where the emulator is and its keys, where
callbacks go, how the demo's tokens are signed and who may sign in (and, unless set, where
the records are kept).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

import click
from werkzeug.serving import make_server

from server.app import create_app
from server.bucket import BucketAdminError, load_admin_settings, read_environment
from server.bucket.bucket_setup import (
    ApplyResult,
    admin_clients,
    apply_bucket,
    configured_destinations,
)
from server.cli.worker import run_worker
from server.config import ConfigError
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from server.services import EXTENSION_KEY

DEMO_USER = "demo"
DEMO_PASSWORD = "ossgate-demo"  # noqa: S105 - printed for the local demo login
#: The demo's worker sweeps often, so an upload without a callback is judged while you watch.
DEMO_SWEEP_SECONDS = 10
#: The demo's own options, also read from these variables (``make demo`` passes no flags).
PORT_VARIABLE = "OSSGATE_DEMO_PORT"
#: Settings the demo decides whatever the environment says, besides the emulator's own
#: (``Emulator.settings()``): the demo signs its tokens with a secret of its own (a JWKS URL
#: or algorithms meant for a real identity provider would refuse them), and callbacks must
#: reach this process.
_DEMO_OWNED = frozenset(
    {
        "OSSGATE_DEV_USERS",
        "OSSGATE_CALLBACK_URL",
        "OSSGATE_CALLBACK_HOST",
    }
)
_DEMO_OWNED_PREFIXES = ("OSSGATE_JWT_", "OSSGATE_DEMO_")


def demo_config(
    environment: Mapping[str, str],
    emulator_settings: Mapping[str, str],
    app_url: str,
    data_dir: Path,
) -> dict[str, str]:
    """The demo app's configuration: the user's ``OSSGATE_*`` values over the demo's
    defaults, under what the demo owns.

    ``OSSGATE_CORS_ORIGINS`` keeps the user's origins after the page's own, so a frontend of
    theirs can try the demo too.
    """
    user = {
        name: value
        for name, value in environment.items()
        if name.startswith("OSSGATE_")
        and name not in _DEMO_OWNED
        and name not in emulator_settings
        and not name.startswith(_DEMO_OWNED_PREFIXES)
    }
    origins = [app_url] + [
        o.strip() for o in user.get("OSSGATE_CORS_ORIGINS", "").split(",") if o.strip()
    ]
    return {
        "OSSGATE_DATABASE_URL": f"sqlite:///{data_dir.resolve() / 'demo-records.db'}",
        "OSSGATE_SWEEP_INTERVAL_SECONDS": str(DEMO_SWEEP_SECONDS),
        **user,
        **emulator_settings,
        "OSSGATE_JWT_SECRET": secrets.token_urlsafe(48),
        "OSSGATE_DEV_USERS": f"{DEMO_USER}:{DEMO_PASSWORD}",
        "OSSGATE_CORS_ORIGINS": ",".join(dict.fromkeys(origins)),
        "OSSGATE_CALLBACK_URL": f"{app_url}/oss/callback",
    }


def _listen(host: str, port: int) -> socket.socket:
    """The app's listening socket, bound before anything else starts, so a busy port is one
    clear error (and the URL is printed only once it is true)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise click.ClickException(
            f"cannot listen on host {host!r}: {exc.strerror}. Pass --host (such as 127.0.0.1)."
        ) from None
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise click.ClickException(
            f"the app cannot listen on {host}:{port}: {exc.strerror or exc}. Stop what uses "
            f"it or pass another port with --port (or set {PORT_VARIABLE}, as in "
            f"`{PORT_VARIABLE}={port + 1 if port else 5001} make demo`)."
        ) from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@click.command("demo")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="OSSGATE_DEMO_HOST",
    show_envvar=True,
    help="Where the app listens.",
)
@click.option(
    "--port",
    default=5000,
    show_default=True,
    envvar=PORT_VARIABLE,
    show_envvar=True,
    help="The app's port (0: any free one).",
)
@click.option(
    "--oss-port",
    default=9000,
    show_default=True,
    envvar="OSSGATE_DEMO_OSS_PORT",
    show_envvar=True,
    help="The emulator's OSS port.",
)
@click.option(
    "--sts-port",
    default=9001,
    show_default=True,
    envvar="OSSGATE_DEMO_STS_PORT",
    show_envvar=True,
    help="The emulator's STS port.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("instance") / "demo-emulator",
    show_default=True,
    help="Where the emulator keeps the demo's objects.",
)
def demo_command(host: str, port: int, oss_port: int, sts_port: int, data_dir: Path) -> None:
    """Run the emulator and the app together, with a demo login; print where to go.

    Every OSSGATE_* setting of the environment and ./.env applies (limits, content types,
    destinations, form uploads, …), except the emulator's endpoints and keys, the callback
    URL and the token settings, which the demo owns.
    """
    with contextlib.ExitStack() as running:
        listener = running.enter_context(_listen(host, port))
        app_url = _url(host, listener.getsockname()[1])
        emulator = Emulator(EmulatorConfig(oss_port=oss_port, sts_port=sts_port, data_dir=data_dir))
        try:
            emulator.start()
        except OSError as exc:
            raise click.ClickException(
                f"the emulator cannot listen on ports {oss_port}/{sts_port}: "
                f"{exc.strerror or exc}. Stop what uses them or pass --oss-port and --sts-port."
            ) from None
        running.callback(emulator.stop)
        settings = emulator.settings()
        try:
            app = create_app(demo_config(read_environment(), settings, app_url, data_dir))
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from None
        app.config["EMULATOR_SETTINGS"] = settings
        app_services = app.extensions[EXTENSION_KEY]
        try:
            # The same code as `ossgate bucket apply` (whose CORS part is `ossgate cors
            # apply`'s), so the demo proves it too; no backups of a bucket only the demo uses.
            applied = apply_bucket(
                admin_clients(load_admin_settings(settings)),
                configured_destinations(app_services),
                app_services.settings.cors_origins,
                backup_dir=None,
            )
        except BucketAdminError as exc:
            raise click.ClickException(f"setting the emulator bucket up failed: {exc}") from None
        server = make_server(host, port, app, threaded=True, fd=listener.fileno())
        running.callback(server.server_close)
        _echo_welcome(emulator, applied, app_url, app_services.settings.sweep_interval_seconds)
        stop_worker = threading.Event()
        worker = threading.Thread(target=run_worker, args=(app_services, stop_worker), daemon=True)
        worker.start()
        running.callback(worker.join, timeout=30)
        running.callback(stop_worker.set)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def _echo_welcome(emulator: Emulator, applied: ApplyResult, app_url: str, sweep: int) -> None:
    click.echo(f"Emulator: OSS {emulator.oss_endpoint}, STS {emulator.sts_endpoint}")
    click.echo(f"Bucket CORS: {applied.plan.cors.summary()}")
    click.echo(f"Bucket overwrite protection: {applied.plan.overwrite.summary()}")
    click.echo(f"ossgate demo: open {app_url}/  and sign in as {DEMO_USER} / {DEMO_PASSWORD}")
    click.echo("Try the API:")
    click.echo(
        f"  TOKEN=$(curl -s -X POST {app_url}/api/dev/login -H 'Content-Type: application/json' "
        f'-d \'{{"username": "{DEMO_USER}", "password": "{DEMO_PASSWORD}"}}\' '
        "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')"
    )
    click.echo(f'  curl -s -X POST {app_url}/api/sts-token -H "Authorization: Bearer $TOKEN"')
    click.echo(f"Worker: sweeping recently written prefixes every {sweep} s")
    click.echo("Ctrl-C stops everything.")
