"""``ossgate doctor``: check a deployment's configuration against the real services.

Each check says ok, warn or fail with one line of reason and what to do; the command exits
non-zero when any check fails. Checks change nothing: one AssumeRole for a probe user, one
listing of at most one key under the upload prefix, one DeleteObject of a key that does not
exist (a random name under the upload prefix, outside every user's folder: the only way to
learn whether the server may delete, which the verdict needs, without deleting anything; in
a bucket with versioning it leaves a delete marker), a read of the bucket's overwrite
protection, anonymous CORS preflights, and DNS lookups of the callback hosts (the callback
URL itself is never requested).

Against the emulator (STS and OSS both on loopback addresses) a loopback callback URL is
what the local OSS can call, so it is reported as fine for local use rather than failed.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import click
import oss2
from flask.cli import with_appcontext

from server.auth.identity import user_key
from server.bucket import AdminSettings, BucketAdminError, check_preflights
from server.bucket.access import oss_endpoint
from server.bucket.bucket_setup import configured_destinations
from server.bucket.oss_v2_admin import admin_v2_bucket
from server.bucket.overwrite_config import read_overwrite
from server.bucket.overwrite_rules import covering_rule, protected_prefix
from server.config import MIN_JWT_SECRET_BYTES
from server.credentials.grants import grant_upload
from server.credentials.sts_client import StsError
from server.services import Services, services

#: OSS refuses requests more than 15 minutes off (RequestTimeTooSkewed); warn well before.
SKEW_FAIL_SECONDS = 15 * 60
SKEW_WARN_SECONDS = 60
PROBE_USER = "ossgate-doctor"
#: The delete probe's key, under the upload prefix but in no user's folder (no "/" after it).
DELETE_PROBE = "ossgate-doctor-delete-probe-"
#: Doctor should answer quickly; the bucket check already says when OSS is unreachable.
OVERWRITE_READ_TIMEOUT = 5


@dataclass(frozen=True)
class Finding:
    check: str
    status: str  # "ok", "warn" or "fail"
    detail: str


def _credentials(app: Services) -> Finding:
    try:
        grant = grant_upload(user_key(PROBE_USER), app.destination, app.credentials)
    except StsError as exc:
        return Finding(
            "credentials",
            "fail",
            f"AssumeRole on {app.settings.sts_role_arn} failed ({exc.code}): check "
            "ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET (need sts:AssumeRole on the role) and "
            "OSSGATE_STS_ROLE_ARN",
        )
    until = f"{grant.credentials.expiration:%H:%M}Z"
    return Finding(
        "credentials", "ok", f"AssumeRole works; a user gets {grant.prefix}* until {until}"
    )


def _bucket_and_clock(app: Services, now: Callable[[], datetime]) -> list[Finding]:
    try:
        bucket = app.server_bucket.bucket()
        result = bucket.list_objects(
            prefix=app.destination.prefix_template.split("{")[0], max_keys=1
        )
    except StsError as exc:
        return [Finding("bucket", "fail", f"no server read credentials ({exc.code})")]
    except oss2.exceptions.OssError as exc:
        return [
            Finding(
                "bucket",
                "fail",
                f"listing {app.destination.bucket} at {oss_endpoint(app.settings)} failed "
                f"({exc.code or exc.status}): the role needs oss:ListObjects and oss:GetObject "
                "under the upload prefix (see README, RAM)",
            )
        ]
    findings = [Finding("bucket", "ok", f"{app.destination.bucket} is reachable and listable")]
    date = result.headers.get("Date")
    if not date:
        return [*findings, Finding("clock", "warn", "OSS sent no Date header to compare with")]
    skew = abs((parsedate_to_datetime(date) - now()).total_seconds())
    if skew > SKEW_FAIL_SECONDS:
        status = "fail"
    elif skew > SKEW_WARN_SECONDS:
        status = "warn"
    else:
        status = "ok"
    return [*findings, Finding("clock", status, f"{skew:.0f} s from OSS's clock (limit 900 s)")]


def _delete(app: Services) -> list[Finding]:
    """Whether the server's own credentials may delete under the upload prefix: the verdict
    deletes rejected uploads with them. A DeleteObject of a key that does not exist answers
    204 when allowed and 403 when not, and deletes nothing either way."""
    prefix = app.destination.literal_prefix
    key = f"{prefix}{DELETE_PROBE}{secrets.token_hex(8)}"
    try:
        app.server_bucket.bucket().delete_object(key)
    except StsError as exc:
        return [Finding("delete", "fail", f"no server credentials to try with ({exc.code})")]
    except oss2.exceptions.OssError as exc:
        return [
            Finding(
                "delete",
                "fail",
                f"the server's credentials may not delete under {prefix} "
                f"({exc.code or exc.status}), so rejected uploads would stay: the role needs "
                f"oss:DeleteObject on acs:oss:*:*:{app.destination.bucket}/{prefix}*",
            )
        ]
    return [Finding("delete", "ok", f"the server may delete rejected uploads under {prefix}")]


def _overwrite(app: Services) -> list[Finding]:
    """Whether an overwrite protection rule covers each destination that forbids overwrites.

    Read with the key in ALIBABA_CLOUD_ACCESS_KEY_ID: the server's own key normally may not
    (it needs nothing but sts:AssumeRole), and then this only says so: run doctor with the
    admin key, or ``ossgate bucket plan``, to know.
    """
    destinations = [d for d in configured_destinations(app) if not d.overwrite]
    if not destinations:
        return []
    settings = app.settings
    admin = AdminSettings(
        settings.oss_bucket,
        settings.oss_region,
        oss_endpoint(settings),
        settings.access_key_id,
        settings.access_key_secret,
    )
    try:
        config = read_overwrite(admin_v2_bucket(admin, connect_timeout=OVERWRITE_READ_TIMEOUT))
    except BucketAdminError as exc:
        return [
            Finding(
                "overwrite",
                "warn",
                f"cannot read the bucket's overwrite protection with this key ({exc}); "
                "check with `ossgate bucket plan` and the admin key",
            )
        ]
    findings = []
    for destination in destinations:
        prefix = protected_prefix(destination)
        rule = covering_rule(config, prefix)
        if rule is None:
            findings.append(
                Finding(
                    "overwrite",
                    "warn",
                    f"destination {destination.name}: no overwrite protection rule covers "
                    f"{prefix!r}, so a browser can replace an upload (the verdict rejects it "
                    "only afterwards): run `ossgate bucket apply`",
                )
            )
        else:
            findings.append(
                Finding(
                    "overwrite",
                    "ok",
                    f"destination {destination.name}: rule {rule.id} refuses overwrites "
                    f"under {prefix!r}",
                )
            )
    return findings


def _cors(app: Services) -> list[Finding]:
    origins = app.settings.cors_origins
    if not origins:
        return [Finding("cors", "warn", "OSSGATE_CORS_ORIGINS is empty: no browser origin set")]
    findings = []
    for origin in origins:
        try:
            report = check_preflights(
                oss_endpoint(app.settings), app.destination.bucket, origin, timeout=5.0
            )
        except BucketAdminError as exc:
            findings.append(Finding("cors", "fail", f"{origin}: {exc}"))
            continue
        if report.passed:
            findings.append(
                Finding("cors", "ok", f"{origin}: every preflight ali-oss sends passes")
            )
        else:
            failed = [r.method for r in report.results if not r.passed]
            if not report.etag_exposed:
                failed.append("ETag not exposed")
            findings.append(
                Finding(
                    "cors",
                    "fail",
                    f"{origin}: {', '.join(failed)} refused: run `ossgate cors apply`",
                )
            )
    return findings


def _public_address(host: str) -> tuple[bool, str]:
    """Whether every address ``host`` resolves to is public, and what it resolved to."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        return False, f"does not resolve ({exc.strerror})"
    # TCP answers are IPv4/IPv6 sockaddrs, whose address is a str (typeshed also allows an int).
    addresses = sorted({a for a in (info[4][0] for info in infos) if isinstance(a, str)})
    private = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_global]
    if private:
        return False, f"resolves to non-public {', '.join(private)}"
    return True, f"resolves to {', '.join(addresses)}"


