"""The emulator's RAM policy engine: STS's grammar check and OSS's role ∩ session evaluation."""

from __future__ import annotations

import json
import time

import pytest

from server.emulator.ram_policy import (
    MAX_SESSION_POLICY_CHARS,
    POLICY_GRAMMAR_CODE,
    POLICY_SIZE_CODE,
    PolicyError,
    check_session_policy_size,
    evaluate,
    is_allowed,
    match_action,
    match_resource,
    normalise_policy,
    parse_policy,
)

REGION = "oss-cn-hangzhou"
ACCOUNT = "1234567890123456"


def obj(key: str, bucket: str = "examplebucket") -> str:
    """The resource string the OSS side builds for an object request."""
    return f"acs:oss:{REGION}:{ACCOUNT}:{bucket}/{key}"


def bucket_res(bucket: str = "examplebucket") -> str:
    return f"acs:oss:{REGION}:{ACCOUNT}:{bucket}"


def policy(*statements: dict) -> dict:
    return parse_policy(json.dumps({"Version": "1", "Statement": list(statements)}))


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# --------------------------------------------------------------------------- grammar: accepted


def test_parse_normalises_strings_to_lists_and_single_statement_to_list():
    doc = parse_policy(
        json.dumps(
            {
                "Version": "1",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "oss:PutObject",
                    "Resource": "acs:oss:*:*:examplebucket/*",
                },
            }
        )
    )
    assert doc == {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["oss:PutObject"],
                "Resource": ["acs:oss:*:*:examplebucket/*"],
            }
        ],
    }


def test_parse_accepts_the_ali_oss_example_policy_with_whitespace():
    text = """
      {
        "Statement": [
          {"Action": ["oss:*"], "Effect": "Allow", "Resource": ["acs:oss:*:*:*"]}
        ],
        "Version": "1"
      }"""
    doc = parse_policy(text)
    assert doc["Statement"][0]["Action"] == ["oss:*"]


def test_parse_keeps_not_action_not_resource_and_normalises_condition_values():
    doc = policy(
        {
            "Effect": "Deny",
            "NotAction": "oss:GetObject",
            "NotResource": ["acs:oss:*:*:public/*"],
            "Condition": {
                "Bool": {"acs:SecureTransport": False},
                "NumericLessThan": {"oss:MaxKeys": 100},
                "IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "192.168.1.7"]},
            },
        }
    )
    statement = doc["Statement"][0]
    assert statement["NotAction"] == ["oss:GetObject"]
    assert statement["NotResource"] == ["acs:oss:*:*:public/*"]
    assert "Action" not in statement and "Resource" not in statement
    assert statement["Condition"] == {
        "Bool": {"acs:SecureTransport": ["false"]},
        "NumericLessThan": {"oss:MaxKeys": ["100"]},
        "IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "192.168.1.7"]},
    }


def test_normalise_policy_accepts_the_emulator_role_policy_dict():
    from server.emulator.config import default_role_policy

    role = normalise_policy(default_role_policy("examplebucket"))
    assert evaluate(role, "oss:PutObject", obj("any/key")) == "allow"
    assert evaluate(role, "oss:PutObject", obj("any/key", bucket="otherbucket")) == "none"


# --------------------------------------------------------------------------- grammar: refused


def _doc(**statement_overrides) -> dict:
    statement = {"Effect": "Allow", "Action": ["oss:PutObject"], "Resource": ["*"]}
    statement.update(statement_overrides)
    return {"Version": "1", "Statement": [statement]}


def _without(key: str) -> dict:
    doc = _doc()
    del doc["Statement"][0][key]
    return doc


