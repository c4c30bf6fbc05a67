"""The sweep: a verdict for every upload nobody told ossgate about, within one interval.

A browser can skip the callback, and a callback can fail, so ``ossgate worker`` runs the sweep
every ``OSSGATE_SWEEP_INTERVAL_SECONDS``: it claims the prefixes whose credentials are (or
were until just now) out (server.uploads.grant_log), lists each, and gives every object
without a verdict for its current ETag the same verdict a callback would
(server.uploads.reconcile.judge_prefix). Its cost follows the number of recently active
users, never the size of the bucket. A prefix whose sweep fails (OSS or the database
unreachable) stays due and is tried again next time; nothing is lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import oss2
from sqlalchemy.exc import SQLAlchemyError

from server.credentials.sts_client import StsError
from server.destinations.destination import Destination
from server.metrics import registry as metrics
from server.uploads.grant_log import GrantLog
from server.uploads.reconcile import ReconcileReport, judge_prefix
from server.uploads.records import SOURCE_SWEEP, UploadRecords
from server.uploads.verdicts import Disposal

log = logging.getLogger(__name__)


@dataclass
class SweepReport(ReconcileReport):
    """What one sweep did: the listing counts, plus the prefixes swept and failed."""

    prefixes: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"swept {self.prefixes} prefixes ({self.failed} failed, tried again next time); "
            + super().summary().removesuffix(", 0 older than --since")
        )


def sweep(
    *,
    grant_log: GrantLog,
    destinations: Mapping[str, Destination],
    bucket: oss2.Bucket,
    records: UploadRecords,
    disposal: Disposal,
    interval_seconds: int,
    now: datetime | None = None,
) -> SweepReport:
    """One pass over the prefixes that are due; see the module docstring."""
    report = SweepReport()
    with grant_log.claim_due(interval_seconds=interval_seconds, now=now) as (due, swept):
        metrics.SWEEP_DUE.set(len(due))
        for item in due:
            destination = destinations.get(item.destination)
            if destination is None or destination.bucket != item.bucket:
                # A destination removed from the configuration: `uploads reconcile` covers it.
                log.warning("sweep: no destination %r for %s", item.destination, item.prefix)
                metrics.SWEEP_PREFIXES.labels("orphaned").inc()
                swept.append(item)
                continue
            try:
                judge_prefix(
                    bucket,
                    destination,
                    records,
                    item.prefix,
                    source=SOURCE_SWEEP,
                    disposal=disposal,
                    report=report,
                )
            except (StsError, oss2.exceptions.OssError, OSError, SQLAlchemyError) as exc:
                report.failed += 1
                metrics.SWEEP_PREFIXES.labels("failed").inc()
                log.warning("sweep of %s failed (%s); it stays due", item.prefix, exc)
                continue
            report.prefixes += 1
            metrics.SWEEP_PREFIXES.labels("swept").inc()
            swept.append(item)
    metrics.SWEEP_LAST_PASS.set(time.time())
    return report
