"""``ossgate demo``: the whole thing on one machine, with no Aliyun account.

Starts the emulator (STS + OSS) in this process, builds the app on the emulator's settings
with a demo user, sets the bucket up as ``ossgate bucket apply`` would (CORS for the page's
origin, overwrite protection for the upload prefix), runs the worker's sweep in a thread, and
serves the app in the foreground. As more of ossgate lands it joins here, so ``make demo``
always shows everything there is.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

import click
from werkzeug.serving import run_simple

from server.app import create_app
from server.bucket import BucketAdminError, load_admin_settings
from server.bucket.bucket_setup import admin_clients, apply_bucket, configured_destinations
from server.cli.worker import run_worker
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from server.services import EXTENSION_KEY

DEMO_USER = "demo"
DEMO_PASSWORD = "ossgate-demo"  # noqa: S105 - printed for the local demo login
#: The demo's worker sweeps often, so an upload without a callback is judged while you watch.
DEMO_SWEEP_SECONDS = 10


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the app listens.")
@click.option("--port", default=5000, show_default=True, help="The app's port.")
@click.option("--oss-port", default=9000, show_default=True, help="The emulator's OSS port.")
@click.option("--sts-port", default=9001, show_default=True, help="The emulator's STS port.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("instance") / "demo-emulator",
    show_default=True,
    help="Where the emulator keeps the demo's objects.",
)
def demo_command(host: str, port: int, oss_port: int, sts_port: int, data_dir: Path) -> None:
    """Run the emulator and the app together, with a demo login; print where to go."""
    emulator = Emulator(EmulatorConfig(oss_port=oss_port, sts_port=sts_port, data_dir=data_dir))
    try:
        emulator.start()
    except OSError as exc:
        raise click.ClickException(
            f"the emulator cannot listen on ports {oss_port}/{sts_port}: {exc.strerror or exc}. "
            "Stop what uses them or pass --oss-port and --sts-port."
        ) from None
    app_url = f"http://{host}:{port}"
    settings = emulator.settings()
    app = create_app(
        {
            **settings,
            "OSSGATE_JWT_SECRET": secrets.token_urlsafe(48),
            "OSSGATE_DEV_USERS": f"{DEMO_USER}:{DEMO_PASSWORD}",
            "OSSGATE_CORS_ORIGINS": app_url,
            "OSSGATE_CALLBACK_URL": f"{app_url}/oss/callback",
            "OSSGATE_DATABASE_URL": f"sqlite:///{Path(data_dir).resolve() / 'demo-records.db'}",
            "OSSGATE_SWEEP_INTERVAL_SECONDS": str(DEMO_SWEEP_SECONDS),
        }
    )
    app.config["EMULATOR_SETTINGS"] = emulator.settings()
    try:
        # The same code as `ossgate bucket apply` (whose CORS part is `ossgate cors apply`'s),
        # so the demo proves it too; no backups of a bucket only the demo uses.
        applied = apply_bucket(
            admin_clients(load_admin_settings(settings)),
            configured_destinations(app.extensions[EXTENSION_KEY]),
            [app_url],
            backup_dir=None,
        )
    except BucketAdminError as exc:
        emulator.stop()
        raise click.ClickException(f"setting the emulator bucket up failed: {exc}") from None
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
    click.echo(f"Worker: sweeping recently written prefixes every {DEMO_SWEEP_SECONDS} s")
    click.echo("Ctrl-C stops everything.")
    stop_worker = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(app.extensions[EXTENSION_KEY], stop_worker), daemon=True
    )
    worker.start()
    try:
        # app.run() refuses to start inside the flask CLI; run_simple is what it would call.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        stop_worker.set()
        worker.join(timeout=30)
        emulator.stop()
