"""What ``cors apply`` would write: ossgate's rule merged into the bucket's rules.

The merge keeps every other rule exactly as it was and in its place; when that is not
possible (more than 10 rules, a document over 16 KB, several rules shaped like ossgate's) it
refuses rather than drop anything. The plan is shown to the admin as a diff of the
configuration before and after, with warnings about earlier rules that would answer in
place of ossgate's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from oss2.models import BucketCors

from server.bucket.cors_rules import (
    DEFAULT_MAX_AGE,
    MAX_DOCUMENT_BYTES,
    MAX_RULES,
    NEEDED_EXPOSE_HEADERS,
    NEEDED_METHODS,
    document_bytes,
    first_matching_rule,
    is_ossgate_rule,
    needed_rule,
)
from server.bucket.errors import AmbiguousRuleError, LimitError
from server.bucket.replace import unified_diff


def _shadowing_warnings(cors: BucketCors, ours: int) -> list[str]:
    """Earlier rules that OSS would use instead of ossgate's and that hide needed headers.

    First match wins, and an ordinary response is matched on origin and method only, so an
    earlier rule naming one of ossgate's origins decides which headers the page may read.
    """
    rule = cors.rules[ours]
    needed = {h.lower() for h in NEEDED_EXPOSE_HEADERS}
    findings: dict[int, tuple[list[str], list[str], list[str]]] = {}
    for origin in rule.allowed_origins:
        if "*" in origin:
            continue
        for method in NEEDED_METHODS:
            index = first_matching_rule(cors, origin, method)
            if index is None or index == ours:
                continue
            exposed = {h.lower() for h in cors.rules[index].expose_headers}
            missing = [h for h in NEEDED_EXPOSE_HEADERS if h.lower() in needed - exposed]
            if not missing:
                continue
            origins, methods, hidden = findings.setdefault(index, ([], [], missing))
            if origin not in origins:
                origins.append(origin)
            if method not in methods:
                methods.append(method)
    return [
        f"rule #{index + 1} comes before ossgate's and also matches {', '.join(origins)}, so "
        f"OSS answers {', '.join(methods)} with it and the page cannot read "
        f"{', '.join(hidden)} there; move or narrow that rule if this matters"
        for index, (origins, methods, hidden) in sorted(findings.items())
    ]


@dataclass(frozen=True)
class Plan:
    """What ``apply`` would write: the proposed configuration and how it differs.

    ``action`` is ``"none"`` (the bucket already holds the needed rule), ``"add"`` (ossgate's
    rule is appended after every existing rule) or ``"update"`` (ossgate's rule is replaced in
    place). ``index`` is the 0-based position of ossgate's rule in ``proposed``.
    """

    current: BucketCors | None
    proposed: BucketCors
    action: str
    index: int
    removed_origins: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.action != "none"

    def summary(self) -> str:
        total = len(self.proposed.rules)
        kept = total - 1
        position = f"#{self.index + 1} of {total}"
        if self.action == "none":
            return f"nothing to change: ossgate's rule is {position} and already up to date"
        verb = "add ossgate's rule as" if self.action == "add" else "update ossgate's rule"
        if not kept:
            return f"{verb} {position} (the bucket has no other rules)"
        return f"{verb} {position}; keep the other {kept} rule(s) unchanged and in order"


def plan_change(
    current: BucketCors | None, origins: Sequence[str], max_age: int = DEFAULT_MAX_AGE
) -> Plan:
    """Merge the needed rule for ``origins`` into ``current`` without touching other rules.

    Raises ``AmbiguousRuleError`` when several rules have ossgate's shape and none already
    matches, and ``LimitError`` when the result would exceed 10 rules or 16 KB.
    """
    wanted = needed_rule(origins, max_age)
    rules = list(current.rules) if current is not None else []
    vary = current.response_vary if current is not None else None
    shaped = [i for i, r in enumerate(rules) if is_ossgate_rule(r)]
    satisfied = [
        i
        for i in shaped
        if set(rules[i].allowed_origins) == set(origins) and rules[i].max_age_seconds == max_age
    ]
    removed: tuple[str, ...] = ()
    if satisfied:
        proposed = BucketCors(rules=rules, response_vary=vary)
        action, index = "none", satisfied[0]
    elif len(shaped) > 1:
        numbers = ", ".join(f"#{i + 1}" for i in shaped)
        raise AmbiguousRuleError(
            f"rules {numbers} all have ossgate's shape (methods {' '.join(NEEDED_METHODS)}, "
            f"AllowedHeader *, ExposeHeader {' '.join(NEEDED_EXPOSE_HEADERS)}), so ossgate "
            "cannot tell which one it owns; merge them or change all but one in the console, "
            "then run apply again. Nothing was changed."
        )
    elif shaped:
        index = shaped[0]
        old = rules[index]
        removed = tuple(o for o in old.allowed_origins if o not in origins)
        rules[index] = wanted
        proposed = BucketCors(rules=rules, response_vary=vary)
        action = "update"
    else:
        if len(rules) + 1 > MAX_RULES:
            raise LimitError(
                f"the bucket already has {len(rules)} CORS rules and OSS allows at most "
                f"{MAX_RULES}, so ossgate's rule cannot be added without dropping one. Nothing "
                "was changed: remove a rule you no longer need (`ossgate cors show` lists "
                "them) and run apply again."
            )
        rules.append(wanted)
        proposed = BucketCors(rules=rules, response_vary=vary)
        action, index = "add", len(rules) - 1
    size = len(document_bytes(proposed))
    if action != "none" and size > MAX_DOCUMENT_BYTES:
        raise LimitError(
            f"the merged CORS document would be {size} bytes and OSS accepts at most "
            f"{MAX_DOCUMENT_BYTES}. Nothing was changed: shorten the origin list or remove "
            "rules you no longer need."
        )
    warnings = _shadowing_warnings(proposed, index)
    if removed:
        warnings.insert(
            0,
            f"origins no longer allowed by ossgate's rule: {', '.join(removed)} (pass them "
            "with --origin to keep them)",
        )
    return Plan(current, proposed, action, index, removed, tuple(warnings))


def render_configuration(cors: BucketCors | None) -> list[str]:
    """The configuration as indented XML lines, each rule numbered, ossgate's marked."""
    if cors is None:
        return ["(no CORS configuration)"]
    lines = ["<CORSConfiguration>"]
    for number, rule in enumerate(cors.rules, 1):
        mark = ", ossgate" if is_ossgate_rule(rule) else ""
        lines.append(f"  <CORSRule>  <!-- #{number}{mark} -->")
        for tag, values in (
            ("AllowedOrigin", rule.allowed_origins),
            ("AllowedMethod", rule.allowed_methods),
            ("AllowedHeader", rule.allowed_headers),
            ("ExposeHeader", rule.expose_headers),
        ):
            lines.extend(f"    <{tag}>{escape(v)}</{tag}>" for v in values)
        if rule.max_age_seconds is not None:
            lines.append(f"    <MaxAgeSeconds>{rule.max_age_seconds}</MaxAgeSeconds>")
        lines.append("  </CORSRule>")
    if cors.response_vary is not None:
        lines.append(f"  <ResponseVary>{str(bool(cors.response_vary)).lower()}</ResponseVary>")
    lines.append("</CORSConfiguration>")
    return lines


def render_diff(before: BucketCors | None, after: BucketCors | None, bucket_name: str) -> str:
    """A unified diff of two configurations; empty when they are the same."""
    return unified_diff(render_configuration(before), render_configuration(after), bucket_name)
