"""``ossgate cors``: show, plan, apply, restore and check a bucket's CORS rules.

A thin click layer over the ``server.bucket`` package: it reads the options, prints, prompts
and picks exit codes. Every ``BucketAdminError`` becomes one ``Error: …`` line and exit code 1,
with the bucket unchanged. ``plan --exit-code`` exits 2 when ``apply`` would change something,
so CI can gate on it; without the flag a successful ``plan`` exits 0 either way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import Flask
from oss2.models import BucketCors

from server.bucket import (
    DEFAULT_MAX_AGE,
    DEFAULT_PROBE_KEY,
    AdminSettings,
    BucketAdminError,
    CheckReport,
    KnownRules,
    OriginError,
    OssUnreachableError,
    Plan,
    RestorePlan,
    admin_bucket,
    apply_needed_rule,
    check_preflights,
    is_ossgate_rule,
    load_admin_settings,
    origins_from_env,
    parse_origins,
    plan_change,
    read_cors,
    read_environment,
    render_diff,
    restore_backup,
)
from server.bucket.prompts import (
    BACKUP_FOLDER,
    admin_key_options,
    change_options,
    confirm_change,
    one_line_errors,
)

#: ``plan --exit-code``'s exit code when ``apply`` would change the bucket (0: nothing to do).
PLAN_CHANGES_EXIT_CODE = 2


def _instance_folder() -> Path:
    """The app's instance folder (where ``create_app`` keeps its state), found without
    building the app: these commands need none of its configuration. ``create_app`` names
    its Flask app ``server``, and Flask derives the folder from that name alone."""
    return Path(Flask("server").instance_path)


@dataclass(frozen=True)
class _Target:
    """The connection options every command takes; ``None`` means "from the environment"."""

    bucket: str | None
    region: str | None
    endpoint: str | None
    access_key_id: str | None
    access_key_secret: str | None

    def settings(self, env: dict[str, str], *, require_credentials: bool = True) -> AdminSettings:
        return load_admin_settings(
            env,
            bucket=self.bucket,
            region=self.region,
            endpoint=self.endpoint,
            access_key_id=self.access_key_id,
            access_key_secret=self.access_key_secret,
            require_credentials=require_credentials,
        )


def _target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --bucket/--region/--endpoint/--access-key-id/--access-key-secret as one ``target``."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        target = _Target(
            kwargs.pop("bucket"),
            kwargs.pop("region"),
            kwargs.pop("endpoint"),
            kwargs.pop("access_key_id"),
            kwargs.pop("access_key_secret"),
        )
        return command(*args, target=target, **kwargs)

    options = [
        click.option("--bucket", metavar="NAME", help="Bucket [default: $OSSGATE_OSS_BUCKET]."),
        click.option(
            "--region",
            metavar="REGION",
            help="Region such as oss-cn-hangzhou [default: $OSSGATE_OSS_REGION].",
        ),
        click.option(
            "--endpoint",
            metavar="URL",
            help="OSS endpoint [default: $OSSGATE_OSS_ENDPOINT, else https://REGION.aliyuncs.com].",
        ),
    ]
    # The admin key innermost: listed after --endpoint in --help.
    decorated: Callable[..., Any] = admin_key_options(wrapper)
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def _origin_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--origin",
            "origins",
            multiple=True,
            metavar="URL",
            help="A browser origin to allow (repeatable) [default: $OSSGATE_CORS_ORIGINS].",
        ),
        click.option(
            "--allow-any-origin",
            is_flag=True,
            help="Accept '*' and wildcard origins (any matching site's pages could upload).",
        ),
        click.option(
            "--max-age",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_AGE,
            show_default=True,
            help="MaxAgeSeconds: how long browsers may cache a preflight.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _ask(question: str, yes: bool) -> bool:
    return confirm_change(question, yes, "ossgate cors plan")


def _desired_origins(
    origins: Sequence[str], env: dict[str, str], allow_any: bool
) -> tuple[str, ...]:
    return parse_origins(list(origins) or origins_from_env(env), allow_any_origin=allow_any)


def _backup_dir(given: Path | None) -> Path:
    """``--backup-dir``, else the instance folder's, where ``ossgate bucket`` keeps its own."""
    return given if given is not None else _instance_folder() / BACKUP_FOLDER