BAD_POLICIES = {
    "not json": "{Version: 1}",
    "trailing garbage": '{"Version": "1", "Statement": []} x',
    "json array": json.dumps([_doc()]),
    "json string": json.dumps("policy"),
    # JSON has no NaN; Python's json would read it and turn it into the string "NaN"
    "NaN constant": json.dumps(_doc(Condition={"StringEquals": {"oss:Prefix": "@"}})).replace(
        '"@"', "NaN"
    ),
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    # the ali-oss test suite's own example of a policy STS refuses
    "Statements typo": json.dumps({"Version": "1", "Statements": _doc()["Statement"]}),
    "unknown top-level key": json.dumps({**_doc(), "Id": "x"}),
    "missing Version": json.dumps({"Statement": _doc()["Statement"]}),
    "Version 2": json.dumps({**_doc(), "Version": "2"}),
    "Version as number": json.dumps({**_doc(), "Version": 1}),
    "AWS Version": json.dumps({**_doc(), "Version": "2012-10-17"}),
    "missing Statement": json.dumps({"Version": "1"}),
    "empty Statement": json.dumps({"Version": "1", "Statement": []}),
    "Statement string": json.dumps({"Version": "1", "Statement": "Allow"}),
    "statement not object": json.dumps({"Version": "1", "Statement": ["x"]}),
    "unknown statement key": json.dumps(_doc(Principal={"RAM": ["*"]})),
    "Sid": json.dumps(_doc(Sid="one")),
    "missing Effect": json.dumps(_without("Effect")),
    "Effect lower case": json.dumps(_doc(Effect="allow")),
    "Effect Permit": json.dumps(_doc(Effect="Permit")),
    "missing Action": json.dumps(_without("Action")),
    "Action and NotAction": json.dumps(_doc(NotAction=["oss:GetObject"])),
    "missing Resource": json.dumps(_without("Resource")),
    "Resource and NotResource": json.dumps(_doc(NotResource=["*"])),
    "empty Action list": json.dumps(_doc(Action=[])),
    "empty Action string": json.dumps(_doc(Action="")),
    "Action number": json.dumps(_doc(Action=[1])),
    "Resource object": json.dumps(_doc(Resource={"a": "b"})),
    "Condition not object": json.dumps(_doc(Condition=["StringEquals"])),
    "Condition empty": json.dumps(_doc(Condition={})),
    "unknown operator": json.dumps(_doc(Condition={"StringEqualz": {"oss:Prefix": "a"}})),
    "operator wrong case": json.dumps(_doc(Condition={"stringequals": {"oss:Prefix": "a"}})),
    "operator not object": json.dumps(_doc(Condition={"StringEquals": "a"})),
    "condition values empty": json.dumps(_doc(Condition={"StringEquals": {"oss:Prefix": []}})),
    "condition value object": json.dumps(
        _doc(Condition={"StringEquals": {"oss:Prefix": {"a": 1}}})
    ),
    "bad number": json.dumps(_doc(Condition={"NumericEquals": {"oss:MaxKeys": "ten"}})),
    "bad date": json.dumps(_doc(Condition={"DateLessThan": {"acs:CurrentTime": "tomorrow"}})),
    "bad bool": json.dumps(_doc(Condition={"Bool": {"acs:SecureTransport": "yes"}})),
    "bad ip": json.dumps(_doc(Condition={"IpAddress": {"acs:SourceIp": "10.0.0.300"}})),
}


@pytest.mark.parametrize("text", BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_parse_refuses_bad_grammar_with_the_sts_code(text):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.code == "InvalidParameter.PolicyGrammar" == POLICY_GRAMMAR_CODE
    assert caught.value.message == "The parameter Policy has not passed grammar check."


def test_parse_refuses_duplicate_keys_rather_than_guessing_the_effect():
    text = (
        '{"Version": "1", "Statement": [{"Effect": "Deny", "Effect": "Allow",'
        ' "Action": "oss:*", "Resource": "*"}]}'
    )
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.code == POLICY_GRAMMAR_CODE


def test_policy_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_policy("nope")


# --------------------------------------------------------------------------- size


def test_size_limit_is_2048_characters_of_raw_text():
    assert MAX_SESSION_POLICY_CHARS == 2048
    check_session_policy_size("x" * 2048)
    with pytest.raises(PolicyError) as caught:
        check_session_policy_size("x" * 2049)
    assert caught.value.code == "InvalidParameter.PolicySize" == POLICY_SIZE_CODE


def test_size_counts_whitespace_because_sts_measures_the_parameter():
    compact = json.dumps(_doc(), separators=(",", ":"))
    padded = compact + " " * (MAX_SESSION_POLICY_CHARS + 1 - len(compact))
    parse_policy(padded)  # grammatically fine ...
    with pytest.raises(PolicyError):  # ... but too long as sent
        check_session_policy_size(padded)


# --------------------------------------------------------------------------- wildcards


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("oss:PutObject", "oss:PutObject", True),
        ("oss:PutObject", "oss:putobject", True),  # Action is not case-sensitive
        ("OSS:PUTOBJECT", "oss:PutObject", True),
        ("oss:*", "oss:GetObject", True),
        ("*", "oss:GetObject", True),
        ("oss:Put*", "oss:PutObjectAcl", True),
        ("oss:Put*", "oss:GetObject", False),
        ("oss:?etObject", "oss:GetObject", True),
        ("oss:?etObject", "oss:etObject", False),  # ? is exactly one character
        ("oss:PutObject", "oss:PutObjectAcl", False),  # no implicit prefix match
        ("oss:PutObject", "ecs:PutObject", False),
        ("oss:*", "ossx:GetObject", False),
    ],
)
def test_action_matching(pattern, action, expected):
    assert match_action(pattern, action) is expected


