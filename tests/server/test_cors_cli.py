"""``ossgate cors show | plan | apply | restore | check`` through click, against the emulator.

Each test runs in its own working directory (so no developer ``.env`` leaks in and default
backups land in the test's temporary directory) with the emulator's settings as environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from server import create_app
from server.bucket import cors_cli, prompts, read_cors
from server.bucket.cors_cli import cors_group
from server.bucket.cors_rules import MAX_RULES, needed_rule
from server.emulator.runner import Emulator
from tests.server.test_cors_admin import (
    OTHER_PAGE,
    PAGE,
    backups_in,
    filler_rules,
    put_rules,
    raw_cors,
    rule_spans,
    unrelated_rules,
)
from tests.support import AppConfig, closed_port_url, root_bucket

#: Variables a developer's shell might hold that must not reach the commands under test.
_CLEARED = (
    "OSSGATE_CORS_ORIGINS",
    "OSSGATE_OSS_BUCKET",
    "OSSGATE_OSS_REGION",
    "OSSGATE_OSS_ENDPOINT",
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
)


#: The instance folder as the commands find it, before the fixture below moves it.
INSTANCE_FOLDER = cors_cli._instance_folder


@pytest.fixture(autouse=True)
def _own_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own working directory and instance folder (default backups go there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cors_cli, "_instance_folder", lambda: tmp_path / "instance")
    return tmp_path


def default_backups(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "bucket-backups"


def run(emu: Emulator | None, *args: str, input: str | None = None, **env: str | None) -> Result:
    base: dict[str, str | None] = dict.fromkeys(_CLEARED)
    if emu is not None:
        base.update(emu.settings())
    base.update(env)
    return CliRunner().invoke(cors_group, list(args), env=base, input=input)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Exit 1, a single ``Error: …`` line naming ``fragments``, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- show -------------------------------------------------------------------------------------


def test_show_without_configuration(fresh_emulator: Emulator) -> None:
    result = run(fresh_emulator, "show")
    assert result.exit_code == 0, result.output
    assert "has no CORS configuration" in result.stdout and "ossgate cors apply" in result.stdout


def test_show_table_and_json(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [*unrelated_rules(), needed_rule([PAGE, OTHER_PAGE])])

    table = run(emu, "show")
    assert table.exit_code == 0, table.output
    assert "4 rule(s), first match wins" in table.stdout
    lines = table.stdout.splitlines()
    assert lines[1].split()[:3] == ["#", "owner", "AllowedOrigin"]
    ours = next(line for line in lines if " ossgate " in line)
    assert ours.startswith("4 ") and PAGE in ours and "GET PUT POST DELETE HEAD" in ours
    assert any(OTHER_PAGE in line for line in lines)  # second origin on its own line

    as_json = run(emu, "show", "--json")
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["configured"] is True and document["bucket"] == emu.config.bucket
    assert [r["ossgate"] for r in document["rules"]] == [False, False, False, True]
    assert document["rules"][0]["allowedHeaders"] == ["x-oss-*"]
    assert document["rules"][3]["allowedOrigins"] == [PAGE, OTHER_PAGE]
    assert document["rules"][3]["maxAgeSeconds"] == 600


# -- plan / apply -----------------------------------------------------------------------------


def test_plan_apply_plan_on_a_bucket_with_other_rules(fresh_emulator: Emulator, tmp_path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)

    plan = run(emu, "plan", "--origin", PAGE)
    assert plan.exit_code == 0, plan.output
    gate = run(emu, "plan", "--exit-code", "--origin", PAGE)
    assert gate.exit_code == 2, gate.output
    assert gate.stdout == plan.stdout
    assert "add ossgate's rule as #4 of 4" in plan.stdout
    assert f"+    <AllowedOrigin>{PAGE}</AllowedOrigin>" in plan.stdout
    assert not any(line.startswith("-  ") for line in plan.stdout.splitlines())  # no removal
    assert raw_cors(emu) == before  # plan writes nothing

    applied = run(emu, "apply", "--yes", "--origin", PAGE)
    assert applied.exit_code == 0, applied.output
    [backup] = backups_in(default_backups(tmp_path))
    assert f"Backed up the previous CORS configuration to {backup.resolve()}" in applied.stdout
    assert "Applied: ossgate's rule is #4 of 4" in applied.stdout
    assert rule_spans(raw_cors(emu))[:3] == rule_spans(before)

    after = raw_cors(emu)
    again = run(emu, "apply", "--yes", "--origin", PAGE)
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.stdout
    assert raw_cors(emu) == after and backups_in(default_backups(tmp_path)) == [backup]
    assert run(emu, "plan", "--exit-code", "--origin", PAGE).exit_code == 0


def test_origins_come_from_the_environment(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    origins = f"{PAGE}, {OTHER_PAGE}"
    assert run(emu, "apply", "--yes", OSSGATE_CORS_ORIGINS=origins).exit_code == 0
    cors = read_cors(root_bucket(emu))
    assert cors is not None and cors.rules[0].allowed_origins == [PAGE, OTHER_PAGE]
    # --origin replaces the variable's list: the rule is updated in place.
    moved = run(emu, "apply", "--yes", "--origin", PAGE, OSSGATE_CORS_ORIGINS=origins)
    assert moved.exit_code == 0, moved.output
    assert f"origins no longer allowed by ossgate's rule: {OTHER_PAGE}" in moved.stderr
    assert read_cors(root_bucket(emu)).rules[0].allowed_origins == [PAGE]


def test_apply_and_plan_need_an_origin(fresh_emulator: Emulator) -> None:
    assert_one_line_error(run(fresh_emulator, "apply", "--yes"), "OSSGATE_CORS_ORIGINS")
    assert_one_line_error(run(fresh_emulator, "plan"), "--origin")


def test_apply_without_a_terminal_needs_yes(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    result = run(emu, "apply", "--origin", PAGE)
    assert_one_line_error(result, "stdin is not a terminal", "--yes", "Nothing was changed")
    assert raw_cors(emu) == before and backups_in(default_backups(tmp_path)) == []


def test_apply_asks_and_respects_no(
    fresh_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = fresh_emulator
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)

    declined = run(emu, "apply", "--origin", PAGE, input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "Write these CORS rules to bucket examplebucket?" in declined.stdout
    assert "Not applied" in declined.stdout
    assert raw_cors(emu) == before and backups_in(default_backups(tmp_path)) == []

    accepted = run(emu, "apply", "--origin", PAGE, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert len(rule_spans(raw_cors(emu))) == 4 and len(backups_in(default_backups(tmp_path))) == 1


def test_ten_unrelated_rules_fail_and_nothing_changes(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    put_rules(emu, filler_rules(MAX_RULES))
    before = raw_cors(emu)
    for command in ("plan", "apply"):
        result = run(
            emu, command, "--yes" if command == "apply" else "--max-age=600", "--origin", PAGE
        )
        assert_one_line_error(result, "10 CORS rules", "at most 10", "Nothing was changed")
    assert raw_cors(emu) == before and backups_in(default_backups(tmp_path)) == []


def test_backup_dir_and_restore(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules(), response_vary=True)
    original = raw_cors(emu)

    applied = run(emu, "apply", "-y", "--origin", PAGE, "--backup-dir", "saved/cors")
    assert applied.exit_code == 0, applied.output
    [backup] = backups_in(tmp_path / "saved" / "cors")
    assert backup.name.startswith("cors-backup-examplebucket-") and backup.name.endswith("Z.xml")

    restored = run(emu, "restore", str(backup), "--yes", "--backup-dir", "replaced")
    assert restored.exit_code == 0, restored.output
    assert "Restored 3 rule(s)" in restored.stdout
    assert raw_cors(emu) == original
    assert len(backups_in(tmp_path / "replaced")) == 1

    same = run(emu, "restore", str(backup), "--yes")
    assert same.exit_code == 0 and "nothing to do" in same.stdout


def test_restore_of_no_configuration_deletes_the_rules(
    fresh_emulator: Emulator, tmp_path: Path
) -> None:
    emu = fresh_emulator
    assert run(emu, "apply", "--yes", "--origin", PAGE).exit_code == 0
    [backup] = backups_in(default_backups(tmp_path))

    restored = run(emu, "restore", str(backup), "--yes")

    assert restored.exit_code == 0, restored.output
    assert "DeleteBucketCors" in restored.stdout
    assert raw_cors(emu) is None


def test_restore_needs_a_real_backup(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    (tmp_path / "notes.xml").write_text("<notes/>")
    assert_one_line_error(run(emu, "restore", "notes.xml", "--yes"), "not a CORS backup")
    assert_one_line_error(run(emu, "restore", "missing.xml", "--yes"), "cannot read the backup")
    assert raw_cors(emu) == before


# -- check ------------------------------------------------------------------------------------


def test_check_passes_then_fails_naming_the_cause(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    assert run(emu, "apply", "--yes", "--origin", PAGE).exit_code == 0

    passed = run(emu, "check", "--origin", PAGE)
    assert passed.exit_code == 0, passed.output
    for method in ("PUT", "POST", "GET", "HEAD", "DELETE", "ETag"):
        assert any(line.split()[:2] == [method, "pass"] for line in passed.stdout.splitlines())
    assert "All 6 checks passed" in passed.stdout

    other = run(emu, "check", "--origin", OTHER_PAGE)
    assert other.exit_code == 1, other.output
    assert f"no CORS rule allows origin {OTHER_PAGE}" in other.stdout
    assert f"ossgate cors apply --origin {OTHER_PAGE}" in other.stdout

    root_bucket(emu).delete_bucket_cors()
    deleted = run(emu, "check", "--origin", PAGE)
    assert deleted.exit_code == 1, deleted.output
    assert "the bucket has no CORS configuration" in deleted.stdout
    assert "6 of 6 checks failed" in deleted.stdout


def test_check_works_without_an_admin_key(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [needed_rule([PAGE])])
    no_key = {"ALIBABA_CLOUD_ACCESS_KEY_ID": None, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": None}
    assert run(emu, "check", "--origin", PAGE, **no_key).exit_code == 0
    refused = run(emu, "check", "--origin", OTHER_PAGE, **no_key)
    assert refused.exit_code == 1 and "refused (403 AccessForbidden)" in refused.stdout


def test_check_defaults_to_the_configured_origins(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    put_rules(emu, [needed_rule([PAGE])])
    both = run(emu, "check", OSSGATE_CORS_ORIGINS=f"{PAGE},https://*.example.com,{OTHER_PAGE}")
    assert both.exit_code == 1, both.output
    assert f"All 6 checks passed: ali-oss on {PAGE} can upload." in both.stdout
    assert f"uploads from {OTHER_PAGE} will fail" in both.stdout
    assert "not checking 'https://*.example.com'" in both.stderr

    assert run(emu, "check", OSSGATE_CORS_ORIGINS=PAGE).exit_code == 0
    # --origin still decides when given.
    assert run(emu, "check", "--origin", PAGE, OSSGATE_CORS_ORIGINS=OTHER_PAGE).exit_code == 0
    assert_one_line_error(run(emu, "check"), "pass --origin URL or set OSSGATE_CORS_ORIGINS")


def test_backups_default_to_the_instance_folder_of_the_app(
    fresh_emulator: Emulator, app_config: AppConfig, tmp_path: Path
) -> None:
    """The folder ``ossgate bucket`` backs up to, found without the app's configuration."""
    app = create_app(app_config(fresh_emulator))
    assert INSTANCE_FOLDER() == Path(app.instance_path)
    assert run(fresh_emulator, "apply", "--yes", "--origin", PAGE).exit_code == 0
    [backup] = backups_in(default_backups(tmp_path))
    assert backups_in(tmp_path) == []  # no longer the working directory


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "fragment"),
    [
        ("app.example.com", "invalid origin"),
        ("javascript:alert(1)", "invalid origin"),
        ("*", "--allow-any-origin"),
        ("https://*.example.com", "--allow-any-origin"),
    ],
)
def test_bad_origins_change_nothing(
    fresh_emulator: Emulator, tmp_path: Path, origin: str, fragment: str
) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    for command in ("plan", "apply", "check"):
        args = [command, "--origin", origin] + (["--yes"] if command == "apply" else [])
        assert_one_line_error(run(emu, *args), fragment if command != "check" else "origin")
    assert raw_cors(emu) == before and backups_in(default_backups(tmp_path)) == []


