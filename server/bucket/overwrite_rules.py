"""Overwrite protection rules: ossgate's rule per destination, and what a rule protects.

A browser holding STS credentials for ``uploads/alice/`` can write the same key twice, and
``x-oss-forbid-overwrite`` is a header the uploader may leave out. A bucket's overwrite
protection (PutBucketOverwriteConfig) refuses the second write whatever the request says
(``409 FileAlreadyExists``), so for every destination with ``overwrite = false`` ossgate wants
one rule: ID ``ossgate-<destination>``, Action ``forbid``, Prefix the destination's literal
prefix (the part of its template before ``{user}``), no suffix, no principals (everyone).

Facts from the OSS API reference (PutBucketOverwriteConfig, GetBucketOverwriteConfig): a PUT
replaces the whole configuration; at most 100 rules; Prefix and Suffix at most 1,023
characters each, matched literally; no Principals, or an empty element, means everyone;
``forbid`` is the only action.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # noqa: S405 - builds documents, parses none
from collections.abc import Iterable
from dataclasses import dataclass

from server.destinations.destination import Destination

#: PutBucketOverwriteConfig: "A single bucket can have a maximum of 100 overwrite rules."
MAX_RULES = 100
#: PutBucketOverwriteConfig: "The maximum length for Prefix and Suffix is 1,023 characters."
MAX_AFFIX_CHARS = 1023
#: PutBucketOverwriteConfig: "Only forbid is supported."
ACTION_FORBID = "forbid"
#: How ossgate names its own rules: ``ossgate-<destination name>``.
RULE_ID_PREFIX = "ossgate-"


@dataclass(frozen=True)
class OverwriteRule:
    """One ``<Rule>``; ``None`` is an element the bucket did not hold (kept absent on write,
    so another tool's rule goes back exactly as it came)."""

    id: str | None
    action: str | None = ACTION_FORBID
    prefix: str | None = None
    suffix: str | None = None
    principals: tuple[str, ...] | None = None

    @property
    def is_ossgate(self) -> bool:
        return (self.id or "").startswith(RULE_ID_PREFIX)

    def forbids_everyone_under(self, prefix: str) -> bool:
        """Whether this rule refuses every overwrite of every key under ``prefix``, whoever
        writes: its prefix starts ``prefix``, it has no suffix and names no principals."""
        return (
            self.action in (None, ACTION_FORBID)
            and prefix.startswith(self.prefix or "")
            and not self.suffix
            and not self.principals
        )


@dataclass(frozen=True)
class OverwriteConfig:
    """A bucket's overwrite configuration: its rules in order. "None at all" is ``None``."""

    rules: tuple[OverwriteRule, ...]

    def rule(self, rule_id: str) -> OverwriteRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def rule_id(destination: Destination) -> str:
    """The ID of ossgate's rule for ``destination``."""
    return f"{RULE_ID_PREFIX}{destination.name}"


def protected_prefix(destination: Destination) -> str:
    """The prefix ossgate's rule names: every user's folder of ``destination`` starts with it."""
    return destination.literal_prefix


def needed_rule(destination: Destination) -> OverwriteRule:
    """ossgate's rule for a destination that forbids overwrites."""
    return OverwriteRule(
        id=rule_id(destination), action=ACTION_FORBID, prefix=protected_prefix(destination)
    )


def covering_rule(config: OverwriteConfig | None, prefix: str) -> OverwriteRule | None:
    """The first rule that refuses every overwrite under ``prefix``, if any.

    A rule limited to some principals or suffixes is not enough: a browser writes with STS
    credentials and any key name it likes under its folder.
    """
    if config is None:
        return None
    return next((r for r in config.rules if r.forbids_everyone_under(prefix)), None)


def unprotected(
    config: OverwriteConfig | None, destinations: Iterable[Destination]
) -> list[Destination]:
    """The destinations that forbid overwrites but whose prefix no rule fully covers."""
    return [
        d
        for d in destinations
        if not d.overwrite and covering_rule(config, protected_prefix(d)) is None
    ]


def configuration_element(config: OverwriteConfig | None) -> ET.Element:
    """The PutBucketOverwriteConfig document of ``config`` (empty for ``None``)."""
    root = ET.Element("OverwriteConfiguration")
    for rule in config.rules if config is not None else ():
        element = ET.SubElement(root, "Rule")
        for tag, value in (
            ("ID", rule.id),
            ("Action", rule.action),
            ("Prefix", rule.prefix),
            ("Suffix", rule.suffix),
        ):
            if value is not None:
                ET.SubElement(element, tag).text = value
        if rule.principals is not None:
            principals = ET.SubElement(element, "Principals")
            for principal in rule.principals:
                ET.SubElement(principals, "Principal").text = principal
    return root


def render(config: OverwriteConfig | None) -> list[str]:
    """The configuration as indented XML lines, each rule numbered, ossgate's marked."""
    if config is None:
        return ["(no overwrite protection)"]
    lines = ["<OverwriteConfiguration>"]
    for number, rule in enumerate(config.rules, 1):
        mark = ", ossgate" if rule.is_ossgate else ""
        lines.append(f"  <Rule>  <!-- #{number}{mark} -->")
        for child in configuration_element(OverwriteConfig((rule,)))[0]:
            if child.tag == "Principals":
                lines.append("    <Principals>")
                lines.extend(f"      {_xml(p)}" for p in child)
                lines.append("    </Principals>")
            else:
                lines.append(f"    {_xml(child)}")
        lines.append("  </Rule>")
    lines.append("</OverwriteConfiguration>")
    return lines


def _xml(element: ET.Element) -> str:
    return ET.tostring(element, encoding="unicode", short_empty_elements=False)