def _host(endpoint: str) -> str:
    """The host of an endpoint given as a URL or as a bare ``host[:port]``."""
    return urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""


def _on_this_machine(host: str) -> bool:
    """Whether ``host`` resolves, and only to loopback addresses (127.0.0.0/8, ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {a for a in (info[4][0] for info in infos) if isinstance(a, str)}
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses
    )


def _local_services(app: Services) -> bool:
    """Whether STS and OSS both run on this machine: the emulator (``ossgate emulator``,
    ``ossgate demo``) or another local stand-in, never Alibaba Cloud."""
    return _on_this_machine(_host(app.settings.sts_endpoint)) and _on_this_machine(
        _host(oss_endpoint(app.settings))
    )


def _endpoints(app: Services, local: bool) -> list[Finding]:
    if not local:
        return []
    return [
        Finding(
            "endpoints",
            "ok",
            f"local: STS at {app.settings.sts_endpoint} and OSS at "
            f"{oss_endpoint(app.settings)} run on this machine (the emulator), fine for "
            "development; a deployment uses Alibaba Cloud's",
        )
    ]


def _callback(app: Services, local: bool = False) -> list[Finding]:
    """Whether OSS can call each callback URL: a public address, over https.

    With ``local`` services (the emulator), OSS runs on this machine too, so a loopback
    callback URL is what it can call: fine for local use, not a failure.
    """
    callback = app.destination.callback
    if callback is None:
        return [
            Finding("callback", "warn", "OSSGATE_CALLBACK_URL is not set: uploads are not recorded")
        ]
    findings = []
    for url in callback.urls:
        parts = urlsplit(url)
        if local and _on_this_machine(parts.hostname or ""):
            findings.append(
                Finding(
                    "callback",
                    "ok",
                    f"local: {url} is on this machine, where the local OSS can call it; a "
                    "deployment needs a public https URL",
                )
            )
            continue
        public, detail = _public_address(parts.hostname or "")
        if not public:
            findings.append(
                Finding(
                    "callback",
                    "fail",
                    f"{url} {detail}: OSS cannot call it (fine only with the emulator)",
                )
            )
        elif parts.scheme != "https":
            findings.append(Finding("callback", "warn", f"{url} {detail}; use https"))
        else:
            findings.append(Finding("callback", "ok", f"{url} {detail}"))
    return findings


def _jwt_secret(app: Services) -> list[Finding]:
    if app.settings.jwt_secret is None:
        return []  # JWKS: the identity provider's keys
    if app.settings.jwt_secret_too_short:
        return [
            Finding(
                "jwt",
                "fail",
                f"OSSGATE_JWT_SECRET is shorter than {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 "
                "§3.2): tokens signed with it can be guessed offline; use a random 32+ byte one",
            )
        ]
    return [Finding("jwt", "ok", "OSSGATE_JWT_SECRET is long enough for HS256")]


def run_checks(
    app: Services, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[Finding]:
    local = _local_services(app)
    return [
        *_endpoints(app, local),
        *_jwt_secret(app),
        _credentials(app),
        *_bucket_and_clock(app, now),
        *_delete(app),
        *_overwrite(app),
        *_cors(app),
        *_callback(app, local),
    ]


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Check credentials, role, bucket, deletes, overwrite protection, CORS, callback URL
    and clock; non-zero on failure."""
    findings = run_checks(services())
    width = max(len(f.check) for f in findings)
    for finding in findings:
        click.echo(f"{finding.status.upper():4}  {finding.check:<{width}}  {finding.detail}")
    failed = [f for f in findings if f.status == "fail"]
    if failed:
        raise click.exceptions.Exit(1)
