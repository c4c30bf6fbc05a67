"""The ``ossgate`` command: Flask's CLI group on ``create_app`` plus ossgate's own commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, NoAppException

from server.app import create_app
from server.bucket.bucket_cli import bucket_group
from server.bucket.cors_cli import cors_group
from server.cli.db import db_group
from server.cli.demo import demo_command
from server.cli.doctor import doctor_command
from server.cli.worker import worker_command
from server.config import ConfigError
from server.emulator.cli import emulator_command
from server.events.cli import events_group
from server.uploads.cli import uploads_group


class _NoConfiguration(NoAppException):
    """The app cannot start for want of configuration: one ``Error:`` line and exit code 1.

    A ``NoAppException`` so that Flask's ``--help`` (which loads the app to list its
    commands) prints this line instead of a traceback; shown like a plain ``ClickException``
    (no usage text), since the command line was fine.
    """

    exit_code = 1

    def show(self, file=None) -> None:
        click.ClickException.show(self, file)


#: Commands that answer no HTTP request, so need no JWT settings (create_app's serving=False).
#: Every other command (``run``, ``routes``, ``shell``, ``doctor``) gets the serving app.
NON_SERVING_COMMANDS = frozenset({"uploads", "worker", "events", "db"})


def _command_names() -> list[str]:
    """The names from ``ossgate`` down to the command being run (``["ossgate", "uploads",
    "reconcile"]``); the app is loaded while that command's context is the current one."""
    names = []
    context = click.get_current_context(silent=True)
    while context is not None:
        names.append(context.info_name or "")
        context = context.parent
    return names[::-1]


def _app_for_cli() -> Flask:
    """The app from the environment; a configuration problem is one clear line, no trace."""
    names = _command_names()
    serving = not (len(names) > 1 and names[1] in NON_SERVING_COMMANDS)
    try:
        # Commands run briefly (or, run in a test, inside the tests' process): no settling.
        return create_app(serving=serving, settle=False)
    except ConfigError as exc:
        raise _NoConfiguration(f"configuration: {exc}") from None


# FlaskGroup's own --version reports Python, Flask and Werkzeug; ossgate's names ossgate's
# version, from the installed distribution's metadata (a wheel or an editable install).
@click.group(cls=FlaskGroup, create_app=_app_for_cli, add_version_option=False)
@click.version_option(package_name="ossgate", message="ossgate %(version)s")
def main() -> None:
    """ossgate: browser uploads straight to Alibaba Cloud OSS."""


main.add_command(emulator_command)
main.add_command(demo_command)
main.add_command(uploads_group)
main.add_command(cors_group)
main.add_command(bucket_group)
main.add_command(doctor_command)
main.add_command(worker_command)
main.add_command(db_group)
main.add_command(events_group)
