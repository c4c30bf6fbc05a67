"""``ossgate bucket show | plan | apply | restore``: CORS and overwrite protection as one plan.

Run through click on an app built beside an emulator of the test's own, the way
``ossgate bucket`` runs on the configured app. What the bucket holds is read back with the
official alibabacloud-oss-v2 SDK (overwrite rules) and oss2 (CORS), never through the code
under test, and the protection is proven by a real refused overwrite: oss2 with the STS
credentials ``/api/sts-token`` hands a browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import alibabacloud_oss_v2 as oss
import oss2
import pytest
from click.testing import Result
from flask import Flask
from oss2.models import BucketCors, CorsRule

from server import create_app
from server.bucket import (
    BackupError,
    ConcurrentChangeError,
    LimitError,
    OssAccessError,
    OssUnreachableError,
    load_admin_settings,
    prompts,
)
from server.bucket.admin_settings import AdminSettings
from server.bucket.bucket_cli import bucket_group
from server.bucket.bucket_setup import (
    BucketPlan,
    admin_clients,
    apply_bucket,
    configured_destinations,
    for_bucket,
)
from server.bucket.cors_rules import needed_rule
from server.bucket.oss_v2_admin import admin_v2_bucket
from server.bucket.overwrite_config import backup_document, load_backup, read_overwrite
from server.bucket.overwrite_plan import plan_overwrite
from server.bucket.overwrite_rules import OverwriteConfig, OverwriteRule
from server.destinations.destination import Destination
from server.emulator.config import EmulatorConfig
from server.emulator.runner import Emulator
from tests.server.served_app import free_port
from tests.server.tokens import SECRET, bearer, jwt_for
from tests.support import StsCredentials, closed_port_url, root_bucket, sts_bucket

PAGE = "http://127.0.0.1:5000"

# -- helpers ----------------------------------------------------------------------------------


def v2_client(emu: Emulator | SimpleNamespace) -> oss.Client:
    """The official V2 client on the emulator with the root key, set up as its docs say."""
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider(
        emu.config.access_key_id, emu.config.access_key_secret
    )
    cfg.region = emu.config.region_id
    cfg.endpoint = emu.oss_endpoint
    return oss.Client(cfg)


def overwrite_rules(emu: Emulator | SimpleNamespace) -> list[tuple] | None:
    """The bucket's overwrite rules as (ID, Action, Prefix, Suffix, Principals) tuples."""
    try:
        result = v2_client(emu).get_bucket_overwrite_config(
            oss.GetBucketOverwriteConfigRequest(bucket=emu.config.bucket)
        )
    except oss.exceptions.OperationError as exc:
        assert exc.unwrap().code == "NoSuchBucketOverwriteConfig"
        return None
    return [
        (
            r.id,
            r.action,
            r.prefix,
            r.suffix,
            None if r.principals is None else tuple(r.principals.principals or ()),
        )
        for r in result.overwrite_configuration.rules or []
    ]


def put_overwrite_rules(emu: Emulator, rules: list[oss.OverwriteRule]) -> None:
    v2_client(emu).put_bucket_overwrite_config(
        oss.PutBucketOverwriteConfigRequest(
            bucket=emu.config.bucket,
            overwrite_configuration=oss.OverwriteConfiguration(rules=rules),
        )
    )


def unrelated_overwrite_rules() -> list[oss.OverwriteRule]:
    return [
        oss.OverwriteRule(id="keep-docs", action="forbid", prefix="docs/", suffix=".pdf"),
        oss.OverwriteRule(
            id="keep-staff",
            action="forbid",
            prefix="uploads/",
            principals=oss.OverwritePrincipals(principals=["1234567890123456"]),
        ),
    ]


def cors_rules(emu: Emulator) -> list[tuple] | None:
    try:
        cors = root_bucket(emu).get_bucket_cors()
    except oss2.exceptions.NoSuchCors:
        return None
    return [
        (tuple(r.allowed_origins), tuple(r.allowed_methods), tuple(r.expose_headers))
        for r in cors.rules
    ]


def backups_in(directory: Path, kind: str = "*") -> list[Path]:
    return sorted(directory.glob(f"{kind}-backup-*.xml"))


def make_app(emu: Emulator, tmp_path: Path, **overrides: str) -> Flask:
    app = create_app(
        {
            **emu.settings(),
            "OSSGATE_JWT_SECRET": SECRET,
            "OSSGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'records.db'}",
            "OSSGATE_CORS_ORIGINS": PAGE,
            **overrides,
        }
    )
    app.instance_path = str(tmp_path / "instance")
    return app


