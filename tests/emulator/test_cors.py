"""Bucket CORS: the PutBucketCors document, its refusals, and rule evaluation."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import oss2.models
import oss2.xml_utils
import pytest

from server.emulator.cors import (
    MAX_DOCUMENT_BYTES,
    MAX_RULES,
    PREFLIGHT_FORBIDDEN_MESSAGE,
    CorsConfiguration,
    CorsRule,
    actual_response_headers,
    cors_to_xml,
    parse_cors_xml,
    preflight_forbidden,
    preflight_headers,
    split_header_list,
    wildcard_match,
)
from server.emulator.oss_errors import OSSError

#: The request body from the PutBucketCors reference's example, values filled in.
DOC_EXAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<CORSConfiguration>
    <CORSRule>
      <AllowedOrigin>*</AllowedOrigin>
      <AllowedMethod>PUT</AllowedMethod>
      <AllowedMethod>GET</AllowedMethod>
      <AllowedHeader>Authorization</AllowedHeader>
    </CORSRule>
    <CORSRule>
      <AllowedOrigin>http://example.com</AllowedOrigin>
      <AllowedOrigin>http://example.net</AllowedOrigin>
      <AllowedMethod>GET</AllowedMethod>
      <AllowedHeader>Authorization</AllowedHeader>
      <ExposeHeader>x-oss-test</ExposeHeader>
      <ExposeHeader>x-oss-test1</ExposeHeader>
      <MaxAgeSeconds>100</MaxAgeSeconds>
    </CORSRule>
    <ResponseVary>false</ResponseVary>
</CORSConfiguration>"""


def rule_xml(
    origins: tuple[str, ...] = ("*",),
    methods: tuple[str, ...] = ("GET",),
    extra: str = "",
) -> str:
    parts = [f"<AllowedOrigin>{o}</AllowedOrigin>" for o in origins]
    parts += [f"<AllowedMethod>{m}</AllowedMethod>" for m in methods]
    return "<CORSRule>" + "".join(parts) + extra + "</CORSRule>"


def doc(*rules: str, tail: str = "") -> bytes:
    return ("<CORSConfiguration>" + "".join(rules) + tail + "</CORSConfiguration>").encode()


def refused(body: bytes) -> OSSError:
    with pytest.raises(OSSError) as info:
        parse_cors_xml(body)
    return info.value


def cfg(*rules: CorsRule, vary: bool = False) -> CorsConfiguration:
    return CorsConfiguration(rules=rules, response_vary=vary)


def rule(
    origins: tuple[str, ...],
    methods: tuple[str, ...] = ("GET", "PUT", "POST", "HEAD", "DELETE"),
    headers: tuple[str, ...] = ("*",),
    expose: tuple[str, ...] = (),
    max_age: int | None = None,
) -> CorsRule:
    return CorsRule(origins, methods, headers, expose, max_age)


# --------------------------------------------------------------------------- parsing


def test_reference_example_parses_in_order() -> None:
    parsed = parse_cors_xml(DOC_EXAMPLE)
    assert parsed.response_vary is False
    assert parsed.rules == (
        CorsRule(("*",), ("PUT", "GET"), ("Authorization",), (), None),
        CorsRule(
            ("http://example.com", "http://example.net"),
            ("GET",),
            ("Authorization",),
            ("x-oss-test", "x-oss-test1"),
            100,
        ),
    )


def test_round_trip_through_get_document() -> None:
    original = parse_cors_xml(DOC_EXAMPLE.replace(b">false<", b">true<"))
    assert original.response_vary is True
    assert parse_cors_xml(cors_to_xml(original)) == original


def test_get_document_reads_back_with_oss2() -> None:
    """oss2's own GetBucketCors parser is the independent reader of our document."""
    result = oss2.models.GetBucketCorsResult.__new__(oss2.models.GetBucketCorsResult)
    result.rules = []
    result.response_vary = None
    oss2.xml_utils.parse_get_bucket_cors(result, cors_to_xml(parse_cors_xml(DOC_EXAMPLE)))
    assert [r.allowed_origins for r in result.rules] == [
        ["*"],
        ["http://example.com", "http://example.net"],
    ]
    assert result.rules[1].expose_headers == ["x-oss-test", "x-oss-test1"]
    assert result.rules[1].max_age_seconds == 100
    assert result.rules[0].max_age_seconds is None
    assert result.response_vary is False