ALICE = "acs:oss:*:*:examplebucket/uploads/alice/*"


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        (ALICE, obj("uploads/alice/photo.jpg"), True),
        (ALICE, obj("uploads/alice/deep/er/photo.jpg"), True),  # * crosses "/"
        (ALICE, obj("uploads/alicex/photo.jpg"), False),  # prefix escape
        (ALICE, obj("uploads/bob/photo.jpg"), False),
        (ALICE, obj("uploads/alice"), False),
        (ALICE, obj("Uploads/Alice/photo.jpg"), False),  # Resource is case-sensitive
        (ALICE, obj("uploads/alice/x", bucket="otherbucket"), False),
        (ALICE, bucket_res(), False),
        # a key that embeds ":examplebucket/uploads/alice/" must not let the region or account
        # wildcard swallow the colon boundary and reach into bob's prefix
        (ALICE, obj("uploads/bob/x:examplebucket/uploads/alice/y"), False),
        (ALICE, obj("uploads/alice/a:b:c"), True),  # colons inside the relative id are fine
        ("acs:oss:*:*:examplebucket", bucket_res(), True),
        ("acs:oss:*:*:examplebucket", obj("k"), False),
        ("acs:oss:cn-beijing:*:examplebucket/*", obj("k"), False),
        (f"acs:oss:{REGION}:{ACCOUNT}:examplebucket/*", obj("k"), True),
        ("acs:oss:*:999:examplebucket/*", obj("k"), False),
        ("*", obj("anything/at/all"), True),
        ("acs:oss:*", obj("anything"), True),
        ("acs:ecs:*", obj("anything"), False),
        # regex metacharacters are literal
        ("acs:oss:*:*:examplebucket/a.b", obj("a.b"), True),
        ("acs:oss:*:*:examplebucket/a.b", obj("axb"), False),
        ("acs:oss:*:*:examplebucket/a+", obj("aa"), False),
        ("acs:oss:*:*:examplebucket/a+", obj("a+"), True),
        ("acs:oss:*:*:examplebucket/[ab]", obj("a"), False),
        ("acs:oss:*:*:examplebucket/[ab]", obj("[ab]"), True),
        ("acs:oss:*:*:examplebucket/(x)|y", obj("y"), False),
        ("acs:oss:*:*:examplebucket/(x)|y", obj("(x)|y"), True),
        ("acs:oss:*:*:examplebucket/a\\d", obj("a1"), False),
        ("acs:oss:*:*:examplebucket/a\\d", obj("a\\d"), True),
        ("acs:oss:*:*:examplebucket/^$", obj("^$"), True),
        # ? is one character, any character, including "/" and a newline
        ("acs:oss:*:*:examplebucket/a?c", obj("a/c"), True),
        ("acs:oss:*:*:examplebucket/a?c", obj("a\nc"), True),
        ("acs:oss:*:*:examplebucket/a?c", obj("ac"), False),
        ("acs:oss:*:*:examplebucket/a?c", obj("abbc"), False),
        # several stars: pieces must appear in order, the last one anchored at the end
        ("acs:oss:*:*:examplebucket/*/x/*.jpg", obj("a/x/b.jpg"), True),
        ("acs:oss:*:*:examplebucket/*/x/*.jpg", obj("a/x/b.jpg.png"), False),
        ("acs:oss:*:*:examplebucket/*ab*ab", obj("ab"), False),  # pieces cannot overlap
        ("acs:oss:*:*:examplebucket/*ab*ab", obj("abab"), True),
        ("acs:oss:*:*:examplebucket/a*", obj("a"), True),  # * may be empty
    ],
)
def test_resource_matching(pattern, resource, expected):
    assert match_resource(pattern, resource) is expected