@pytest.fixture
def emu(fresh_emulator: Emulator) -> Emulator:
    """Bucket settings are bucket-wide state: each test gets an emulator of its own."""
    return fresh_emulator


@pytest.fixture
def app(emu: Emulator, tmp_path: Path) -> Flask:
    return make_app(emu, tmp_path)


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    """Where backups go by default: the app's instance folder."""
    return tmp_path / "instance" / "bucket-backups"


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(bucket_group, list(args), input=input)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Exit 1, a single ``Error: …`` line naming ``fragments``, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def browser_credentials(app: Flask, user: str) -> StsCredentials:
    response = app.test_client().post("/api/sts-token", headers=bearer(jwt_for(user)))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    return StsCredentials(
        body["accessKeyId"], body["accessKeySecret"], body["stsToken"], body["expiration"]
    )


OURS = ("ossgate-default", "forbid", "uploads/", None, None)

# -- plan / apply -----------------------------------------------------------------------------


def test_plan_shows_both_rules_writes_nothing_and_gates_ci(app: Flask, emu: Emulator) -> None:
    plan = run(app, "plan")
    assert plan.exit_code == 0, plan.output
    assert "CORS of bucket examplebucket" in plan.stdout
    assert f"+    <AllowedOrigin>{PAGE}</AllowedOrigin>" in plan.stdout
    assert "Overwrite protection of bucket examplebucket" in plan.stdout
    assert "add ossgate-default" in plan.stdout
    assert "+    <ID>ossgate-default</ID>" in plan.stdout
    assert "+    <Prefix>uploads/</Prefix>" in plan.stdout
    assert "+    <Action>forbid</Action>" in plan.stdout

    gate = run(app, "plan", "--exit-code")
    assert gate.exit_code == 2, gate.output
    assert gate.stdout == plan.stdout
    assert overwrite_rules(emu) is None and cors_rules(emu) is None  # plan writes nothing


def test_apply_refuses_a_second_write_of_an_upload(
    app: Flask, emu: Emulator, backups: Path
) -> None:
    alice = sts_bucket(emu, browser_credentials(app, "alice"))
    alice.put_object("uploads/alice/before.txt", b"1")
    assert alice.put_object("uploads/alice/before.txt", b"2").status == 200  # not yet refused

    applied = run(app, "apply", "--yes")
    assert applied.exit_code == 0, applied.output
    assert overwrite_rules(emu) == [OURS]
    assert cors_rules(emu) == [
        (
            (PAGE,),
            ("GET", "PUT", "POST", "DELETE", "HEAD"),
            ("ETag", "x-oss-request-id", "x-oss-version-id"),
        )
    ]
    assert [p.name.split("-")[0] for p in backups_in(backups)] == ["cors", "overwrite"]

    with pytest.raises(oss2.exceptions.ServerError) as refused:
        alice.put_object("uploads/alice/before.txt", b"3")
    assert (refused.value.status, refused.value.code) == (409, "FileAlreadyExists")
    assert alice.put_object("uploads/alice/new.txt", b"new").status == 200
    assert root_bucket(emu).get_object("uploads/alice/before.txt").read() == b"2"


