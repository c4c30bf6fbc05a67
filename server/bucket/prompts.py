"""What the ``ossgate bucket`` and ``ossgate cors`` commands share on the terminal.

Both change a bucket setting after asking, refuse to ask where nobody can answer, and turn
every ``BucketAdminError`` into one ``Error: …`` line (exit code 1), the bucket unchanged.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from server.bucket.errors import BucketAdminError


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