def test_oss2_put_document_is_accepted() -> None:
    """What oss2 sends for put_bucket_cors parses to the same rules."""
    sent = oss2.models.BucketCors(
        [
            oss2.models.CorsRule(
                allowed_origins=["https://*.example.com"],
                allowed_methods=["PUT", "POST"],
                allowed_headers=["*"],
                expose_headers=["ETag", "x-oss-request-id"],
                max_age_seconds=600,
            )
        ],
        response_vary=True,
    )
    parsed = parse_cors_xml(oss2.xml_utils.to_put_bucket_cors(sent))
    assert parsed == cfg(
        rule(
            ("https://*.example.com",), ("PUT", "POST"), ("*",), ("ETag", "x-oss-request-id"), 600
        ),
        vary=True,
    )


def test_values_with_xml_specials_survive_the_round_trip() -> None:
    original = cfg(rule(("http://a.example?x=1&y=<2>",), ("GET",), ("x-&-h",)))
    assert parse_cors_xml(cors_to_xml(original)) == original


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<CORSConfiguration><CORSRule>",  # unterminated
        b"<Other>" + rule_xml().encode() + b"</Other>",  # wrong root
        doc(),  # no rules
        doc(rule_xml(origins=())),  # rule without origin
        doc(rule_xml(methods=())),  # rule without method
        doc(rule_xml(extra="<Bogus>1</Bogus>")),  # unknown element
        doc(rule_xml(extra="<MaxAgeSeconds>ten</MaxAgeSeconds>")),
        doc(rule_xml(extra="<MaxAgeSeconds>1</MaxAgeSeconds><MaxAgeSeconds>2</MaxAgeSeconds>")),
        doc(rule_xml(), tail="<ResponseVary>yes</ResponseVary>"),
        b'<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + rule_xml().encode()
        + b"</CORSConfiguration>",
    ],
)
def test_schema_violations_are_malformed_xml(body: bytes) -> None:
    err = refused(body)
    assert err.code == "MalformedXML"
    assert err.status == 400


@pytest.mark.parametrize(
    "body",
    [
        # classic entity expansion
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
        b"<CORSConfiguration><CORSRule><AllowedOrigin>&a;</AllowedOrigin>"
        b"<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
        # external entity
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b"<CORSConfiguration><CORSRule><AllowedOrigin>&e;</AllowedOrigin>"
        b"<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
        # a bare DOCTYPE is refused too
        b"<!DOCTYPE CORSConfiguration>" + doc(rule_xml()),
        # the same in UTF-16, where a byte search for "<!DOCTYPE" would miss it
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]>'
        "<CORSConfiguration><CORSRule><AllowedOrigin>&a;</AllowedOrigin>"
        "<AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>".encode("utf-16"),
    ],
)
def test_dtd_and_entities_are_refused(body: bytes) -> None:
    assert refused(body).code == "MalformedXML"


def test_utf16_document_without_dtd_is_fine() -> None:
    body = ('<?xml version="1.0" encoding="UTF-16"?>' + doc(rule_xml()).decode()).encode("utf-16")
    assert parse_cors_xml(body).rules[0].allowed_origins == ("*",)


def test_document_size_limit() -> None:
    padding = " " * (MAX_DOCUMENT_BYTES - len(doc(rule_xml())))
    at_limit = doc(rule_xml(), tail=padding)
    assert len(at_limit) == MAX_DOCUMENT_BYTES
    assert parse_cors_xml(at_limit).rules
    assert refused(doc(rule_xml(), tail=padding + " ")).code == "MalformedXML"