def test_wildcard_origin_with_permission(fresh_emulator: Emulator) -> None:
    emu = fresh_emulator
    result = run(emu, "apply", "--yes", "--allow-any-origin", "--origin", "https://*.example.com")
    assert result.exit_code == 0, result.output
    assert read_cors(root_bucket(emu)).rules[0].allowed_origins == ["https://*.example.com"]


def test_wrong_credentials(fresh_emulator: Emulator, tmp_path: Path) -> None:
    emu = fresh_emulator
    put_rules(emu, unrelated_rules())
    before = raw_cors(emu)
    secret = "definitely-wrong-secret"
    for args in (["show"], ["plan", "--origin", PAGE], ["apply", "--yes", "--origin", PAGE]):
        result = run(emu, *args, ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret)
        assert_one_line_error(result, "OSS refused the admin credentials", "SignatureDoesNotMatch")
        assert secret not in result.output
    flagged = run(emu, "show", "--access-key-id", "LTAInobody", "--access-key-secret", secret)
    assert_one_line_error(flagged, "InvalidAccessKeyId")
    assert raw_cors(emu) == before and backups_in(default_backups(tmp_path)) == []


def test_unreachable_endpoint(fresh_emulator: Emulator) -> None:
    endpoint = closed_port_url().removesuffix("/oss/callback")
    for args in (
        ["show"],
        ["plan", "--origin", PAGE],
        ["apply", "--yes", "--origin", PAGE],
        ["check", "--origin", PAGE, "--timeout", "2"],
    ):
        result = run(fresh_emulator, *args, "--endpoint", endpoint)
        assert_one_line_error(result, "cannot reach", endpoint)
    assert raw_cors(fresh_emulator) is None