def test_pathological_pattern_finishes_fast():
    # "a*a*a*...b" against a long run of "a": exponential for a backtracking matcher.
    pattern = "acs:oss:*:*:examplebucket/" + "a*" * 900 + "b"
    resource = obj("a" * 5000)
    started = time.perf_counter()
    assert match_resource(pattern, resource) is False
    assert match_resource(pattern, resource + "b") is True
    assert match_action("a*" * 900 + "b", "a" * 5000) is False
    assert time.perf_counter() - started < 1.0


def test_pathological_pattern_is_accepted_and_evaluated_through_a_policy():
    text = json.dumps(_doc(Resource=["acs:oss:*:*:examplebucket/" + "?*" * 800 + "z"]))
    doc = parse_policy(text)
    started = time.perf_counter()
    assert evaluate(doc, "oss:PutObject", obj("y" * 4000)) == "none"
    assert time.perf_counter() - started < 1.0


# --------------------------------------------------------------------------- one policy


def test_verdict_none_when_nothing_matches():
    doc = policy(allow("oss:PutObject", "acs:oss:*:*:examplebucket/*"))
    assert evaluate(doc, "oss:GetObject", obj("k")) == "none"


def test_deny_beats_allow_whatever_the_order():
    statements = [
        allow("oss:*", "acs:oss:*:*:examplebucket/*"),
        deny("oss:DeleteObject", "acs:oss:*:*:examplebucket/keep/*"),
    ]
    for ordered in (statements, statements[::-1]):
        doc = policy(*ordered)
        assert evaluate(doc, "oss:DeleteObject", obj("keep/x")) == "deny"
        assert evaluate(doc, "oss:DeleteObject", obj("other/x")) == "allow"
        assert evaluate(doc, "oss:GetObject", obj("keep/x")) == "allow"


def test_not_action_applies_to_every_other_action():
    doc = policy(
        {"Effect": "Allow", "NotAction": ["oss:Delete*"], "Resource": "acs:oss:*:*:examplebucket/*"}
    )
    assert evaluate(doc, "oss:PutObject", obj("k")) == "allow"
    assert evaluate(doc, "oss:DeleteObject", obj("k")) == "none"
    assert evaluate(doc, "oss:deleteobject", obj("k")) == "none"  # still case-insensitive


def test_not_resource_applies_to_every_other_resource():
    doc = policy(
        allow("oss:*", "acs:oss:*:*:examplebucket/*"),
        {"Effect": "Deny", "Action": "oss:*", "NotResource": "acs:oss:*:*:examplebucket/public/*"},
    )
    assert evaluate(doc, "oss:GetObject", obj("public/a.txt")) == "allow"
    assert evaluate(doc, "oss:GetObject", obj("private/a.txt")) == "deny"


def test_evaluate_tolerates_single_strings_in_a_hand_written_document():
    raw = {
        "Version": "1",
        "Statement": {"Effect": "Allow", "Action": "oss:PutObject", "Resource": "*"},
    }
    assert evaluate(raw, "oss:PutObject", obj("k")) == "allow"
    assert evaluate(raw, "oss:GetObject", obj("k")) == "none"


# --------------------------------------------------------------------------- intersection

ROLE = {
    "Version": "1",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["oss:*"],
            "Resource": ["acs:oss:*:*:examplebucket", "acs:oss:*:*:examplebucket/*"],
        }
    ],
}
SESSION = json.dumps(
    {
        "Version": "1",
        "Statement": [
            {"Effect": "Allow", "Action": ["oss:PutObject"], "Resource": [ALICE]},
        ],
    }
)


@pytest.fixture
def alice_policies() -> tuple[dict, dict]:
    return normalise_policy(ROLE), parse_policy(SESSION)


def test_session_policy_narrows_the_role(alice_policies):
    assert is_allowed(alice_policies, "oss:PutObject", obj("uploads/alice/x")) is True
    assert is_allowed(alice_policies, "oss:GetObject", obj("uploads/alice/x")) is False
    assert is_allowed(alice_policies, "oss:PutObject", obj("uploads/bob/x")) is False
    assert is_allowed(alice_policies, "oss:PutObject", obj("uploads/alicex/x")) is False
    # the role alone would have allowed all of these
    role = alice_policies[:1]
    assert is_allowed(role, "oss:GetObject", obj("uploads/alice/x")) is True
    assert is_allowed(role, "oss:PutObject", obj("uploads/bob/x")) is True