def test_unrelated_rules_are_kept_and_a_second_apply_changes_nothing(
    app: Flask, emu: Emulator, backups: Path
) -> None:
    put_overwrite_rules(emu, unrelated_overwrite_rules())
    root_bucket(emu).put_bucket_cors(
        BucketCors([CorsRule(allowed_origins=["https://cdn.example.com"], allowed_methods=["GET"])])
    )
    overwrite_before, cors_before = overwrite_rules(emu), cors_rules(emu)
    assert overwrite_before is not None and cors_before is not None

    applied = run(app, "apply", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "add ossgate-default; keep the other 2 rule(s) unchanged and in order" in applied.stdout
    assert overwrite_rules(emu) == [*overwrite_before, OURS]
    assert cors_rules(emu)[:1] == cors_before
    first_backups = backups_in(backups)
    assert len(first_backups) == 2

    after = overwrite_rules(emu), cors_rules(emu)
    again = run(app, "apply", "--yes")
    assert again.exit_code == 0, again.output
    assert "Overwrite protection of bucket examplebucket at" in again.stdout
    assert "nothing to change (3 rule(s) in place)" in again.stdout
    assert "CORS of bucket examplebucket" in again.stdout and "already up to date" in again.stdout
    assert (overwrite_rules(emu), cors_rules(emu)) == after
    assert backups_in(backups) == first_backups  # nothing written, nothing backed up
    assert run(app, "plan", "--exit-code").exit_code == 0


def test_a_hand_edited_ossgate_rule_is_put_back_in_its_place(app: Flask, emu: Emulator) -> None:
    put_overwrite_rules(
        emu,
        [
            unrelated_overwrite_rules()[0],
            oss.OverwriteRule(id="ossgate-default", action="forbid", prefix="uploads/alice/"),
            unrelated_overwrite_rules()[1],
        ],
    )
    before = overwrite_rules(emu)
    plan = run(app, "plan", "--exit-code")
    assert plan.exit_code == 2 and "update ossgate-default" in plan.stdout
    assert "-    <Prefix>uploads/alice/</Prefix>" in plan.stdout
    assert run(app, "apply", "--yes").exit_code == 0
    assert overwrite_rules(emu) == [before[0], OURS, before[2]]


def test_a_rule_that_already_covers_the_prefix_is_enough(app: Flask, emu: Emulator) -> None:
    put_overwrite_rules(emu, [oss.OverwriteRule(id="everything", action="forbid", prefix="")])
    root_bucket(emu).put_bucket_cors(BucketCors([needed_rule([PAGE])]))  # CORS already fine
    result = run(app, "plan")
    assert "destination default is already protected by rule everything" in result.stdout
    assert run(app, "apply", "--yes").exit_code == 0
    assert overwrite_rules(emu) == [("everything", "forbid", None, None, None)]


def test_the_100_rule_limit_is_refused_and_nothing_changes(
    app: Flask, emu: Emulator, backups: Path
) -> None:
    put_overwrite_rules(
        emu,
        [oss.OverwriteRule(id=f"r{i}", action="forbid", prefix=f"other{i}/") for i in range(100)],
    )
    before = overwrite_rules(emu)
    for args in (["plan"], ["apply", "--yes"]):
        assert_one_line_error(
            run(app, *args), "already has 100 overwrite rules", "at most 100", "Nothing was changed"
        )
    assert overwrite_rules(emu) == before
    assert cors_rules(emu) is None  # the whole plan is refused, CORS included
    assert backups_in(backups) == []


def test_100_rules_with_one_covering_the_prefix_apply_cleanly(app: Flask, emu: Emulator) -> None:
    rules = [oss.OverwriteRule(id=f"r{i}", action="forbid", prefix=f"other{i}/") for i in range(99)]
    put_overwrite_rules(emu, [*rules, oss.OverwriteRule(id="up", prefix="uploads/")])
    before = overwrite_rules(emu)
    assert run(app, "apply", "--yes").exit_code == 0
    assert overwrite_rules(emu) == before


# -- backups and restore ----------------------------------------------------------------------


def test_backups_hold_the_previous_rules_and_restore_them(
    app: Flask, emu: Emulator, backups: Path
) -> None:
    put_overwrite_rules(emu, unrelated_overwrite_rules())
    overwrite_before = overwrite_rules(emu)
    assert run(app, "apply", "--yes").exit_code == 0
    [cors_backup] = backups_in(backups, "cors")
    [overwrite_backup] = backups_in(backups, "overwrite")
    assert "restore with: ossgate bucket restore THIS-FILE" in overwrite_backup.read_text()

    restored = run(app, "restore", "--yes", str(overwrite_backup), str(cors_backup))
    assert restored.exit_code == 0, restored.output
    assert overwrite_rules(emu) == overwrite_before
    assert cors_rules(emu) is None  # the CORS backup held "none": restoring deletes
    assert f"Restored the overwrite protection rules from {overwrite_backup}" in restored.stdout
    assert f"Deleted the bucket's CORS rules: {cors_backup} holds none" in restored.stdout
    # What the restore replaced was backed up too, and restoring it undoes the restore.
    replaced = [p for p in backups_in(backups, "overwrite") if p != overwrite_backup]
    assert len(replaced) == 1 and load_backup(replaced[0]).rules[-1].id == "ossgate-default"
    assert run(app, "restore", "--yes", str(replaced[0])).exit_code == 0
    assert overwrite_rules(emu) == [*overwrite_before, OURS]

    again = run(app, "restore", "--yes", str(replaced[0]))
    assert "already match" in again.stdout and len(backups_in(backups)) == 5


def test_no_backup_no_write(app: Flask, emu: Emulator, tmp_path: Path) -> None:
    """Each setting's backup comes before its write: when it cannot be saved, it stays."""
    put_overwrite_rules(emu, unrelated_overwrite_rules())
    before = overwrite_rules(emu)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    unwritable = ["--backup-dir", str(blocker / "sub")]

    result = run(app, "apply", "--yes", *unwritable)
    assert_one_line_error(result, "cannot write the backup", "nothing was changed")
    assert overwrite_rules(emu) == before and cors_rules(emu) is None

    root_bucket(emu).put_bucket_cors(BucketCors([needed_rule([PAGE])]))  # only overwrite left
    result = run(app, "apply", "--yes", *unwritable)
    assert_one_line_error(result, "cannot write the backup", "nothing was changed")
    assert overwrite_rules(emu) == before


def test_restore_refuses_a_file_that_is_no_backup(app: Flask, tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<LifecycleConfiguration/>")
    assert_one_line_error(
        run(app, "restore", "--yes", str(other)),
        "is not a CORS backup or overwrite protection backup",
        "<LifecycleConfiguration>",
    )


def test_backup_documents_round_trip_every_field_and_are_read_strictly(tmp_path: Path) -> None:
    config = OverwriteConfig(
        (
            OverwriteRule("a", "forbid", "p/", ".txt", ("111", "arn:sts::1:assumed-role/r/*")),
            OverwriteRule("b", None, None, None, ()),
            OverwriteRule(None, "forbid", "", None, None),
        )
    )
    path = tmp_path / "backup.xml"
    path.write_bytes(backup_document(config, bucket_name="b12", taken_at=datetime.now(UTC)))
    assert load_backup(path) == config

    path.write_bytes(backup_document(None, bucket_name="b12", taken_at=datetime.now(UTC)))
    assert load_backup(path) is None

    path.write_text(
        "<OverwriteConfiguration><Rule><Color>red</Color></Rule></OverwriteConfiguration>"
    )
    with pytest.raises(BackupError, match="unexpected <Color>"):
        load_backup(path)


# -- confirmation and errors ------------------------------------------------------------------


def test_apply_asks_and_respects_no(
    app: Flask, emu: Emulator, backups: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_one_line_error(run(app, "apply"), "stdin is not a terminal", "--yes")
    monkeypatch.setattr(prompts, "stdin_is_interactive", lambda: True)
    declined = run(app, "apply", input="n\n")
    assert declined.exit_code == 1 and "Not applied" in declined.stdout
    assert overwrite_rules(emu) is None and backups_in(backups) == []
    accepted = run(app, "apply", input="y\n")
    assert accepted.exit_code == 0 and overwrite_rules(emu) == [OURS]


def test_wrong_admin_key_is_one_line(app: Flask, emu: Emulator) -> None:
    result = run(app, "plan", "--access-key-secret", "wrong-secret")
    assert_one_line_error(result, "SignatureDoesNotMatch", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    assert "wrong-secret" not in result.output


def test_no_cors_origins_is_one_line(emu: Emulator, tmp_path: Path) -> None:
    app = make_app(emu, tmp_path, OSSGATE_CORS_ORIGINS="")
    assert_one_line_error(run(app, "plan"), "OSSGATE_CORS_ORIGINS is empty")


def test_the_v2_client_reports_failures_in_one_line(emu: Emulator) -> None:
    endpoint = closed_port_url().removesuffix("/oss/callback")
    unreachable = AdminSettings("examplebucket", "oss-cn-hangzhou", endpoint, "id", "secret")
    with pytest.raises(OssUnreachableError, match=r"cannot reach OSS at .*Connection refused"):
        read_overwrite(admin_v2_bucket(unreachable, connect_timeout=2))

    cfg = emu.config
    wrong = AdminSettings(cfg.bucket, cfg.region, emu.oss_endpoint, cfg.access_key_id, "nope")
    with pytest.raises(OssAccessError, match="SignatureDoesNotMatch") as refused:
        read_overwrite(admin_v2_bucket(wrong))
    assert "\n" not in str(refused.value)


def test_a_localhost_endpoint_is_addressed_path_style(emu: Emulator) -> None:
    cfg = emu.config
    localhost = emu.oss_endpoint.replace("127.0.0.1", "localhost")
    settings = AdminSettings(
        cfg.bucket, cfg.region, localhost, cfg.access_key_id, cfg.access_key_secret
    )
    assert read_overwrite(admin_v2_bucket(settings)) is None  # not examplebucket.localhost


def test_show_says_what_protects_each_destination(app: Flask, emu: Emulator) -> None:
    before = run(app, "show")
    assert before.exit_code == 0, before.output
    assert "(no overwrite protection)" in before.stdout
    assert "destination default (uploads/{user}/): NOT protected" in before.stdout
    run(app, "apply", "--yes")
    after = run(app, "show")
    assert "<ID>ossgate-default</ID>" in after.stdout
    assert "destination default (uploads/{user}/): overwrites refused by rule ossgate-default" in (
        after.stdout
    )


def test_rules_changed_meanwhile_are_not_overwritten_and_the_error_says_what_was_done(
    app: Flask, emu: Emulator, tmp_path: Path
) -> None:
    someone_elses = [oss.OverwriteRule(id="meanwhile", action="forbid", prefix="x/")]

    def change_then_agree(plan: BucketPlan) -> bool:
        put_overwrite_rules(emu, someone_elses)  # between the plan and the write
        return True

    with pytest.raises(ConcurrentChangeError) as caught:
        apply_bucket(
            admin_clients(load_admin_settings(emu.settings())),
            configured_destinations(app.extensions["ossgate"]),
            [PAGE],
            backup_dir=tmp_path / "saved",
            confirm=change_then_agree,
        )
    message = str(caught.value)
    [cors_backup] = backups_in(tmp_path / "saved", "cors")
    assert message.startswith(f"the CORS rules were applied (backup {cors_backup}), but: ")
    assert "overwrite protection rules changed while this command ran" in message
    assert overwrite_rules(emu) == [("meanwhile", "forbid", "x/", None, None)]
    assert cors_rules(emu) is not None and backups_in(tmp_path / "saved", "overwrite") == []


# -- the plan over several destinations -------------------------------------------------------


def destination(name: str, prefix: str, *, overwrite: bool = False) -> Destination:
    return Destination(name, "examplebucket", prefix, 100, ("*/*",), None, overwrite=overwrite)


def test_a_destination_that_allows_overwrites_loses_its_rule_only() -> None:
    current = OverwriteConfig(
        (
            OverwriteRule("ossgate-avatars", "forbid", "avatars/"),
            OverwriteRule("keep", "forbid", "docs/"),
        )
    )
    plan = plan_overwrite(
        current,
        [
            destination("avatars", "avatars/{user}/", overwrite=True),
            destination("docs", "docs/{user}/"),
        ],
    )
    assert plan.removed == ("ossgate-avatars",) and plan.covered_by_others == (("docs", "keep"),)
    assert plan.proposed == OverwriteConfig((OverwriteRule("keep", "forbid", "docs/"),))
    everything = OverwriteConfig((OverwriteRule("all", "forbid", ""),))
    [warning] = plan_overwrite(
        everything, [destination("avatars", "a/{user}/", overwrite=True)]
    ).warnings
    assert "allows overwrites, but rule all forbids them" in warning


def test_only_the_destinations_of_the_bucket_are_planned() -> None:
    here, elsewhere = destination("here", "here/{user}/"), destination("away", "away/{user}/")
    elsewhere = Destination(**{**elsewhere.__dict__, "bucket": "otherbucket"})
    assert for_bucket([here, elsewhere], "examplebucket") == [here]


def test_a_prefix_without_a_fixed_folder_gets_no_bucket_wide_rule() -> None:
    plan = plan_overwrite(None, [destination("default", "{user}/")])
    assert plan.proposed is None and not plan.changed
    assert "would forbid overwrites in the whole bucket" in plan.warnings[0]


def test_another_ossgates_rule_is_kept_with_a_warning() -> None:
    theirs = OverwriteRule("ossgate-elsewhere", "forbid", "elsewhere/")
    plan = plan_overwrite(OverwriteConfig((theirs,)), [destination("default", "uploads/{user}/")])
    assert plan.proposed.rules[0] == theirs and plan.added == ("ossgate-default",)
    assert any("ossgate-elsewhere looks like ossgate's" in w for w in plan.warnings)


def test_an_over_long_prefix_is_refused() -> None:
    with pytest.raises(LimitError, match="at most 1023"):
        plan_overwrite(None, [destination("default", "a" * 1024 + "/{user}/")])


# -- ossgate demo -----------------------------------------------------------------------------


def test_the_demo_protects_its_upload_prefix(tmp_path: Path) -> None:
    oss_port, sts_port, port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OSSGATE_", "ALIBABA_CLOUD_"))}
    demo = subprocess.Popen(  # noqa: S603 - our own console script
        [
            str(Path(sys.executable).parent / "ossgate"),
            "demo",
            f"--port={port}",
            f"--oss-port={oss_port}",
            f"--sts-port={sts_port}",
            f"--data-dir={tmp_path / 'data'}",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ossgate demo: open"):
                break
        output = "".join(lines)
        assert "Bucket overwrite protection: add ossgate-default" in output, output
        demo_emulator = SimpleNamespace(
            config=EmulatorConfig(), oss_endpoint=f"http://127.0.0.1:{oss_port}"
        )
        assert overwrite_rules(demo_emulator) == [OURS]
    finally:
        demo.terminate()
        demo.wait(timeout=30)
        demo.stdout.close()
