"""``ossgate bucket``: show, plan, apply and restore everything the bucket needs.

Unlike ``ossgate cors``, these commands run on the app's configuration: what the bucket needs
depends on the destinations (their prefixes and whether they allow overwrites), the browser
origins and the bucket, all of which the app reads and validates at start. The admin key is
the one in ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET when the command runs, or
``--access-key-id``/``--access-key-secret``: run them with an admin key, not the server's own
(which needs nothing but ``sts:AssumeRole``).

A thin click layer over ``server.bucket.bucket_setup``: every ``BucketAdminError`` becomes one
``Error: …`` line and exit code 1 with the bucket unchanged; ``plan --exit-code`` exits 2 when
``apply`` would change something.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from server.bucket.access import oss_endpoint
from server.bucket.admin_settings import AdminSettings, load_admin_settings
from server.bucket.bucket_setup import (
    BucketAdmin,
    BucketPlan,
    admin_clients,
    apply_bucket,
    configured_destinations,
    for_bucket,
    restore_file,
)
from server.bucket.bucket_setup import plan_bucket as make_plan
from server.bucket.cors_config import read_cors
from server.bucket.cors_plan import render_configuration
from server.bucket.cors_rules import DEFAULT_MAX_AGE
from server.bucket.errors import OriginError
from server.bucket.overwrite_config import read_overwrite
from server.bucket.overwrite_rules import covering_rule, protected_prefix, render, rule_id
from server.bucket.prompts import (
    BACKUP_FOLDER,
    admin_key_options,
    change_options,
    confirm_change,
    one_line_errors,
)
from server.destinations.destination import Destination
from server.services import services

#: ``plan --exit-code``'s exit code when ``apply`` would change the bucket (0: nothing to do).
PLAN_CHANGES_EXIT_CODE = 2


@dataclass(frozen=True)
class _Bucket:
    """The configured bucket, the admin clients on it and the destinations that use it."""

    settings: AdminSettings
    admin: BucketAdmin
    destinations: list[Destination]
    origins: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"bucket {self.settings.bucket} at {self.settings.endpoint}"


def _configured(access_key_id: str | None, access_key_secret: str | None) -> _Bucket:
    app = services().settings
    settings = load_admin_settings(
        {},
        bucket=app.oss_bucket,
        region=app.oss_region,
        endpoint=oss_endpoint(app),
        access_key_id=access_key_id or app.access_key_id,
        access_key_secret=access_key_secret or app.access_key_secret,
    )
    return _Bucket(
        settings,
        admin_clients(settings),
        for_bucket(configured_destinations(services()), settings.bucket),
        app.cors_origins,
    )


def _plan_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--allow-any-origin",
            is_flag=True,
            help="Accept '*' and wildcard origins in OSSGATE_CORS_ORIGINS for the CORS rule.",
        ),
        click.option(
            "--max-age",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_AGE,
            show_default=True,
            help="The CORS rule's MaxAgeSeconds.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _ask(question: str, yes: bool) -> bool:
    return confirm_change(question, yes, "ossgate bucket plan")


def _backup_dir(given: Path | None) -> Path:
    return given if given is not None else Path(current_app.instance_path) / BACKUP_FOLDER


def _origins(bucket: _Bucket) -> tuple[str, ...]:
    if not bucket.origins:
        raise OriginError(
            "OSSGATE_CORS_ORIGINS is empty: set the origins of the pages that upload "
            "(comma-separated), so the bucket's CORS rule can allow them"
        )
    return bucket.origins


def _plan(bucket: _Bucket, allow_any_origin: bool, max_age: int) -> BucketPlan:
    return make_plan(
        bucket.admin,
        bucket.destinations,
        _origins(bucket),
        max_age=max_age,
        allow_any_origin=allow_any_origin,
    )


def _echo_plan(bucket: _Bucket, plan: BucketPlan) -> None:
    cors_diff, overwrite_diff = plan.diffs(bucket.settings.bucket)
    click.echo(f"CORS of {bucket.where}: {plan.cors.summary()}.")
    if plan.cors.changed and cors_diff:
        click.echo(cors_diff)
    click.echo(f"Overwrite protection of {bucket.where}: {plan.overwrite.summary()}.")
    if plan.overwrite.changed and overwrite_diff:
        click.echo(overwrite_diff)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)


# --------------------------------------------------------------------------- the group


@click.group("bucket")
def bucket_group() -> None:
    """Set the bucket up for the configured destinations: CORS and overwrite protection.

    One plan for everything the bucket needs: the CORS rule the browser SDK needs for
    OSSGATE_CORS_ORIGINS (as `ossgate cors apply` writes it) and an overwrite protection
    rule (ID ossgate-DESTINATION) for each destination that forbids overwrites. Other rules
    are kept as they are. Runs on the app's configuration with the admin key in
    ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET (or --access-key-id/--access-key-secret).
    """


@bucket_group.command("show")
@admin_key_options
@with_appcontext
@one_line_errors
def show_command(access_key_id: str | None, access_key_secret: str | None) -> None:
    """Print the bucket's CORS and overwrite rules and what protects each destination."""
    bucket = _configured(access_key_id, access_key_secret)
    overwrite = read_overwrite(bucket.admin.overwrite)
    click.echo(f"CORS of {bucket.where} (first match wins):")
    for line in render_configuration(read_cors(bucket.admin.cors)):
        click.echo(f"  {line}")
    click.echo(f"Overwrite protection of {bucket.where}:")
    for line in render(overwrite):
        click.echo(f"  {line}")
    for destination in bucket.destinations:
        prefix = protected_prefix(destination)
        rule = covering_rule(overwrite, prefix)
        if destination.overwrite:
            state = "allows overwrites" + (f" (but rule {rule.id} forbids them)" if rule else "")
        elif rule is not None:
            state = f"overwrites refused by rule {rule.id}"
        else:
            state = f"NOT protected: run `ossgate bucket apply` to add {rule_id(destination)}"
        click.echo(f"destination {destination.name} ({destination.prefix_template}): {state}")