def test_rule_count_limit() -> None:
    assert len(parse_cors_xml(doc(*[rule_xml()] * MAX_RULES)).rules) == MAX_RULES
    err = refused(doc(*[rule_xml()] * (MAX_RULES + 1)))
    assert err.code == "CORSRuleBeyondLimit"
    assert err.status == 400


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "get", "*", ""])
def test_unsupported_method_is_invalid_argument(method: str) -> None:
    err = refused(doc(rule_xml(methods=("GET", method))))
    assert err.code == "InvalidArgument"
    assert err.extra["ArgumentName"] == "AllowedMethod"
    assert err.extra["ArgumentValue"] == method


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ("<AllowedOrigin>http://*.*.example.com</AllowedOrigin>", "AllowedOrigin"),
        ("<AllowedOrigin></AllowedOrigin>", "AllowedOrigin"),
        ("<AllowedHeader>x-*-*</AllowedHeader>", "AllowedHeader"),
        ("<ExposeHeader>x-oss-*</ExposeHeader>", "ExposeHeader"),
        ("<MaxAgeSeconds>-1</MaxAgeSeconds>", "MaxAgeSeconds"),
    ],
)
def test_bad_values_are_invalid_argument(extra: str, name: str) -> None:
    err = refused(doc(rule_xml(extra=extra)))
    assert err.code == "InvalidArgument"
    assert err.extra["ArgumentName"] == name


def test_single_wildcards_are_accepted() -> None:
    body = doc(
        rule_xml(
            origins=("http://*.example.com",),
            extra="<AllowedHeader>x-oss-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>",
        )
    )
    parsed = parse_cors_xml(body).rules[0]
    assert parsed.allowed_origins == ("http://*.example.com",)
    assert parsed.allowed_headers == ("x-oss-*",)


def test_get_document_always_states_response_vary() -> None:
    root = ET.fromstring(cors_to_xml(cfg(rule(("*",)))))
    assert root.findtext("ResponseVary") == "false"
    assert root.findall("CORSRule/MaxAgeSeconds") == []


# --------------------------------------------------------------------------- evaluation


def test_wildcard_match_rules() -> None:
    assert wildcard_match("http://*.example.com", "http://a.example.com", case_sensitive=True)
    assert wildcard_match("http://*.example.com", "http://a.b.example.com", case_sensitive=True)
    assert not wildcard_match("http://*.example.com", "http://example.com", case_sensitive=True)
    assert not wildcard_match("http://*.example.com", "https://a.example.com", case_sensitive=True)
    assert not wildcard_match(
        "http://*.example.com", "http://a.example.com.evil", case_sensitive=True
    )
    # prefix and suffix may not overlap: "ab*ba" must not match "aba"
    assert not wildcard_match("ab*ba", "aba", case_sensitive=True)
    assert wildcard_match("X-OSS-*", "x-oss-date", case_sensitive=False)
    assert not wildcard_match("X-OSS-*", "x-oss-date", case_sensitive=True)


def test_split_header_list() -> None:
    assert split_header_list(" authorization, x-oss-date ,,content-type") == [
        "authorization",
        "x-oss-date",
        "content-type",
    ]
    assert split_header_list(None) == []


def test_no_configuration_means_no_headers_and_no_preflight() -> None:
    assert preflight_headers(None, "http://a.example", "GET", []) is None
    assert actual_response_headers(None, "http://a.example", "GET") == {}


def test_preflight_echoes_origin_and_lists_rule() -> None:
    config = cfg(
        rule(
            ("http://app.example",),
            ("PUT", "POST"),
            ("*",),
            ("ETag", "x-oss-request-id"),
            600,
        )
    )
    headers = preflight_headers(
        config, "http://app.example", "PUT", ["Authorization", "x-oss-date", "content-type"]
    )
    assert headers == {
        "Access-Control-Allow-Origin": "http://app.example",
        "Access-Control-Allow-Methods": "PUT, POST",
        "Access-Control-Allow-Headers": "authorization, x-oss-date, content-type",
        "Access-Control-Expose-Headers": "ETag, x-oss-request-id",
        "Access-Control-Max-Age": "600",
    }


def test_star_origin_answers_star() -> None:
    headers = preflight_headers(cfg(rule(("*",))), "http://anything.example", "GET", [])
    assert headers is not None
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Headers" not in headers
    assert "Access-Control-Max-Age" not in headers


def test_first_matching_rule_wins() -> None:
    config = cfg(
        rule(("http://a.example",), ("GET",), expose=("first",)),
        rule(("http://*.example",), ("GET",), expose=("second",)),
    )
    first = preflight_headers(config, "http://a.example", "GET", [])
    second = preflight_headers(config, "http://b.example", "GET", [])
    assert first is not None and first["Access-Control-Expose-Headers"] == "first"
    assert second is not None and second["Access-Control-Expose-Headers"] == "second"


