"""CORS administration (server/bucket/): merge without losing rules, limits, backups,
and real preflight checks, against the emulator's bucket.

"Byte for byte" is checked on the raw GetBucketCors document the bucket returns: each
``<CORSRule>…</CORSRule>`` span of an unrelated rule must come back identical and in order.
The helpers at the top are shared with tests/server/test_cors_cli.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import oss2
import pytest
from oss2.models import BucketCors, CorsRule

from server.bucket import (
    AmbiguousRuleError,
    BackupError,
    ConcurrentChangeError,
    KnownRules,
    LimitError,
    OriginError,
    OssAccessError,
    OssUnreachableError,
    SettingsError,
    admin_bucket,
    apply_needed_rule,
    check_preflights,
    is_ossgate_rule,
    load_admin_settings,
    parse_origins,
    plan_change,
    read_cors,
    read_environment,
    restore_backup,
)
from server.bucket.cors_config import backup_document, load_backup, write_backup
from server.bucket.cors_rules import DEFAULT_MAX_AGE, MAX_RULES, needed_rule, same_configuration
from server.bucket.preflight import SDK_COMMON_HEADERS, SDK_UPLOAD_HEADERS, preflight_url
from server.emulator.runner import Emulator
from server.origins import InvalidOrigin, normalize_origin
from tests.support import closed_port_url, root_bucket

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = "http://127.0.0.1:5000"
OTHER_PAGE = "https://other.example.com"

# -- shared helpers ---------------------------------------------------------------------------


def unrelated_rules() -> list[CorsRule]:
    """Rules other applications rely on: a wildcard header, a wildcard origin, no max age…"""
    return [
        CorsRule(
            allowed_origins=["https://shop.example.com", "https://*.shop.example.com"],
            allowed_methods=["GET", "HEAD"],
            allowed_headers=["x-oss-*"],
            expose_headers=["Content-Length"],
            max_age_seconds=3600,
        ),
        CorsRule(
            allowed_origins=["https://admin.example.com"],
            allowed_methods=["PUT", "POST"],
            allowed_headers=["*"],
            expose_headers=["ETag"],
            max_age_seconds=0,
        ),
        CorsRule(
            allowed_origins=["http://legacy.example.net:8080"],
            allowed_methods=["DELETE"],
            allowed_headers=["Authorization", "Content-*"],
        ),
    ]


def filler_rules(count: int) -> list[CorsRule]:
    return [
        CorsRule(allowed_origins=[f"https://app{i}.example.com"], allowed_methods=["GET"])
        for i in range(count)
    ]


def put_rules(emu: Emulator, rules: list[CorsRule], response_vary: bool | None = None) -> None:
    root_bucket(emu).put_bucket_cors(BucketCors(rules, response_vary=response_vary))


def raw_cors(emu: Emulator) -> bytes | None:
    """The GetBucketCors body exactly as the bucket sent it (``None``: no configuration)."""
    captured: list[bytes] = []
    parse = oss2.xml_utils.parse_get_bucket_cors

    def capture(result, body):
        captured.append(body)
        return parse(result, body)

    with mock.patch.object(oss2.xml_utils, "parse_get_bucket_cors", capture):
        try:
            root_bucket(emu).get_bucket_cors()
        except oss2.exceptions.NoSuchCors:
            return None
    return captured[0]


def rule_spans(raw: bytes | None) -> list[bytes]:
    """Each ``<CORSRule>…</CORSRule>`` of a raw document, bytes untouched."""
    return re.findall(rb"<CORSRule>.*?</CORSRule>", raw or b"", flags=re.DOTALL)


def admin_env(emu: Emulator) -> dict[str, str]:
    return dict(emu.settings())


def emulator_bucket(emu: Emulator) -> oss2.Bucket:
    """The bucket as the admin code builds it from the emulator's settings."""
    return admin_bucket(load_admin_settings(admin_env(emu)))


def backups_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("cors-backup-*.xml"))


@contextmanager
def no_files_written(directory: Path) -> Iterator[None]:
    before = sorted(directory.iterdir()) if directory.exists() else []
    yield
    after = sorted(directory.iterdir()) if directory.exists() else []
    assert after == before


