"""Bucket overwrite protection: PutBucketOverwriteConfig and friends, and how OSS applies it.

Sources: OSS API reference PutBucketOverwriteConfig / GetBucketOverwriteConfig /
DeleteBucketOverwriteConfig, the "Prevent file overwrites" user guide, the v2 SDKs' models and
integration tests (Python, Kotlin: ``404 NoSuchBucketOverwriteConfig`` once deleted; DELETE
answers 204) and the bucket-policy FAQ for how principals are written. What they say, and what
the emulator therefore does:

- ``PUT /?overwriteConfig`` takes ``<OverwriteConfiguration>`` with ``<Rule>`` elements, each
  with optional ``ID``, ``Action`` (only ``forbid``), ``Prefix``, ``Suffix`` and
  ``Principals``/``Principal``. It *replaces* the whole configuration, like CORS. At most 100
  rules; Prefix and Suffix at most 1,023 characters, at most one of each per rule, matched
  literally (``*`` is an ordinary character); an ID, if given, is unique, and a missing one is
  filled with a UUID (stored, so GET and later restarts show the same one).
- ``GET /?overwriteConfig`` echoes the rules (elements that were not sent are not invented);
  without a configuration it is ``404 NoSuchBucketOverwriteConfig``. ``DELETE`` answers 204.
- RAM actions ``oss:PutBucketOverwriteConfig``, ``oss:GetBucketOverwriteConfig``,
  ``oss:DeleteBucketOverwriteConfig`` on the bucket resource (the root key may do anything).
- Enforcement: a write that would replace an *existing* object is refused with ``409
  FileAlreadyExists`` (the code ``x-oss-forbid-overwrite`` also uses) when any rule matches:
  the key starts with the prefix, ends with the suffix, and the requester is one of the
  principals, or the rule names none (then everyone, the account's root key included). A write
  to a new key always passes. Principals are written as in bucket policies: the account UID
  for the root key, ``arn:sts::<account UID>:assumed-role/<role name>/<session name>`` for STS
  credentials, with ``*`` as a wildcard.
- Enforced on PutObject, PostObject, CompleteMultipartUpload and CopyObject (on its target), the
  writes the emulator implements (AppendObject is not). InitiateMultipartUpload writes nothing,
  so only Complete is checked, against the object that exists then.

Choices where the references give no code: ``MalformedXML`` for a document that is not such XML
(wrong root, unknown or repeated elements); ``InvalidArgument`` for values the references
forbid (over 100 rules, an Action other than ``forbid``, a repeated ID, an over-long prefix or
suffix, an empty Principal). A rule without ``Action`` is accepted and forbids, ``forbid``
being the only action there is.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - documents are parsed by oss_xml only
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from server.emulator.oss_errors import OSSError
from server.emulator.oss_xml import parse_untrusted
from server.emulator.principal import Principal
from server.emulator.ram_policy import match_wildcard

#: PutBucketOverwriteConfig: "A single bucket can have a maximum of 100 overwrite protection rules."
MAX_RULES = 100
#: PutBucketOverwriteConfig: "The maximum length for Prefix and Suffix is 1,023 characters."
MAX_AFFIX_CHARS = 1023
#: PutBucketOverwriteConfig: "Only forbid is supported."
ACTION_FORBID = "forbid"
#: The error GetBucketOverwriteConfig answers without a configuration (v2 SDK tests).
NO_CONFIG_CODE = "NoSuchBucketOverwriteConfig"
NO_CONFIG_MESSAGE = "The bucket has no overwrite configuration."
MALFORMED_XML_MESSAGE = (
    "The XML you provided was not well-formed or did not validate against our published schema."
)
_RULE_FIELDS = ("ID", "Action", "Prefix", "Suffix", "Principals")


@dataclass(frozen=True)
class OverwriteRule:
    """One ``<Rule>``; ``None`` marks an element the request did not send (GET omits it)."""

    id: str
    action: str | None
    prefix: str | None
    suffix: str | None
    principals: tuple[str, ...] | None

    def covers(self, key: str, principal: str) -> bool:
        """Whether this rule forbids ``principal`` to overwrite ``key``."""
        prefix, suffix = self.prefix or "", self.suffix or ""
        if not (key.startswith(prefix) and key.endswith(suffix)):
            return False
        if not self.principals:
            return True
        return any(match_wildcard(pattern, principal) for pattern in self.principals)


@dataclass(frozen=True)
class OverwriteConfiguration:
    rules: tuple[OverwriteRule, ...]

    def forbidding_rule(self, key: str, principal: str) -> OverwriteRule | None:
        """The first rule that forbids ``principal`` to overwrite ``key``, if any."""
        return next((rule for rule in self.rules if rule.covers(key, principal)), None)


def principal_name(principal: Principal, account_id: str, role_name: str) -> str:
    """How a rule's ``Principal`` names this caller (bucket-policy syntax)."""
    if principal.is_root:
        return account_id
    if principal.is_anonymous:
        return ""
    return f"arn:sts::{account_id}:assumed-role/{role_name}/{principal.role_session_name or ''}"