def test_session_policy_cannot_widen_the_role():
    role = policy(allow("oss:PutObject", "acs:oss:*:*:examplebucket/uploads/*"))
    session = policy(allow("oss:*", "*"))
    assert is_allowed((role, session), "oss:PutObject", obj("uploads/a")) is True
    assert is_allowed((role, session), "oss:DeleteObject", obj("uploads/a")) is False
    assert is_allowed((role, session), "oss:PutObject", obj("a", bucket="other")) is False


def test_a_deny_in_either_policy_wins():
    role = policy(allow("oss:*", "*"), deny("oss:PutObject", "acs:oss:*:*:examplebucket/locked/*"))
    session = policy(allow("oss:*", "*"))
    assert is_allowed((role, session), "oss:PutObject", obj("locked/x")) is False
    assert is_allowed((session, role), "oss:PutObject", obj("locked/x")) is False
    assert is_allowed((role, session), "oss:PutObject", obj("open/x")) is True


def test_no_policies_fails_closed():
    assert is_allowed((), "oss:GetObject", obj("k")) is False


# --------------------------------------------------------------------------- conditions


def conditional(condition: dict, effect: str = "Allow") -> dict:
    return policy({"Effect": effect, "Action": "oss:*", "Resource": "*", "Condition": condition})


def verdict(doc: dict, **context: str) -> str:
    # keyword names cannot hold ":", so "acs_SourceIp" stands for "acs:SourceIp"
    return evaluate(
        doc, "oss:PutObject", obj("k"), {k.replace("_", ":", 1): v for k, v in context.items()}
    )


def test_ip_address_condition():
    doc = conditional({"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "192.168.1.7"]}})
    assert verdict(doc, acs_SourceIp="10.1.2.3") == "allow"
    assert verdict(doc, acs_SourceIp="192.168.1.7") == "allow"
    assert verdict(doc, acs_SourceIp="192.168.1.8") == "none"
    assert verdict(doc, acs_SourceIp="::1") == "none"
    assert verdict(doc, acs_SourceIp="not-an-ip") == "none"


def test_not_ip_address_condition_in_a_deny():
    doc = policy(
        allow("oss:*", "*"),
        {
            "Effect": "Deny",
            "Action": "oss:*",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"acs:SourceIp": "127.0.0.0/8"}},
        },
    )
    assert verdict(doc, acs_SourceIp="127.0.0.1") == "allow"
    assert verdict(doc, acs_SourceIp="8.8.8.8") == "deny"


def test_condition_key_lookup_is_case_insensitive():
    doc = conditional({"StringEquals": {"acs:SourceVpc": "vpc-1"}})
    assert evaluate(doc, "oss:PutObject", obj("k"), {"ACS:SOURCEVPC": "vpc-1"}) == "allow"


def test_string_operators():
    equals = conditional({"StringEquals": {"oss:Prefix": ["a/", "b/"]}})
    assert verdict(equals, oss_Prefix="b/") == "allow"
    assert verdict(equals, oss_Prefix="B/") == "none"  # case-sensitive
    ignore_case = conditional({"StringEqualsIgnoreCase": {"oss:Prefix": "a/"}})
    assert verdict(ignore_case, oss_Prefix="A/") == "allow"
    like = conditional({"StringLike": {"oss:Prefix": "uploads/alice/*"}})
    assert verdict(like, oss_Prefix="uploads/alice/2024/") == "allow"
    assert verdict(like, oss_Prefix="uploads/alicex/") == "none"
    assert verdict(like, oss_Prefix="Uploads/alice/") == "none"


def test_negated_string_operators_require_no_value_to_match():
    not_equals = conditional({"StringNotEquals": {"oss:Prefix": ["a/", "b/"]}})
    assert verdict(not_equals, oss_Prefix="c/") == "allow"
    assert verdict(not_equals, oss_Prefix="a/") == "none"
    assert verdict(not_equals, oss_Prefix="b/") == "none"
    not_like = conditional({"StringNotLike": {"oss:Prefix": "secret/*"}})
    assert verdict(not_like, oss_Prefix="public/") == "allow"
    assert verdict(not_like, oss_Prefix="secret/x") == "none"
    not_equals_nocase = conditional({"StringNotEqualsIgnoreCase": {"oss:Prefix": "a/"}})
    assert verdict(not_equals_nocase, oss_Prefix="A/") == "none"