def _shown(path: Path | None) -> str:
    return str(path.resolve()) if path is not None else "(no backup)"


def _where(settings: AdminSettings) -> str:
    return f"bucket {settings.bucket} at {settings.endpoint}"


def _echo_plan(settings: AdminSettings, plan: Plan) -> None:
    click.echo(f"CORS of {_where(settings)}: {plan.summary()}.")
    diff = render_diff(plan.current, plan.proposed, settings.bucket)
    if plan.changed and diff:
        click.echo(diff)
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)


# --------------------------------------------------------------------------- the group


@click.group("cors")
def cors_group() -> None:
    """Manage the bucket's CORS rules without losing anyone else's.

    PutBucketCors replaces every rule of a bucket; these commands change only the rule
    ossgate needs and keep all others in place. They need an admin AccessKey
    (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET) and OSSGATE_OSS_BUCKET / _REGION / _ENDPOINT, read
    from the environment or ./.env, not the rest of the server's configuration.
    """


# --------------------------------------------------------------------------- show


def _rule_json(number: int, rule: Any) -> dict[str, Any]:
    return {
        "position": number,
        "ossgate": is_ossgate_rule(rule),
        "allowedOrigins": list(rule.allowed_origins),
        "allowedMethods": list(rule.allowed_methods),
        "allowedHeaders": list(rule.allowed_headers),
        "exposeHeaders": list(rule.expose_headers),
        "maxAgeSeconds": rule.max_age_seconds,
    }


def _table(cors: BucketCors) -> list[str]:
    """One row per rule; list cells take one line per value so long origin lists stay legible."""
    titles = ["#", "owner", "AllowedOrigin", "AllowedMethod", "AllowedHeader", "ExposeHeader"]
    titles.append("MaxAge")
    rows: list[list[list[str]]] = []
    for number, rule in enumerate(cors.rules, 1):
        rows.append(
            [
                [str(number)],
                ["ossgate" if is_ossgate_rule(rule) else "-"],
                list(rule.allowed_origins) or ["-"],
                [" ".join(rule.allowed_methods) or "-"],
                list(rule.allowed_headers) or ["-"],
                list(rule.expose_headers) or ["-"],
                [str(rule.max_age_seconds) if rule.max_age_seconds is not None else "-"],
            ]
        )
    widths = [
        max([len(title)] + [len(line) for row in rows for line in row[col]])
        for col, title in enumerate(titles)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    out = [line(titles).rstrip(), line(["-" * w for w in widths]).rstrip()]
    for index, row in enumerate(rows):
        height = max(len(cell) for cell in row)
        if index and height > 1:
            out.append("")
        for i in range(height):
            out.append(line([cell[i] if i < len(cell) else "" for cell in row]).rstrip())
    return out


@cors_group.command("show")
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@one_line_errors
def show_command(target: _Target, as_json: bool) -> None:
    """Print the bucket's current CORS rules (first match wins)."""
    settings = target.settings(read_environment())
    cors = read_cors(admin_bucket(settings))
    if as_json:
        document = {
            "bucket": settings.bucket,
            "endpoint": settings.endpoint,
            "configured": cors is not None,
            "responseVary": None if cors is None else cors.response_vary,
            "rules": []
            if cors is None
            else [_rule_json(n, r) for n, r in enumerate(cors.rules, 1)],
        }
        click.echo(json.dumps(document, indent=2))
        return
    if cors is None:
        click.echo(
            f"{_where(settings)} has no CORS configuration: browsers cannot upload to it. "
            "Run `ossgate cors apply`."
        )
        return
    vary = "" if cors.response_vary is None else f", ResponseVary {str(cors.response_vary).lower()}"
    click.echo(f"CORS of {_where(settings)}: {len(cors.rules)} rule(s), first match wins{vary}")
    for row in _table(cors):
        click.echo(row)


# --------------------------------------------------------------------------- plan / apply


@cors_group.command("plan")
@_target_options
@_origin_options
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help=f"Exit {PLAN_CHANGES_EXIT_CODE} when apply would change the rules (for CI).",
)
@click.pass_context
@one_line_errors
def plan_command(
    ctx: click.Context,
    target: _Target,
    origins: tuple[str, ...],
    allow_any_origin: bool,
    max_age: int,
    exit_code: bool,
) -> None:
    """Show what `apply` would change, as a diff (with --exit-code: 2 if something)."""
    env = read_environment()
    settings = target.settings(env)
    wanted = _desired_origins(origins, env, allow_any_origin)
    plan = plan_change(read_cors(admin_bucket(settings)), wanted, max_age)
    _echo_plan(settings, plan)
    ctx.exit(PLAN_CHANGES_EXIT_CODE if exit_code and plan.changed else 0)


