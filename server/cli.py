"""The ``ossgate`` command: Flask's CLI group on ``create_app`` plus ossgate's own commands."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from server import create_app
from server.demo import demo_command
from server.emulator.cli import emulator_command


@click.group(cls=FlaskGroup, create_app=create_app)
def main() -> None:
    """ossgate: browser uploads straight to Alibaba Cloud OSS."""


main.add_command(emulator_command)
main.add_command(demo_command)
