"""Judge the objects under a prefix that have no verdict yet: the sweep's and reconcile's loop.

A browser can skip the callback (or its callback can fail: OSS answers ``203
CallbackFailed`` and keeps the object), so listing the bucket is the evidence of last resort.
``judge_prefix`` lists one prefix and gives every object without a verdict for its current
ETag the same verdict a callback would (server.uploads.verdicts). ``ossgate uploads
reconcile`` runs it over every user prefix of the destination; the worker's sweep runs it over
the prefixes of recently active users only (server.uploads.sweep). Safe any time and any number
of times: verdicts are idempotent, so a second run changes nothing and a run racing a callback
still ends with one record.

It lists with the server's own credentials (server.bucket.access): the role must allow
``oss:ListObjects``, ``oss:GetObject`` and ``oss:DeleteObject`` under the upload prefixes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import oss2

from server.destinations.destination import Destination
from server.uploads.records import SOURCE_RECONCILE, STATUS_ACCEPTED, UploadRecords
from server.uploads.verdicts import DELETE, Disposal, Evidence, ObjectGone, judge


@dataclass
class ReconcileReport:
    listed: int = 0
    recorded: int = 0
    updated: int = 0
    rejected: int = 0
    already_recorded: int = 0
    outside_prefixes: int = 0
    older_than_since: int = 0

    def summary(self) -> str:
        return (
            f"listed {self.listed} objects: {self.recorded} newly recorded, {self.updated} "
            f"updated, {self.rejected} rejected, {self.already_recorded} already recorded, "
            f"{self.outside_prefixes} outside user prefixes, {self.older_than_since} older "
            "than --since"
        )


@dataclass(frozen=True)
class PendingObject:
    """A listed object under a user's prefix with no accepted verdict for its current ETag.

    ``record`` is its known ``(etag, status)``, or None when it was never judged.
    """

    key: str
    owner: str
    record: tuple[str, str] | None


def pending_objects(
    bucket: oss2.Bucket,
    destination: Destination,
    records: UploadRecords,
    prefix: str,
    since: datetime | None,
    report: ReconcileReport,
) -> Iterator[PendingObject]:
    """The objects under ``prefix`` that need a verdict, counting the skipped ones in
    ``report``: one listing and one read of the records, nothing judged. Shared by
    ``judge_prefix`` and ``uploads reconcile --dry-run``, so a dry run skips exactly what a
    real run skips."""
    known = records.verdicts(destination.bucket, prefix)
    for listed in oss2.ObjectIterator(bucket, prefix=prefix):
        report.listed += 1
        owner = destination.owner_of(listed.key)
        if owner is None:
            report.outside_prefixes += 1
            continue
        if since is not None and listed.last_modified < since.timestamp():
            report.older_than_since += 1
            continue
        etag = listed.etag.strip('"').upper()
        record = known.get(listed.key)
        if record == (etag, STATUS_ACCEPTED):
            report.already_recorded += 1
            continue
        yield PendingObject(listed.key, owner, record)


def judge_prefix(
    bucket: oss2.Bucket,
    destination: Destination,
    records: UploadRecords,
    prefix: str,
    *,
    source: str,
    disposal: Disposal = DELETE,
    since: datetime | None = None,
    report: ReconcileReport | None = None,
) -> ReconcileReport:
    """Judge every object under ``prefix`` (within ``destination``) that has no verdict yet.

    An object whose record has its ETag and says "accepted" costs nothing but its listing
    entry; every other object under a user's prefix is judged, which HEADs it. A rejected
    record whose object is still listed is judged again, so a failed delete is retried.
    """
    report = report or ReconcileReport()
    for pending in pending_objects(bucket, destination, records, prefix, since, report):
        try:
            verdict = judge(
                Evidence(key=pending.key, owner=pending.owner, source=source),
                destination=destination,
                bucket=bucket,
                records=records,
                disposal=disposal,
            )
        except ObjectGone:  # deleted since it was listed
            continue
        if not verdict.changed:
            report.already_recorded += 1
        elif not verdict.accepted:
            report.rejected += 1
        elif pending.record is not None:
            report.updated += 1
        else:
            report.recorded += 1
    return report


def reconcile(
    bucket: oss2.Bucket,
    destination: Destination,
    records: UploadRecords,
    *,
    since: datetime | None = None,
    disposal: Disposal = DELETE,
    report: ReconcileReport | None = None,
) -> ReconcileReport:
    """The full pass: every user prefix of ``destination``, whatever their activity."""
    return judge_prefix(
        bucket,
        destination,
        records,
        destination.literal_prefix,
        source=SOURCE_RECONCILE,
        disposal=disposal,
        since=since,
        report=report,
    )
