"""What ``bucket apply`` would write for overwrite protection: ossgate's rules merged in.

Every rule that is not ossgate's stays exactly as it was and where it was. ossgate's own rules
are the ones with ID ``ossgate-<destination>``: one is added (at the end) for each destination
that forbids overwrites and whose prefix no rule covers yet, put back to its shape when
someone changed it, and removed when its destination now allows overwrites. A rule named
``ossgate-<name>`` for a destination this configuration does not know is left alone with a
warning, since another ossgate sharing the bucket may own it. Going over OSS's 100 rules is
refused rather than dropping anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.bucket.errors import LimitError
from server.bucket.overwrite_rules import (
    MAX_AFFIX_CHARS,
    MAX_RULES,
    OverwriteConfig,
    OverwriteRule,
    covering_rule,
    needed_rule,
    protected_prefix,
    render,
    rule_id,
)
from server.bucket.replace import unified_diff
from server.destinations.destination import Destination


@dataclass(frozen=True)
class OverwritePlan:
    """What apply would write: ``proposed`` in place of ``current`` (``None``: no
    configuration, written as DeleteBucketOverwriteConfig), with the rule IDs it adds,
    updates and removes, and the destinations another rule already protects."""

    current: OverwriteConfig | None
    proposed: OverwriteConfig | None
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    covered_by_others: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.current != self.proposed

    def summary(self) -> str:
        total = len(self.proposed.rules) if self.proposed is not None else 0
        notes = [
            f"destination {name} is already protected by rule {other}"
            for name, other in self.covered_by_others
        ]
        if not self.changed:
            return "; ".join([f"nothing to change ({total} rule(s) in place)", *notes])
        changes = [
            f"{verb} {', '.join(ids)}"
            for verb, ids in (
                ("add", self.added),
                ("update", self.updated),
                ("remove", self.removed),
            )
            if ids
        ]
        kept = total - len(self.added) - len(self.updated)
        return "; ".join(
            [*changes, f"keep the other {kept} rule(s) unchanged and in order", *notes]
        )


def plan_overwrite(
    current: OverwriteConfig | None, destinations: Sequence[Destination]
) -> OverwritePlan:
    """Merge the rules ``destinations`` need into ``current`` without touching other rules.

    Raises ``LimitError`` when the result would break an OSS limit (100 rules, a prefix
    over 1,023 characters); nothing is dropped to make room.
    """
    rules: list[OverwriteRule] = list(current.rules) if current is not None else []
    added: list[str] = []
    updated: list[str] = []
    removed: list[str] = []
    covered: list[tuple[str, str]] = []
    warnings: list[str] = []
    for destination in destinations:
        ours = rule_id(destination)
        index = next((i for i, r in enumerate(rules) if r.id == ours), None)
        prefix = protected_prefix(destination)
        if destination.overwrite:
            if index is not None:
                del rules[index]
                removed.append(ours)
            other = covering_rule(OverwriteConfig(tuple(rules)), prefix)
            if other is not None:
                warnings.append(
                    f"destination {destination.name} allows overwrites, but rule {other.id} "
                    f"forbids them under {prefix!r}; change that rule if uploads there may "
                    "replace each other"
                )
            continue
        if not prefix:
            warnings.append(
                f"destination {destination.name}'s prefix {destination.prefix_template!r} "
                "starts with {user}, so a rule would forbid overwrites in the whole bucket: "
                "none is written for it (the verdict still rejects overwrites); give the "
                "prefix a fixed first folder such as uploads/{user}/"
            )
            continue
        if len(prefix) > MAX_AFFIX_CHARS:
            raise LimitError(
                f"destination {destination.name}'s prefix {prefix[:40]!r}… is {len(prefix)} "
                f"characters and OSS accepts at most {MAX_AFFIX_CHARS} in a rule. Nothing "
                "was changed: shorten the prefix."
            )
        wanted = needed_rule(destination)
        if index is not None:
            if rules[index] != wanted:
                rules[index] = wanted
                updated.append(ours)
            continue
        other = covering_rule(OverwriteConfig(tuple(rules)), prefix)
        if other is not None:
            covered.append((destination.name, other.id or "(no ID)"))
            continue
        rules.append(wanted)
        added.append(ours)
    if added and len(rules) > MAX_RULES:
        before = len(rules) - len(added)
        raise LimitError(
            f"the bucket already has {before} overwrite rules and OSS allows at most "
            f"{MAX_RULES}, so ossgate's {', '.join(added)} cannot be added without dropping "
            "one. Nothing was changed: remove a rule you no longer need (`ossgate bucket show` "
            "lists them) and run apply again."
        )
    known = {rule_id(d) for d in destinations}
    warnings.extend(
        f"rule {rule.id} looks like ossgate's but names no configured destination; it was "
        "kept (another ossgate may use this bucket): delete it if it is stale"
        for rule in rules
        if rule.is_ossgate and rule.id not in known
    )
    proposed = OverwriteConfig(tuple(rules)) if rules else None
    return OverwritePlan(
        current,
        proposed,
        tuple(added),
        tuple(updated),
        tuple(removed),
        tuple(covered),
        tuple(warnings),
    )


def render_diff(
    before: OverwriteConfig | None, after: OverwriteConfig | None, bucket_name: str
) -> str:
    """A unified diff of two overwrite configurations; empty when they are the same."""
    return unified_diff(render(before), render(after), bucket_name)