def test_bool_condition():
    doc = conditional({"Bool": {"acs:SecureTransport": "true"}})
    assert verdict(doc, acs_SecureTransport="true") == "allow"
    assert verdict(doc, acs_SecureTransport="TRUE") == "allow"
    assert verdict(doc, acs_SecureTransport="false") == "none"


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("NumericEquals", "100", "allow"),
        ("NumericEquals", "100.0", "allow"),
        ("NumericEquals", "101", "none"),
        ("NumericNotEquals", "101", "allow"),
        ("NumericNotEquals", "100", "none"),
        ("NumericLessThan", "99", "allow"),
        ("NumericLessThan", "100", "none"),
        ("NumericLessThanEquals", "100", "allow"),
        ("NumericLessThanEquals", "101", "none"),
        ("NumericGreaterThan", "101", "allow"),
        ("NumericGreaterThan", "100", "none"),
        ("NumericGreaterThanEquals", "100", "allow"),
        ("NumericGreaterThanEquals", "99", "none"),
        ("NumericEquals", "lots", "none"),
    ],
)
def test_numeric_operators(operator, value, expected):
    doc = conditional({operator: {"oss:MaxKeys": 100}})
    assert verdict(doc, oss_MaxKeys=value) == expected


@pytest.mark.parametrize(
    ("operator", "now", "expected"),
    [
        ("DateLessThan", "2019-08-12T08:59:59Z", "allow"),
        ("DateLessThan", "2019-08-12T09:00:00Z", "none"),
        ("DateLessThanEquals", "2019-08-12T17:00:00+08:00", "allow"),  # same instant
        ("DateGreaterThan", "2019-08-12T09:00:01Z", "allow"),
        ("DateGreaterThan", "2019-08-12T09:00:00Z", "none"),
        ("DateGreaterThanEquals", "2019-08-12T09:00:00Z", "allow"),
        ("DateEquals", "2019-08-12T09:00:00+00:00", "allow"),
        ("DateNotEquals", "2019-08-12T09:00:00Z", "none"),
        ("DateNotEquals", "2020-01-01T00:00:00Z", "allow"),
    ],
)
def test_date_operators_compare_instants(operator, now, expected):
    doc = conditional({operator: {"acs:CurrentTime": "2019-08-12T17:00:00+08:00"}})
    assert verdict(doc, acs_CurrentTime=now) == expected


def test_operators_and_keys_are_anded_values_ored():
    doc = conditional(
        {
            "IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "172.16.0.0/12"]},
            "StringLike": {"oss:Prefix": "uploads/*", "oss:Delimiter": "/"},
        }
    )
    good = {"acs:SourceIp": "172.16.5.5", "oss:Prefix": "uploads/a", "oss:Delimiter": "/"}
    assert evaluate(doc, "oss:ListObjects", bucket_res(), good) == "allow"
    for key, bad in (
        ("acs:SourceIp", "8.8.8.8"),
        ("oss:Prefix", "other/"),
        ("oss:Delimiter", ","),
    ):
        assert evaluate(doc, "oss:ListObjects", bucket_res(), {**good, key: bad}) == "none", key


def test_missing_condition_key_neither_grants_nor_denies():
    allow_doc = conditional({"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}})
    assert evaluate(allow_doc, "oss:PutObject", obj("k"), {}) == "none"
    assert evaluate(allow_doc, "oss:PutObject", obj("k")) == "none"
    deny_doc = policy(
        allow("oss:*", "*"),
        deny("oss:*", "*", Condition={"StringNotLike": {"oss:Prefix": "x/*"}}),
    )
    assert evaluate(deny_doc, "oss:PutObject", obj("k"), {}) == "allow"
    assert evaluate(deny_doc, "oss:PutObject", obj("k"), {"oss:Prefix": "y/"}) == "deny"


def test_condition_gates_the_intersection():
    role = normalise_policy(ROLE)
    session = policy(
        allow(
            "oss:PutObject",
            ALICE,
            Condition={"DateLessThan": {"acs:CurrentTime": "2030-01-01T00:00:00Z"}},
        )
    )
    before = {"acs:CurrentTime": "2029-12-31T23:59:59Z"}
    after = {"acs:CurrentTime": "2030-01-01T00:00:00Z"}
    assert is_allowed((role, session), "oss:PutObject", obj("uploads/alice/a"), before) is True
    assert is_allowed((role, session), "oss:PutObject", obj("uploads/alice/a"), after) is False