# -- origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM", "https://app.example.com"),
        ("https://app.example.com:443", "https://app.example.com"),
        ("http://app.example.com:80", "http://app.example.com"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("  http://localhost:8080 ", "http://localhost:8080"),
        ("http://[::1]:5000", "http://[::1]:5000"),
        ("https://app.example.com/", "https://app.example.com"),
    ],
)
def test_origins_are_normalised_as_browsers_send_them(given: str, expected: str) -> None:
    assert normalize_origin(given) == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("https://app.example.com/upload", "no path"),
        ("https://app.example.com?x=1", "no path, query"),
        ("https://app.example.com#top", "no path, query or fragment"),
        ("https://user:pw@app.example.com", "user name"),
        ("ftp://app.example.com", "scheme://host"),
        ("app.example.com", "scheme://host"),
        ("https://", "scheme://host"),
        ("https://app.example.com:99999", "bad port"),
        ("https://app_example.com", "not a valid host"),
        ("https://app example.com", "whitespace"),
        ("", "empty origin"),
    ],
)
def test_malformed_origins_are_refused_with_the_reason(given: str, why: str) -> None:
    with pytest.raises(InvalidOrigin, match=re.escape(why)):
        normalize_origin(given)


@pytest.mark.parametrize("origin", ["*", "https://*.example.com", "http://*"])
def test_wildcard_origins_need_explicit_permission(origin: str) -> None:
    with pytest.raises(InvalidOrigin, match="--allow-any-origin"):
        normalize_origin(origin)
    assert normalize_origin(origin, allow_wildcard=True) == origin


def test_wildcard_patterns_are_still_validated() -> None:
    with pytest.raises(InvalidOrigin, match="at most one"):
        normalize_origin("https://*.*.example.com", allow_wildcard=True)
    with pytest.raises(InvalidOrigin, match="no path"):
        normalize_origin("https://*.example.com/x", allow_wildcard=True)


def test_parse_origins_deduplicates_in_order_and_needs_one() -> None:
    assert parse_origins(["https://b.example", "https://a.example", "HTTPS://b.example"]) == (
        "https://b.example",
        "https://a.example",
    )
    with pytest.raises(OriginError, match="OSSGATE_CORS_ORIGINS"):
        parse_origins([])


# -- the rule and the plan --------------------------------------------------------------------


def test_needed_rule_is_what_the_browser_sdk_needs() -> None:
    rule = needed_rule([PAGE])
    assert rule.allowed_origins == [PAGE]
    assert set(rule.allowed_methods) == {"GET", "PUT", "POST", "DELETE", "HEAD"}
    assert rule.allowed_headers == ["*"]
    assert rule.expose_headers == ["ETag", "x-oss-request-id", "x-oss-version-id"]
    assert rule.max_age_seconds == DEFAULT_MAX_AGE


def test_ossgate_rule_is_recognised_by_shape_not_origins_or_order() -> None:
    shuffled = CorsRule(
        allowed_origins=["https://anything.example"],
        allowed_methods=["HEAD", "DELETE", "POST", "PUT", "GET"],
        allowed_headers=["*"],
        expose_headers=["x-oss-version-id", "etag", "X-Oss-Request-Id"],
        max_age_seconds=None,
    )
    assert is_ossgate_rule(shuffled)
    assert not any(is_ossgate_rule(r) for r in unrelated_rules())
    missing_method = needed_rule([PAGE])
    missing_method.allowed_methods = ["GET", "PUT", "POST", "HEAD"]
    assert not is_ossgate_rule(missing_method)
    extra_expose = needed_rule([PAGE])
    extra_expose.expose_headers = [*extra_expose.expose_headers, "Content-Length"]
    assert not is_ossgate_rule(extra_expose)


def test_plan_adds_after_unrelated_rules_and_keeps_them_as_they_are() -> None:
    current = BucketCors(unrelated_rules(), response_vary=True)
    plan = plan_change(current, [PAGE])
    assert plan.action == "add" and plan.changed
    assert plan.index == 3
    assert plan.proposed.rules[:3] == current.rules  # the very same objects, untouched
    assert plan.proposed.response_vary is True
    assert is_ossgate_rule(plan.proposed.rules[3])


