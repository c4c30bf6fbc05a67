"""The verdict: the one place an object under a destination's prefix becomes a record.

The browser builds its OSS requests itself, so it can lie about size and type, skip the
callback, or write the same key twice; the session policy bounds only *where* it writes. What
ossgate promises beyond that is enforced here, after the upload, from the object itself:
every piece of evidence that an upload happened (a callback, a browser's confirm, the sweep,
``uploads reconcile``) comes through ``judge``, which HEADs the object, checks it against the
destination's rules and records the outcome:

- **accepted**: a record with the object's real facts (ETag, size, type from the HEAD);
- **rejected**: a record with ``status="rejected"`` and a ``reason``, and the object deleted
  (or moved under the quarantine prefix), so it never serves as an upload.

The record and the event telling the host app about it (server.events.outbox) are written in
one transaction, and only when the verdict changed the record. Recording comes first and
disposal second: if the delete fails, the record already says "rejected", and the next piece
of evidence for the same object (the sweep lists it again) disposes of it again. Judging is
idempotent per (bucket, key, ETag): the same object judged twice gets the same verdict and
changes nothing (and emits no second event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypedDict, TypeGuard

import oss2
from sqlalchemy import Connection

from server.bucket.access import ObjectFacts, head
from server.destinations.destination import Destination
from server.events.outbox import record_event
from server.metrics import registry as metrics
from server.uploads.records import (
    STATUS_ACCEPTED,
    STATUS_REJECTED,
    NewRecord,
    UploadRecord,
    UploadRecords,
    is_duplicate,
)

log = logging.getLogger(__name__)

#: Why an upload was rejected (the ``reason`` of a rejected record and of the callback's answer).
REASON_TOO_LARGE = "too_large"
REASON_TYPE_NOT_ALLOWED = "type_not_allowed"
REASON_OVERWRITE_FORBIDDEN = "overwrite_forbidden"
REASONS = (REASON_TOO_LARGE, REASON_TYPE_NOT_ALLOWED, REASON_OVERWRITE_FORBIDDEN)

#: What happens to a rejected object (``OSSGATE_REJECTED_ACTION``).
ACTION_DELETE = "delete"
ACTION_QUARANTINE = "quarantine"


class ObjectGone(LookupError):
    """There is no object at the key, and no rejection explains its absence."""


@dataclass(frozen=True)
class Disposal:
    """What to do with a rejected object: delete it, or move it under ``quarantine_prefix``."""

    action: str = ACTION_DELETE
    quarantine_prefix: str = "quarantine/"


#: The default: rejected objects are deleted.
DELETE = Disposal()


@dataclass(frozen=True)
class Evidence:
    """Someone says an upload happened at ``key``. Only the key is believed; ``custom`` is the
    uploader's own claim (``x:`` callback vars), stored as such."""

    key: str
    owner: str
    source: str
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    record: UploadRecord
    changed: bool  # False when the same object had been judged before

    @property
    def accepted(self) -> bool:
        return self.record.status == STATUS_ACCEPTED


def human_size(size: int) -> str:
    """``1000 B``, ``4.9 KB``, ``12.0 MB``: short, for messages a person reads."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def broken_rule(
    destination: Destination, facts: ObjectFacts, previous: UploadRecord | None
) -> tuple[str, str] | None:
    """``(reason, message)`` of the first rule the object breaks, or None when it keeps all.

    ``previous`` is the record at the same key, if any: replacing an accepted object with a
    different one is an overwrite, which a destination forbids unless it says otherwise.
    """
    if facts.size > destination.max_bytes:
        return REASON_TOO_LARGE, (
            f"{human_size(facts.size)} is over the {human_size(destination.max_bytes)} limit; "
            "the file was removed"
        )
    if not destination.allows_content_type(facts.content_type):
        return REASON_TYPE_NOT_ALLOWED, (
            f"files of type {facts.content_type} are not allowed here "
            f"(allowed: {', '.join(destination.content_types)}); the file was removed"
        )
    if (
        not destination.overwrite
        and previous is not None
        and previous.status == STATUS_ACCEPTED
        and previous.etag != facts.etag
    ):
        return REASON_OVERWRITE_FORBIDDEN, (
            "another upload was already accepted at this key, and uploads here may not "
            "replace each other; the new file was removed"
        )
    return None


class _Outcome(TypedDict):
    status: str
    reason: str | None
    message: str | None


def _outcome(broken: tuple[str, str] | None) -> _Outcome:
    """The record's status, reason and message for a broken rule (None: accepted)."""
    if broken is None:
        return {"status": STATUS_ACCEPTED, "reason": None, "message": None}
    return {"status": STATUS_REJECTED, "reason": broken[0], "message": broken[1]}


