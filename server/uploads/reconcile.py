"""Record uploads whose callback never arrived (callback down, 203 CallbackFailed, lost).

Lists the bucket under the upload prefixes and records every object under a user's prefix
that has no record with its ETag, through the same ``record_upload`` as callbacks (marked
``reconcile``). Safe to run any time and any number of times: recording is idempotent, so a
second run adds nothing and a run racing a callback still ends with one record.

It lists with the server's read credentials (server.bucket.access): the role must allow
``oss:ListObjects`` and ``oss:GetObject`` for reconcile to work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import oss2

from server.bucket.access import head, listing_prefix
from server.destinations.destination import Destination
from server.uploads.records import SOURCE_RECONCILE, UploadRecords


@dataclass
class ReconcileReport:
    listed: int = 0
    recorded: int = 0
    updated: int = 0
    already_recorded: int = 0
    outside_prefixes: int = 0
    older_than_since: int = 0

    def summary(self) -> str:
        return (
            f"listed {self.listed} objects: {self.recorded} newly recorded, {self.updated} "
            f"updated, {self.already_recorded} already recorded, {self.outside_prefixes} outside "
            f"user prefixes, {self.older_than_since} older than --since"
        )


def reconcile(
    bucket: oss2.Bucket,
    destination: Destination,
    records: UploadRecords,
    *,
    since: datetime | None = None,
) -> ReconcileReport:
    report = ReconcileReport()
    prefix = listing_prefix(destination)
    known = records.etags(destination.bucket, prefix)
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
        if known.get(listed.key) == etag:
            report.already_recorded += 1
            continue
        facts = head(bucket, listed.key)
        if facts is None:  # deleted since it was listed
            continue
        outcome = records.record_upload(
            bucket=destination.bucket,
            key=listed.key,
            etag=facts.etag,
            size=facts.size,
            content_type=facts.content_type,
            owner=owner,
            destination=destination.name,
            source=SOURCE_RECONCILE,
        )
        if outcome.created:
            report.recorded += 1
        elif outcome.changed:
            report.updated += 1
        else:
            report.already_recorded += 1
    return report