def test_plan_updates_ossgate_rule_in_place() -> None:
    old = needed_rule(["https://old.example.com", PAGE])
    rules = unrelated_rules()
    rules.insert(1, old)
    plan = plan_change(BucketCors(rules), [PAGE, "https://new.example.com"])
    assert plan.action == "update"
    assert plan.index == 1
    assert plan.proposed.rules[1].allowed_origins == [PAGE, "https://new.example.com"]
    assert [plan.proposed.rules[i] for i in (0, 2, 3)] == [rules[i] for i in (0, 2, 3)]
    assert plan.removed_origins == ("https://old.example.com",)
    assert any("https://old.example.com" in w for w in plan.warnings)


def test_plan_is_empty_when_the_rule_already_matches() -> None:
    rules = [*unrelated_rules(), needed_rule([PAGE, OTHER_PAGE])]
    plan = plan_change(BucketCors(rules), [OTHER_PAGE, PAGE])  # same set, other order
    assert plan.action == "none" and not plan.changed
    # A different max age is a change.
    assert plan_change(BucketCors(rules), [PAGE, OTHER_PAGE], max_age=60).action == "update"


def test_plan_refuses_an_eleventh_rule() -> None:
    with pytest.raises(LimitError, match=f"at most {MAX_RULES}"):
        plan_change(BucketCors(filler_rules(MAX_RULES)), [PAGE])
    # Nine leave room for ours; ten where one is ours can still be updated.
    assert plan_change(BucketCors(filler_rules(9)), [PAGE]).index == 9
    full = [*filler_rules(9), needed_rule(["https://old.example.com"])]
    assert plan_change(BucketCors(full), [PAGE]).action == "update"


def test_plan_refuses_a_document_over_16_kb() -> None:
    origins = [f"https://tenant-{i:04d}.customers.example.com" for i in range(400)]
    with pytest.raises(LimitError, match="16384"):
        plan_change(None, origins)


def test_plan_refuses_to_guess_between_two_rules_of_ossgate_shape() -> None:
    rules = [needed_rule(["https://a.example.com"]), needed_rule(["https://b.example.com"])]
    with pytest.raises(AmbiguousRuleError, match="#1, #2"):
        plan_change(BucketCors(rules), [PAGE])
    # …unless one of them is already exactly what is wanted.
    assert plan_change(BucketCors(rules), ["https://b.example.com"]).action == "none"


def test_plan_warns_when_an_earlier_rule_hides_etag() -> None:
    earlier = CorsRule(allowed_origins=["*"], allowed_methods=["GET", "PUT"], allowed_headers=["*"])
    plan = plan_change(BucketCors([earlier]), [PAGE])
    assert len(plan.warnings) == 1
    assert "rule #1" in plan.warnings[0] and "ETag" in plan.warnings[0]
    assert "GET, PUT" in plan.warnings[0]
    assert plan_change(BucketCors(unrelated_rules()), [PAGE]).warnings == ()


# -- apply against the emulator ---------------------------------------------------------------