def _judged_before(
    previous: UploadRecord | None, facts: ObjectFacts, source: str
) -> TypeGuard[UploadRecord]:
    """Whether ``previous`` is this very object already judged, so nothing is written: the
    same ETag, and rejected, or a duplicate as ``record_upload`` counts one (a callback does
    confirm what the sweep or reconcile found first)."""
    return (
        previous is not None
        and previous.etag == facts.etag
        and (previous.status == STATUS_REJECTED or is_duplicate(previous, facts.etag, source))
    )


def judge(
    evidence: Evidence,
    *,
    destination: Destination,
    bucket: oss2.Bucket,
    records: UploadRecords,
    disposal: Disposal = DELETE,
) -> Verdict:
    """Judge the object at ``evidence.key`` and record the verdict; see the module docstring.

    ``bucket`` is the server's own client (it must be allowed to HEAD and delete under the
    destination's prefix, and to write under the quarantine prefix when quarantining).
    Raises ``ObjectGone`` when there is no object and no rejection of it on record, and what
    oss2 or the database raise when they fail (the caller answers 503; nothing is lost, as
    the object stays until a later piece of evidence judges it).
    """
    facts = head(bucket, evidence.key)
    if facts is None:
        previous = records.get(destination.bucket, evidence.key)
        if previous is not None and previous.status == STATUS_REJECTED:
            return Verdict(previous, changed=False)  # removed by its own verdict
        raise ObjectGone(evidence.key)
    found = facts  # for the closure below (a narrowed name, for the type checker)

    def record(broken: tuple[str, str] | None) -> NewRecord:
        return {
            "bucket": destination.bucket,
            "key": evidence.key,
            "etag": found.etag,
            "size": found.size,
            "content_type": found.content_type,
            "owner": evidence.owner,
            "destination": destination.name,
            "source": evidence.source,
            "custom": evidence.custom,
            **_outcome(broken),
        }

    def decide(connection: Connection) -> tuple[Verdict, tuple[str, str] | None, bool]:
        """The verdict, written: ``(verdict, broken rule, whether to dispose)``.

        Runs in the queued write (server.uploads.write_lock), the HEAD done before it so no
        network wait holds the lock. Most uploads are new objects: one INSERT records them,
        and the record is read only when the key already has one (an overwrite, an OSS
        retry, a confirm after the callback).
        """
        broken = broken_rule(destination, found, None)
        created = records.insert_new(connection, record(broken), on_change=record_event)
        if created is not None:
            return Verdict(created.record, changed=True), broken, broken is not None
        previous = records.get(destination.bucket, evidence.key, connection=connection)
        if _judged_before(previous, found, evidence.source):
            # A rejected object still there means its disposal failed then.
            return Verdict(previous, changed=False), None, previous.status == STATUS_REJECTED
        broken = broken_rule(destination, found, previous)
        outcome = records.record_upload(
            **record(broken),
            on_change=record_event,
            seen=previous,  # read above: not read again (the write still checks it)
            connection=connection,
        )
        dispose = broken is not None and outcome.record.etag == found.etag
        return Verdict(outcome.record, changed=outcome.changed), broken, dispose

    # Disposal after the commit, so a rejected object is gone only once its record says why.
    verdict, broken, dispose = records.write(decide)
    if verdict.changed:
        metrics.count_verdict(verdict.record.status, verdict.record.reason, evidence.source)
    if dispose:
        if broken is not None:
            log.info("upload rejected (%s): %s", broken[0], evidence.key)
        _dispose(bucket, evidence.key, disposal)
    return verdict


def reject_unwritten(
    *,
    destination: Destination,
    key: str,
    owner: str,
    size: int,
    content_type: str,
    source: str,
    records: UploadRecords,
) -> Verdict:
    """Record the rejection of an upload refused before its object existed: too large.

    A multipart upload whose parts add up to more than ``destination.max_bytes`` is refused
    before it is completed (server.uppy), so there is no object to HEAD and no ETag: the record
    has an empty ETag, and the same ``upload.rejected`` event as any other rejection is written
    with it, so the host app hears of every refusal the same way.
    """
    message = (
        f"{human_size(size)} is over the {human_size(destination.max_bytes)} limit; "
        "the upload was aborted"
    )
    outcome = records.record_upload(
        bucket=destination.bucket,
        key=key,
        etag="",
        size=size,
        content_type=content_type,
        owner=owner,
        destination=destination.name,
        source=source,
        status=STATUS_REJECTED,
        reason=REASON_TOO_LARGE,
        message=message,
        on_change=record_event,
    )
    if outcome.changed:
        metrics.count_verdict(STATUS_REJECTED, REASON_TOO_LARGE, source)
    log.info("upload rejected before completion (%s): %s", REASON_TOO_LARGE, key)
    return Verdict(outcome.record, changed=outcome.changed)


def _dispose(bucket: oss2.Bucket, key: str, disposal: Disposal) -> None:
    """Delete the rejected object, or copy it under the quarantine prefix and then delete it."""
    if disposal.action == ACTION_QUARANTINE:
        bucket.copy_object(bucket.bucket_name, key, disposal.quarantine_prefix + key)
    bucket.delete_object(key)
