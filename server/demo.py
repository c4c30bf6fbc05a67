"""``ossgate demo``: the whole thing on one machine, with no Aliyun account.

Starts the emulator (STS + OSS) in the background of this process, points the app at it
and serves the app in the foreground. Later steps (CORS rules for the page's origin, a demo
login) are added here as those parts of ossgate land, so ``make demo`` keeps showing
everything there is.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where the app listens.")
@click.option("--port", default=5000, show_default=True, help="The app's port.")
@click.option("--oss-port", default=9000, show_default=True, help="The emulator's OSS port.")
@click.option("--sts-port", default=9001, show_default=True, help="The emulator's STS port.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Emulator data (default: <instance folder>/demo-emulator).",
)
@with_appcontext
def demo_command(host: str, port: int, oss_port: int, sts_port: int, data_dir: Path | None):
    """Run the emulator and the app together, and print where to go."""
    app = current_app._get_current_object()
    data_dir = data_dir or Path(app.instance_path) / "demo-emulator"
    emulator = Emulator(EmulatorConfig(oss_port=oss_port, sts_port=sts_port, data_dir=data_dir))
    try:
        emulator.start()
    except OSError as exc:
        raise click.ClickException(
            f"the emulator cannot listen on ports {oss_port}/{sts_port}: {exc.strerror or exc}. "
            "Stop what uses them or pass --oss-port and --sts-port."
        ) from None
    app.config["EMULATOR_SETTINGS"] = emulator.settings()
    click.echo(f"Emulator: OSS {emulator.oss_endpoint}, STS {emulator.sts_endpoint}")
    click.echo(f"ossgate demo: open http://{host}:{port}/  (Ctrl-C stops everything)")
    try:
        # app.run() refuses to start inside the flask CLI; run_simple is what it would call.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        emulator.stop()
