"""``ossgate emulator``: run the local STS + OSS stand-in in the foreground."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from server.emulator import config as defaults
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator


@click.command("emulator")
@click.option("--host", default=defaults.DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option("--port", default=defaults.DEFAULT_OSS_PORT, show_default=True, help="OSS port.")
@click.option(
    "--sts-port",
    type=int,
    default=None,
    help=f"STS port [default: --port + 1, so {defaults.DEFAULT_STS_PORT}; 0 with --port 0].",
)
@click.option(
    "--data-dir",
    default="emulator-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where objects, CORS rules and the emulator's keys are kept across restarts.",
)
@click.option("--bucket", default=defaults.DEFAULT_BUCKET, show_default=True)
@click.option("--region", default=defaults.DEFAULT_REGION, show_default=True)
@click.option("--access-key-id", default=defaults.DEFAULT_ACCESS_KEY_ID, show_default=True)
@click.option(
    "--access-key-secret",
    default=defaults.DEFAULT_ACCESS_KEY_SECRET,
    help="Root AccessKey secret of the emulated account (default: a fixed demo secret).",
)
@click.option(
    "--role-max-session-seconds",
    type=click.IntRange(3600, 43200),
    default=defaults.DEFAULT_ROLE_MAX_SESSION_SECONDS,
    show_default=True,
    help="The role's MaxSessionDuration: the longest DurationSeconds AssumeRole grants.",
)
@click.option(
    "--sts-latency-ms", default=0, show_default=True, help="Delay every STS answer (benchmarks)."
)
@click.option(
    "--allow-remote-callbacks",
    is_flag=True,
    help="Let upload callbacks reach non-loopback addresses (off: only 127.0.0.0/8 and ::1).",
)
def emulator_command(
    host: str,
    port: int,
    sts_port: int | None,
    data_dir: Path,
    bucket: str,
    region: str,
    access_key_id: str,
    access_key_secret: str,
    role_max_session_seconds: int,
    sts_latency_ms: int,
    allow_remote_callbacks: bool,
) -> None:
    """Run a local STS + OSS stand-in for one account, one bucket and one uploader role.

    On start it prints the settings a server needs, one KEY=VALUE per line, so its output can
    be saved as a .env file.
    """
    if sts_port is None:
        # Beside the OSS port, so one --port moves both (and --port 0 picks two free ones).
        sts_port = port + 1 if port else 0
    config = EmulatorConfig(
        host=host,
        oss_port=port,
        sts_port=sts_port,
        data_dir=data_dir,
        bucket=bucket,
        region=region,
        access_key_id=access_key_id,
        access_key_secret=access_key_secret,
        role_max_session_seconds=role_max_session_seconds,
    )
    emulator = Emulator(config, allow_remote_callbacks=allow_remote_callbacks)
    emulator.faults.update({"sts_latency_ms": sts_latency_ms})
    try:
        emulator.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host} (OSS port {port}, STS port {sts_port}): "
            f"{exc.strerror or exc}. Pick free ports with --port and --sts-port."
        ) from None
    for name, value in emulator.settings().items():
        click.echo(f"{name}={value}")
    click.echo(
        f"# emulator ready: OSS {emulator.oss_endpoint} (bucket {bucket}), "
        f"STS {emulator.sts_endpoint}; data in {data_dir}. Ctrl-C stops it.",
        err=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