def test_missing_settings_name_the_variable() -> None:
    assert_one_line_error(run(None, "show"), "OSSGATE_OSS_BUCKET", "--bucket")
    assert_one_line_error(
        run(None, "show", "--bucket", "examplebucket"), "ALIBABA_CLOUD_ACCESS_KEY_ID"
    )
    # Nothing else of the server's configuration (JWT secret, role ARN…) is needed.
    result = run(None, "check", "--bucket", "bad_bucket", "--origin", PAGE)
    assert_one_line_error(result, "OSSGATE_OSS_BUCKET (--bucket) is not a valid bucket name")


def test_dotenv_in_the_working_directory_is_read(fresh_emulator: Emulator, tmp_path: Path) -> None:
    lines = [f"{k}={v}" for k, v in fresh_emulator.settings().items()]
    (tmp_path / ".env").write_text("\n".join([*lines, f"OSSGATE_CORS_ORIGINS={PAGE}"]) + "\n")
    assert run(None, "apply", "--yes").exit_code == 0
    assert read_cors(root_bucket(fresh_emulator)).rules[0].allowed_origins == [PAGE]


def test_commands_are_listed_in_help() -> None:
    result = CliRunner().invoke(cors_group, ["--help"])
    assert result.exit_code == 0
    for name in ("show", "plan", "apply", "restore", "check"):
        assert name in result.output