def test_later_rule_used_when_earlier_one_fails_on_method_or_header() -> None:
    config = cfg(
        rule(("*",), ("GET",), ("*",), ("by-method",)),
        rule(("http://a.example",), ("PUT",), ("content-type",), ("by-header",)),
        rule(("http://a.example",), ("PUT",), ("*",), ("catch-all",)),
    )
    by_method = preflight_headers(config, "http://a.example", "PUT", ["content-type"])
    assert by_method is not None
    assert by_method["Access-Control-Expose-Headers"] == "by-header"
    by_header = preflight_headers(config, "http://a.example", "PUT", ["x-oss-date"])
    assert by_header is not None
    assert by_header["Access-Control-Expose-Headers"] == "catch-all"


def test_wildcard_origin_matching() -> None:
    config = cfg(rule(("http://*.example.com",)))
    assert preflight_headers(config, "http://app.example.com", "GET", []) is not None
    assert preflight_headers(config, "http://example.com", "GET", []) is None
    assert preflight_headers(config, "https://app.example.com", "GET", []) is None
    assert preflight_headers(config, "http://app.example.com.evil.net", "GET", []) is None


def test_origin_with_port_must_match_exactly() -> None:
    config = cfg(rule(("http://localhost:8000",)))
    assert preflight_headers(config, "http://localhost:8000", "GET", []) is not None
    assert preflight_headers(config, "http://localhost:8001", "GET", []) is None


def test_method_must_be_allowed() -> None:
    config = cfg(rule(("*",), ("GET", "HEAD")))
    assert preflight_headers(config, "http://a.example", "HEAD", []) is not None
    assert preflight_headers(config, "http://a.example", "PUT", []) is None
    assert preflight_headers(config, "http://a.example", "DELETE", []) is None


def test_every_requested_header_must_match() -> None:
    config = cfg(rule(("*",), ("PUT",), ("x-oss-*", "Content-Type", "authorization")))
    allowed = ["Authorization", "X-OSS-Date", "content-type", "x-oss-security-token"]
    assert preflight_headers(config, "http://a.example", "PUT", allowed) is not None
    # one header outside the list sinks the whole rule
    assert preflight_headers(config, "http://a.example", "PUT", [*allowed, "x-custom"]) is None


def test_rule_without_allowed_headers_only_passes_headerless_preflights() -> None:
    config = cfg(rule(("*",), ("GET",), ()))
    assert preflight_headers(config, "http://a.example", "GET", []) is not None
    assert preflight_headers(config, "http://a.example", "GET", ["x-oss-date"]) is None


def test_response_vary() -> None:
    with_vary = cfg(rule(("http://a.example",)), vary=True)
    pre = preflight_headers(with_vary, "http://a.example", "GET", [])
    assert pre is not None and pre["Vary"] == "Origin"
    no_vary = preflight_headers(cfg(rule(("http://a.example",))), "http://a.example", "GET", [])
    assert no_vary is not None and "Vary" not in no_vary
    # On normal responses Vary: Origin is sent even without Origin or without a match.
    assert actual_response_headers(with_vary, None, "GET") == {"Vary": "Origin"}
    assert actual_response_headers(with_vary, "http://b.example", "GET") == {"Vary": "Origin"}


def test_actual_response_headers() -> None:
    config = cfg(rule(("http://a.example",), ("GET", "PUT"), ("*",), ("ETag",), 60))
    assert actual_response_headers(config, "http://a.example", "PUT") == {
        "Access-Control-Allow-Origin": "http://a.example",
        "Access-Control-Allow-Methods": "GET, PUT",
        "Access-Control-Expose-Headers": "ETag",
        "Access-Control-Max-Age": "60",
    }
    assert actual_response_headers(config, None, "GET") == {}
    assert actual_response_headers(config, "http://b.example", "GET") == {}
    assert actual_response_headers(config, "http://a.example", "DELETE") == {}


def test_preflight_forbidden_error() -> None:
    err = preflight_forbidden()
    assert (err.code, err.status) == ("AccessForbidden", 403)
    assert err.message == PREFLIGHT_FORBIDDEN_MESSAGE
    assert b"<Code>AccessForbidden</Code>" in err.to_xml("rid", "host")
