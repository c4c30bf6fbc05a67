"""What the ``ossgate bucket`` and ``ossgate cors`` commands share on the terminal.

Both change a bucket setting after asking, refuse to ask where nobody can answer, and turn
every ``BucketAdminError`` into one ``Error: …`` line (exit code 1), the bucket unchanged.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from server.bucket.errors import BucketAdminError

#: Where backups go unless ``--backup-dir`` says otherwise, under the app's instance folder,
#: which already holds its state (the SQLite records) and is kept out of version control.
BACKUP_FOLDER = "bucket-backups"


def admin_key_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--access-key-id`` and ``--access-key-secret``: the admin key, when it is not the
    ``ALIBABA_CLOUD_*`` variables'."""
    command = click.option(
        "--access-key-secret",
        metavar="SECRET",
        help="Admin AccessKey secret [default: $ALIBABA_CLOUD_ACCESS_KEY_SECRET]; "
        "prefer the variable, a flag shows up in the process list.",
    )(command)
    return click.option(
        "--access-key-id",
        metavar="ID",
        help="Admin AccessKey id [default: $ALIBABA_CLOUD_ACCESS_KEY_ID].",
    )(command)


def change_options(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--backup-dir`` and ``--yes``, for a command that changes ``what`` (its help text)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")(
            command
        )
        return click.option(
            "--backup-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help=f"Where the previous {what} saved before anything is written "
            f"[default: INSTANCE-FOLDER/{BACKUP_FOLDER}].",
        )(command)

    return decorate


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``BucketAdminError`` into click's one-line ``Error: …`` and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BucketAdminError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def stdin_is_interactive() -> bool:
    """Whether a person can answer a prompt (tests replace this)."""
    return sys.stdin.isatty()


def confirm_change(question: str, yes: bool, plan_command: str) -> bool:
    """True to go ahead: ``--yes``, or a person said so; never a prompt nobody can answer."""
    if yes:
        return True
    if not stdin_is_interactive():
        raise click.ClickException(
            "stdin is not a terminal, so there is nobody to confirm: pass --yes "
            f"(see the change first with `{plan_command}`). Nothing was changed."
        )
    return click.confirm(question, default=False)