@cors_group.command("apply")
@_target_options
@_origin_options
@change_options("configuration is")
@click.pass_context
@one_line_errors
def apply_command(
    ctx: click.Context,
    target: _Target,
    origins: tuple[str, ...],
    allow_any_origin: bool,
    max_age: int,
    backup_dir: Path | None,
    yes: bool,
) -> None:
    """Merge the rule the browser SDK needs into the bucket's rules, keeping all others.

    Backs up the previous configuration first and asks before writing (unless --yes);
    does nothing when the bucket already matches.
    """
    env = read_environment()
    settings = target.settings(env)
    wanted = _desired_origins(origins, env, allow_any_origin)

    def confirm(plan: Plan) -> bool:
        _echo_plan(settings, plan)
        return _ask(f"Write these CORS rules to bucket {settings.bucket}?", yes)

    result = apply_needed_rule(
        admin_bucket(settings),
        wanted,
        backup_dir=_backup_dir(backup_dir),
        max_age=max_age,
        allow_any_origin=allow_any_origin,
        confirm=confirm,
    )
    if result.declined:
        click.echo("Not applied: the bucket's CORS rules are unchanged.")
        ctx.exit(1)
    if not result.changed:
        _echo_plan(settings, result.plan)
        return
    click.echo(f"Backed up the previous CORS configuration to {_shown(result.backup_path)}")
    click.echo(
        f"Applied: ossgate's rule is #{result.plan.index + 1} of "
        f"{len(result.plan.proposed.rules)}. Prove it with: "
        f"ossgate cors check --origin {wanted[0]}"
    )


# --------------------------------------------------------------------------- restore


@cors_group.command("restore")
@click.argument("backup", type=click.Path(dir_okay=False, path_type=Path))
@_target_options
@change_options("configuration is")
@click.pass_context
@one_line_errors
def restore_command(
    ctx: click.Context, backup: Path, target: _Target, backup_dir: Path | None, yes: bool
) -> None:
    """Put the configuration saved in BACKUP back (a backup of "none" deletes the rules).

    The configuration being replaced is itself backed up first.
    """
    settings = target.settings(read_environment())

    def confirm(plan: RestorePlan) -> bool:
        click.echo(f"CORS of {_where(settings)}: restore {backup}")
        click.echo(render_diff(plan.current, plan.target, settings.bucket))
        return _ask(f"Replace the CORS rules of bucket {settings.bucket}?", yes)

    result = restore_backup(
        admin_bucket(settings), backup, backup_dir=_backup_dir(backup_dir), confirm=confirm
    )
    if result.declined:
        click.echo("Not restored: the bucket's CORS rules are unchanged.")
        ctx.exit(1)
    if not result.changed:
        click.echo(f"CORS of {_where(settings)} already matches {backup}: nothing to do.")
        return
    click.echo(f"Backed up the replaced CORS configuration to {_shown(result.backup_path)}")
    if result.plan.target is None:
        click.echo("Restored: the bucket has no CORS configuration again (DeleteBucketCors).")
    else:
        click.echo(f"Restored {len(result.plan.target.rules)} rule(s) from {backup}.")