def test_apply_keeps_unrelated_rules_byte_for_byte_and_is_idempotent(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    assert len(rule_spans(before)) == 3

    result = apply_needed_rule(emulator_bucket(emu), [PAGE], backup_dir=tmp_path)

    assert result.changed and result.plan.action == "add"
    after = raw_cors(emu)
    spans = rule_spans(after)
    assert spans[:3] == rule_spans(before)  # same bytes, same order
    assert len(spans) == 4
    cors = read_cors(root_bucket(emu))
    assert cors is not None and is_ossgate_rule(cors.rules[3])
    assert cors.rules[3].allowed_origins == [PAGE]
    assert backups_in(tmp_path) == [result.backup_path]

    with no_files_written(tmp_path):
        again = apply_needed_rule(emulator_bucket(emu), [PAGE], backup_dir=tmp_path)
    assert not again.changed and again.plan.action == "none"
    assert raw_cors(emu) == after


def test_changed_origins_update_ossgate_rule_in_place(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    rules = unrelated_rules()
    rules.insert(1, needed_rule(["https://old.example.com"]))
    put_rules(emu, rules)
    before = rule_spans(raw_cors(emu))

    result = apply_needed_rule(emulator_bucket(emu), [PAGE, OTHER_PAGE], backup_dir=tmp_path)

    assert result.plan.action == "update" and result.plan.index == 1
    after = rule_spans(raw_cors(emu))
    assert len(after) == 4
    assert [after[i] for i in (0, 2, 3)] == [before[i] for i in (0, 2, 3)]
    assert b"https://old.example.com" not in after[1]
    cors = read_cors(root_bucket(emu))
    assert cors is not None and cors.rules[1].allowed_origins == [PAGE, OTHER_PAGE]


def test_ten_unrelated_rules_fail_clearly_and_leave_the_bucket_alone(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, filler_rules(MAX_RULES))
    before = raw_cors(emu)

    with no_files_written(tmp_path), pytest.raises(LimitError) as caught:
        apply_needed_rule(emulator_bucket(emu), [PAGE], backup_dir=tmp_path)

    assert "10 CORS rules" in str(caught.value) and "Nothing was changed" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert raw_cors(emu) == before


def test_backup_restores_the_exact_previous_configuration(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules(), response_vary=True)
    original = raw_cors(emu)
    result = apply_needed_rule(emulator_bucket(emu), [PAGE], backup_dir=tmp_path / "first")
    assert result.backup_path is not None
    assert raw_cors(emu) != original

    restored = restore_backup(
        emulator_bucket(emu), result.backup_path, backup_dir=tmp_path / "second"
    )

    assert restored.changed
    assert raw_cors(emu) == original
    # What the restore replaced was saved too, and restores the applied state.
    assert restored.backup_path is not None
    assert load_backup(restored.backup_path) is not None
    assert len(load_backup(restored.backup_path).rules) == 4
    # Restoring again changes nothing.
    assert not restore_backup(emulator_bucket(emu), result.backup_path, backup_dir=None).changed


def test_backup_of_no_configuration_restores_by_deleting(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    assert raw_cors(emu) is None
    result = apply_needed_rule(emulator_bucket(emu), [PAGE], backup_dir=tmp_path)
    assert result.backup_path is not None
    assert load_backup(result.backup_path) is None
    assert raw_cors(emu) is not None

    restore_backup(emulator_bucket(emu), result.backup_path, backup_dir=tmp_path)

    assert raw_cors(emu) is None


def test_without_backup_dir_nothing_is_written_to_disk(
    fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ossgate demo`` passes ``backup_dir=None`` for its own emulator bucket."""
    monkeypatch.chdir(tmp_path)
    with no_files_written(tmp_path):
        result = apply_needed_rule(emulator_bucket(fresh_emulator), [PAGE], backup_dir=None)
    assert result.changed and result.backup_path is None


def test_declined_confirmation_writes_nothing(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    seen = []

    with no_files_written(tmp_path):
        result = apply_needed_rule(
            emulator_bucket(emu),
            [PAGE],
            backup_dir=tmp_path,
            confirm=lambda plan: seen.append(plan) or False,
        )

    assert result.declined and not result.changed
    assert seen and seen[0].action == "add"
    assert raw_cors(emu) == before


def test_rules_changed_meanwhile_are_not_overwritten(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())

    def someone_else_changes_the_rules(plan) -> bool:
        put_rules(emu, filler_rules(2))
        return True

    with no_files_written(tmp_path), pytest.raises(ConcurrentChangeError, match="nothing was"):
        apply_needed_rule(
            emulator_bucket(emu),
            [PAGE],
            backup_dir=tmp_path,
            confirm=someone_else_changes_the_rules,
        )
    assert len(rule_spans(raw_cors(emu))) == 2  # the other writer's rules survive


def test_apply_validates_origins_itself(fresh_emulator: Emulator, tmp_path: Path) -> None:
    with no_files_written(tmp_path), pytest.raises(OriginError):
        apply_needed_rule(emulator_bucket(fresh_emulator), ["*"], backup_dir=tmp_path)
    assert raw_cors(fresh_emulator) is None
    result = apply_needed_rule(
        emulator_bucket(fresh_emulator), ["*"], backup_dir=tmp_path, allow_any_origin=True
    )
    assert result.changed


def test_a_refused_write_says_the_bucket_is_unchanged_and_where_the_backup_is(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    bogus = tmp_path / "bogus.xml"
    bogus.write_text(
        "<CORSConfiguration><CORSRule><AllowedOrigin>https://a.example</AllowedOrigin>"
        "<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>"
    )

    with pytest.raises(OssAccessError) as caught:
        restore_backup(emulator_bucket(emu), bogus, backup_dir=tmp_path / "saved")

    message = str(caught.value)
    assert "InvalidArgument" in message and "were not changed" in message
    assert str(backups_in(tmp_path / "saved")[0]) in message
    assert raw_cors(emu) == before


# -- backups ----------------------------------------------------------------------------------


def test_backup_files_are_never_overwritten(tmp_path: Path) -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = write_backup(BucketCors(unrelated_rules()), "examplebucket", tmp_path, now=now)
    second = write_backup(None, "examplebucket", tmp_path, now=now)
    assert first.name == "cors-backup-examplebucket-20250102T030405Z.xml"
    assert second != first and second.name.startswith("cors-backup-examplebucket-20250102")
    assert load_backup(first) is not None and load_backup(second) is None


def test_backup_round_trips_every_field(tmp_path: Path) -> None:
    cors = BucketCors(unrelated_rules(), response_vary=False)
    path = write_backup(cors, "examplebucket", tmp_path)
    loaded = load_backup(path)
    assert loaded is not None
    assert same_configuration(loaded, cors)
    assert loaded.response_vary is False


def test_unwritable_backup_dir_is_a_clear_error(fresh_emulator: Emulator, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackupError, match="cannot write the backup"):
        apply_needed_rule(emulator_bucket(fresh_emulator), [PAGE], backup_dir=blocker / "x")
    assert raw_cors(fresh_emulator) is None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"<Other/>", "root element"),
        (b"<CORSConfiguration><Rule/></CORSConfiguration>", "unexpected <Rule>"),
        (
            b"<CORSConfiguration><CORSRule><Color>red</Color></CORSRule></CORSConfiguration>",
            "unexpected <Color>",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><CORSConfiguration/>',
            "not a CORS backup",
        ),
        (b"not xml", "not a CORS backup"),
    ],
)
def test_load_backup_refuses_what_it_would_not_restore_faithfully(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "backup.xml"
    path.write_bytes(content)
    with pytest.raises(BackupError, match=re.escape(why)):
        load_backup(path)


def test_backup_document_is_readable_xml_with_a_note() -> None:
    text = backup_document(
        None, bucket_name="a--b", taken_at=datetime(2025, 1, 1, tzinfo=UTC)
    ).decode()
    assert "no CORS configuration" in text and "a- -b" in text  # "--" cannot be in a comment
    assert "<CORSConfiguration />" in text


# -- settings ---------------------------------------------------------------------------------


def test_settings_need_only_bucket_and_admin_key() -> None:
    settings = load_admin_settings(
        {
            "OSSGATE_OSS_BUCKET": "examplebucket",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIadmin",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "admin-secret",
        }
    )
    assert settings.region == "oss-cn-hangzhou" and settings.region_id == "cn-hangzhou"
    assert settings.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"
    assert "admin-secret" not in repr(settings)


def test_explicit_values_override_the_environment() -> None:
    settings = load_admin_settings(
        {"OSSGATE_OSS_BUCKET": "envbucket", "OSSGATE_OSS_REGION": "oss-cn-beijing"},
        bucket="flagbucket",
        region="cn-shanghai",
        endpoint="oss-cn-shanghai.aliyuncs.com",
        access_key_id="id",
        access_key_secret="secret",
    )
    assert (settings.bucket, settings.region) == ("flagbucket", "oss-cn-shanghai")
    assert settings.endpoint == "https://oss-cn-shanghai.aliyuncs.com"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "OSSGATE_OSS_BUCKET"),
        ({"OSSGATE_OSS_BUCKET": "Bad_Bucket"}, "OSSGATE_OSS_BUCKET"),
        ({"OSSGATE_OSS_BUCKET": "b12", "OSSGATE_OSS_REGION": "cn hangzhou"}, "OSSGATE_OSS_REGION"),
        (
            {"OSSGATE_OSS_BUCKET": "b12", "OSSGATE_OSS_ENDPOINT": "ftp://x"},
            "OSSGATE_OSS_ENDPOINT",
        ),
        (
            {"OSSGATE_OSS_BUCKET": "b12", "OSSGATE_OSS_ENDPOINT": "http://x/path"},
            "OSSGATE_OSS_ENDPOINT",
        ),
        ({"OSSGATE_OSS_BUCKET": "b12"}, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
        (
            {"OSSGATE_OSS_BUCKET": "b12", "ALIBABA_CLOUD_ACCESS_KEY_ID": "id"},
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        ),
    ],
)
def test_settings_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_admin_settings(env)


def test_check_needs_no_credentials() -> None:
    settings = load_admin_settings({"OSSGATE_OSS_BUCKET": "b12"}, require_credentials=False)
    assert not settings.has_credentials


def test_dotenv_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OSSGATE_OSS_BUCKET=frometenv\nOSSGATE_OSS_REGION=oss-cn-beijing\n")
    monkeypatch.setenv("OSSGATE_OSS_REGION", "oss-cn-shanghai")
    monkeypatch.delenv("OSSGATE_OSS_BUCKET", raising=False)
    env = read_environment(dotenv)
    assert env["OSSGATE_OSS_BUCKET"] == "frometenv"
    assert env["OSSGATE_OSS_REGION"] == "oss-cn-shanghai"


# -- errors from OSS --------------------------------------------------------------------------


def test_wrong_credentials_are_one_clear_line(fresh_emulator: Emulator) -> None:
    env = {**admin_env(fresh_emulator), "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wrong-secret"}
    with pytest.raises(OssAccessError) as caught:
        read_cors(admin_bucket(load_admin_settings(env)))
    message = str(caught.value)
    assert "SignatureDoesNotMatch" in message and "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in message
    assert "wrong-secret" not in message and "\n" not in message


def test_unreachable_endpoint_is_one_clear_line() -> None:
    endpoint = closed_port_url().removesuffix("/oss/callback")
    env = {
        "OSSGATE_OSS_BUCKET": "examplebucket",
        "OSSGATE_OSS_ENDPOINT": endpoint,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret",
    }
    with pytest.raises(OssUnreachableError, match=r"cannot reach OSS at .*Connection refused"):
        read_cors(admin_bucket(load_admin_settings(env)))
    with pytest.raises(OssUnreachableError, match="cannot reach"):
        check_preflights(endpoint, "examplebucket", PAGE, timeout=2)


# -- preflight check --------------------------------------------------------------------------


def test_preflight_url_uses_path_style_only_for_local_endpoints() -> None:
    assert (
        preflight_url("http://127.0.0.1:9000", "examplebucket", "a b/c.txt")
        == "http://127.0.0.1:9000/examplebucket/a%20b/c.txt"
    )
    assert preflight_url("http://localhost:9000", "b12", "k") == "http://localhost:9000/b12/k"
    assert (
        preflight_url("https://oss-cn-hangzhou.aliyuncs.com", "examplebucket", "k")
        == "https://examplebucket.oss-cn-hangzhou.aliyuncs.com/k"
    )


def test_check_passes_for_the_allowed_origin(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [*unrelated_rules(), needed_rule([PAGE])])

    report = check_preflights(emu.oss_endpoint, emu.config.bucket, PAGE)

    assert report.passed, report
    assert [r.method for r in report.results] == ["PUT", "POST", "GET", "HEAD", "DELETE"]
    assert all(r.status == 200 for r in report.results)
    assert report.etag_exposed and "ETag" in report.etag_reason
    put = report.results[0]
    assert "x-oss-security-token" in put.requested_headers
    assert "x-oss-callback" in put.requested_headers


def test_check_fails_for_another_origin_naming_the_cause(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [needed_rule([PAGE])])
    known = KnownRules(read_cors(root_bucket(emu)))

    report = check_preflights(emu.oss_endpoint, emu.config.bucket, OTHER_PAGE, known=known)

    assert not report.passed
    for result in report.results:
        assert not result.passed and result.status == 403
        assert f"no CORS rule allows origin {OTHER_PAGE}" in result.reason
    # Without the rules (no admin key), the reason is what the answer itself says.
    bare = check_preflights(emu.oss_endpoint, emu.config.bucket, OTHER_PAGE)
    assert "403 AccessForbidden" in bare.results[0].reason


def test_check_fails_after_delete_bucket_cors(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [needed_rule([PAGE])])
    assert check_preflights(emu.oss_endpoint, emu.config.bucket, PAGE).passed
    root_bucket(emu).delete_bucket_cors()

    report = check_preflights(
        emu.oss_endpoint, emu.config.bucket, PAGE, known=KnownRules(read_cors(root_bucket(emu)))
    )

    assert not report.passed and not report.etag_exposed
    assert all("the bucket has no CORS configuration" in r.reason for r in report.results)


def test_check_names_a_missing_header_or_method(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    narrow = CorsRule(
        allowed_origins=[PAGE],
        allowed_methods=["GET", "PUT"],
        allowed_headers=["authorization", "x-oss-*"],
        expose_headers=["ETag"],
    )
    put_rules(emu, [narrow])
    known = KnownRules(read_cors(root_bucket(emu)))

    report = check_preflights(emu.oss_endpoint, emu.config.bucket, PAGE, known=known)

    by_method = {r.method: r for r in report.results}
    assert "rule #1 does not allow header(s) content-md5, content-type" in by_method["PUT"].reason
    assert (
        "content-type" in by_method["GET"].reason and "content-md5" not in by_method["GET"].reason
    )
    assert "not method DELETE" in by_method["DELETE"].reason


def test_check_reports_etag_hidden_by_an_earlier_rule(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    earlier = CorsRule(allowed_origins=[PAGE], allowed_methods=["PUT"], allowed_headers=["x-oss-*"])
    put_rules(emu, [earlier, needed_rule([PAGE])])
    known = KnownRules(read_cors(root_bucket(emu)))

    report = check_preflights(emu.oss_endpoint, emu.config.bucket, PAGE, known=known)

    # The preflights pass (rule #1 lacks the headers, so #2 answers them) …
    assert all(r.passed for r in report.results)
    # … but ordinary PUT answers match rule #1 on origin and method, without ETag.
    assert not report.etag_exposed and "rule #1" in report.etag_reason
    assert not report.passed


def test_check_reports_etag_not_exposed(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    rule = needed_rule([PAGE])
    rule.expose_headers = ["x-oss-request-id"]
    put_rules(emu, [rule])
    report = check_preflights(emu.oss_endpoint, emu.config.bucket, PAGE)
    assert all(r.passed for r in report.results)
    assert not report.etag_exposed and "x-oss-request-id" in report.etag_reason


def test_check_refuses_a_malformed_origin() -> None:
    with pytest.raises(OriginError):
        check_preflights("http://127.0.0.1:1", "examplebucket", "not-an-origin")


def test_preflight_headers_are_the_ones_the_ali_oss_bundle_sets() -> None:
    """The headers named in SDK_COMMON_HEADERS are really set by ali-oss's browser build."""
    bundle = REPO_ROOT / "node_modules" / "ali-oss" / "dist" / "aliyun-oss-sdk.js"
    if not bundle.is_file():
        bundle = REPO_ROOT / "static" / "vendor" / "aliyun-oss-sdk.min.js"
    assert bundle.is_file(), "run `make all` to install the ali-oss bundle"
    source = bundle.read_text(encoding="utf-8", errors="replace")
    for name in SDK_COMMON_HEADERS:
        if name not in ("authorization", "content-type"):
            assert f"'{name}'" in source or f'"{name}"' in source, name
    assert set(SDK_COMMON_HEADERS) < set(SDK_UPLOAD_HEADERS)
    assert list(SDK_UPLOAD_HEADERS) == sorted(SDK_UPLOAD_HEADERS)