# --------------------------------------------------------------------------- parsing


def _malformed(detail: str) -> OSSError:
    return OSSError("MalformedXML", f"{MALFORMED_XML_MESSAGE} {detail}")


def _invalid(message: str, name: str, value: str) -> OSSError:
    return OSSError("InvalidArgument", message, ArgumentName=name, ArgumentValue=value[:256])


def _leaf(element: ET.Element) -> str:
    if len(element):
        raise _malformed(f"Element {element.tag} must not have children.")
    return element.text or ""


def _parse_principals(element: ET.Element) -> tuple[str, ...]:
    principals = []
    for child in element:
        if child.tag != "Principal":
            raise _malformed(f"Unexpected element {child.tag} in Principals.")
        value = _leaf(child).strip()
        if not value:
            raise _invalid("A Principal must not be empty.", "Principal", value)
        principals.append(value)
    return tuple(principals)


def _parse_rule(element: ET.Element, new_id: Callable[[], str]) -> OverwriteRule:
    seen: dict[str, ET.Element] = {}
    for child in element:
        if child.tag not in _RULE_FIELDS:
            raise _malformed(f"Unexpected element {child.tag} in Rule.")
        if child.tag in seen:
            raise _malformed(f"A Rule may hold at most one {child.tag}.")
        seen[child.tag] = child
    action = _leaf(seen["Action"]).strip() if "Action" in seen else None
    if action is not None and action != ACTION_FORBID:
        raise _invalid(f"Action must be {ACTION_FORBID}, the only one supported.", "Action", action)
    affixes: dict[str, str | None] = {}
    for name in ("Prefix", "Suffix"):
        value = _leaf(seen[name]) if name in seen else None
        if value is not None and len(value) > MAX_AFFIX_CHARS:
            raise _invalid(f"{name} must be at most {MAX_AFFIX_CHARS} characters.", name, value)
        affixes[name] = value
    rule_id = _leaf(seen["ID"]).strip() if "ID" in seen else ""
    return OverwriteRule(
        id=rule_id or new_id(),
        action=action,
        prefix=affixes["Prefix"],
        suffix=affixes["Suffix"],
        principals=_parse_principals(seen["Principals"]) if "Principals" in seen else None,
    )


def parse_overwrite_xml(
    body: bytes, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
) -> OverwriteConfiguration:
    """Parse and validate a PutBucketOverwriteConfig body; ``OSSError`` with OSS's codes."""
    try:
        root = parse_untrusted(body)
    except ValueError:
        raise _malformed("The body is not an XML document.") from None
    if root.tag != "OverwriteConfiguration":
        raise _malformed("The root element must be OverwriteConfiguration.")
    elements = list(root)
    for child in elements:
        if child.tag != "Rule":
            raise _malformed(f"Unexpected element {child.tag} in OverwriteConfiguration.")
    if len(elements) > MAX_RULES:
        raise _invalid(
            f"A bucket can have at most {MAX_RULES} overwrite rules.", "Rule", str(len(elements))
        )
    rules = tuple(_parse_rule(element, new_id) for element in elements)
    ids = [rule.id for rule in rules]
    for rule_id in ids:
        if ids.count(rule_id) > 1:
            raise _invalid("Every rule ID must be unique.", "ID", rule_id)
    return OverwriteConfiguration(rules)


def overwrite_to_xml(config: OverwriteConfiguration) -> bytes:
    """The GetBucketOverwriteConfig document (and the stored form, IDs filled in)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<OverwriteConfiguration>\n']
    for rule in config.rules:
        parts.append("  <Rule>\n")
        parts.append(f"    <ID>{escape(rule.id)}</ID>\n")
        for tag, value in (
            ("Action", rule.action),
            ("Prefix", rule.prefix),
            ("Suffix", rule.suffix),
        ):
            if value is not None:
                parts.append(f"    <{tag}>{escape(value)}</{tag}>\n")
        if rule.principals is not None:
            parts.append("    <Principals>\n")
            parts.extend(f"      <Principal>{escape(p)}</Principal>\n" for p in rule.principals)
            parts.append("    </Principals>\n")
        parts.append("  </Rule>\n")
    parts.append("</OverwriteConfiguration>\n")
    return "".join(parts).encode()