# --------------------------------------------------------------------------- check


def _echo_report(report: CheckReport) -> None:
    click.echo(f"Preflight from {report.origin}: OPTIONS {report.url}")
    for result in report.results:
        verdict = "pass" if result.passed else "FAIL"
        click.echo(f"  {result.method:<7} {verdict}  {result.reason}")
    click.echo(f"  {'ETag':<7} {'pass' if report.etag_exposed else 'FAIL'}  {report.etag_reason}")


def _origins_to_check(given: Sequence[str], env: dict[str, str]) -> tuple[str, ...]:
    """``--origin`` values, else the concrete origins of ``OSSGATE_CORS_ORIGINS``.

    A wildcard entry there is no origin a page can have, so it is skipped with a note.
    """
    for wildcard in (o for o in given if "*" in o):
        raise OriginError(
            f"{wildcard!r} is a wildcard, not a page's origin: check a concrete one, such as "
            "https://app.example.com"
        )
    if given:
        return parse_origins(given)
    configured = origins_from_env(env)
    for skipped in (o for o in configured if "*" in o):
        click.echo(
            f"note: not checking {skipped!r} from OSSGATE_CORS_ORIGINS: a wildcard is no "
            "page's origin; pass --origin URL to check one",
            err=True,
        )
    concrete = [o for o in configured if "*" not in o]
    if not concrete:
        raise OriginError(
            "no origin to check: pass --origin URL or set OSSGATE_CORS_ORIGINS (comma-separated)"
        )
    return parse_origins(concrete)


@cors_group.command("check")
@click.option(
    "--origin",
    "origins",
    multiple=True,
    metavar="URL",
    help="A page origin to test (repeatable) [default: each of $OSSGATE_CORS_ORIGINS].",
)
@click.option(
    "--key", default=DEFAULT_PROBE_KEY, show_default=True, help="Object key the preflights name."
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@_target_options
@click.pass_context
@one_line_errors
def check_command(
    ctx: click.Context, origins: tuple[str, ...], key: str, timeout: float, target: _Target
) -> None:
    """Send the preflights ali-oss sends (each method, its headers) and report each one.

    Anonymous OPTIONS requests: nothing in the bucket is read or written. With an admin key
    configured, the bucket's rules are also read to name the cause of a failure. Exits 1 if
    anything fails for any origin.
    """
    env = read_environment()
    settings = target.settings(env, require_credentials=False)
    checked = _origins_to_check(origins, env)
    known: KnownRules | None = None
    if settings.has_credentials:
        try:
            known = KnownRules(read_cors(admin_bucket(settings)))
        except OssUnreachableError:
            raise
        except BucketAdminError as exc:
            click.echo(f"note: cannot read the rules to explain failures: {exc}", err=True)
    any_failed = False
    for origin in checked:
        report = check_preflights(
            settings.endpoint, settings.bucket, origin, known=known, key=key, timeout=timeout
        )
        _echo_report(report)
        checks = len(report.results) + 1
        failed = sum(not r.passed for r in report.results) + (not report.etag_exposed)
        if failed:
            any_failed = True
            click.echo(
                f"{failed} of {checks} checks failed: uploads from {report.origin} will fail. "
                f"To allow this origin: ossgate cors apply --origin {report.origin}"
            )
        else:
            click.echo(f"All {checks} checks passed: ali-oss on {report.origin} can upload.")
    ctx.exit(1 if any_failed else 0)