@bucket_group.command("plan")
@admin_key_options
@_plan_options
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help=f"Exit {PLAN_CHANGES_EXIT_CODE} when apply would change the bucket (for CI).",
)
@with_appcontext
@click.pass_context
@one_line_errors
def plan_command(
    ctx: click.Context,
    access_key_id: str | None,
    access_key_secret: str | None,
    allow_any_origin: bool,
    max_age: int,
    exit_code: bool,
) -> None:
    """Show what `apply` would change, as diffs (with --exit-code: 2 if something)."""
    bucket = _configured(access_key_id, access_key_secret)
    plan = _plan(bucket, allow_any_origin, max_age)
    _echo_plan(bucket, plan)
    ctx.exit(PLAN_CHANGES_EXIT_CODE if exit_code and plan.changed else 0)


@bucket_group.command("apply")
@admin_key_options
@_plan_options
@change_options("configurations are")
@with_appcontext
@click.pass_context
@one_line_errors
def apply_command(
    ctx: click.Context,
    access_key_id: str | None,
    access_key_secret: str | None,
    allow_any_origin: bool,
    max_age: int,
    backup_dir: Path | None,
    yes: bool,
) -> None:
    """Write the CORS rule and the overwrite protection the destinations need.

    Each setting that changes is backed up first; asks before writing (unless --yes) and
    does nothing when the bucket already matches.
    """
    bucket = _configured(access_key_id, access_key_secret)

    def confirm(plan: BucketPlan) -> bool:
        _echo_plan(bucket, plan)
        return _ask(f"Write these settings to bucket {bucket.settings.bucket}?", yes)

    result = apply_bucket(
        bucket.admin,
        bucket.destinations,
        _origins(bucket),
        backup_dir=_backup_dir(backup_dir),
        max_age=max_age,
        allow_any_origin=allow_any_origin,
        confirm=confirm,
    )
    if result.declined:
        click.echo("Not applied: the bucket is unchanged.")
        ctx.exit(1)
    if not result.changed:
        _echo_plan(bucket, result.plan)
        return
    for setting, path in result.backups:
        click.echo(f"Backed up the previous {setting} to {path.resolve()}")
    click.echo(
        "Applied. Prove it with: ossgate bucket plan --exit-code (exits 0), "
        "ossgate cors check --origin ORIGIN, ossgate doctor"
    )


@bucket_group.command("restore")
@click.argument("backups", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@admin_key_options
@change_options("configurations are")
@with_appcontext
@click.pass_context
@one_line_errors
def restore_command(
    ctx: click.Context,
    backups: tuple[Path, ...],
    access_key_id: str | None,
    access_key_secret: str | None,
    backup_dir: Path | None,
    yes: bool,
) -> None:
    """Put the configuration saved in each BACKUP back (CORS or overwrite protection).

    A backup of "none" deletes that setting; the configuration being replaced is itself
    backed up first.
    """
    bucket = _configured(access_key_id, access_key_secret)
    target_dir = _backup_dir(backup_dir)
    for path in backups:

        def confirm(setting: str, diff: str, path: Path = path) -> bool:
            click.echo(f"{setting} of {bucket.where}: restore {path}")
            click.echo(diff)
            return _ask(f"Replace the {setting} of bucket {bucket.settings.bucket}?", yes)

        result = restore_file(bucket.admin, path, backup_dir=target_dir, confirm=confirm)
        if result.declined:
            click.echo(f"Not restored: the bucket's {result.setting} are unchanged.")
            ctx.exit(1)
        if not result.changed:
            click.echo(f"The {result.setting} of {bucket.where} already match {path}.")
            continue
        if result.backup_path is not None:
            click.echo(f"Backed up the replaced {result.setting} to {result.backup_path.resolve()}")
        if result.deleted:
            click.echo(f"Deleted the bucket's {result.setting}: {path} holds none.")
        else:
            click.echo(f"Restored the {result.setting} from {path}.")
