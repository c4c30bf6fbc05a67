"""A verdict as the browser hears it: the JSON answer shared by the callback and the confirm.

OSS relays the callback's answer to the browser as the upload's result, and ``POST
/api/uploads/confirm`` gives the same answer to a browser whose callback failed, so both come
from ``judge_for_answer``: an accepted upload is ``{"status": "recorded", …}``, a rejected one
``{"status": "rejected", "reason", "message"}`` (HTTP 200 either way, so the browser learns
why), and a failure to judge is a 503 (nothing is lost: the object stays, and the sweep judges
it later) or a 404 when there is no such object.
"""

from __future__ import annotations

import logging

import oss2
from sqlalchemy.exc import SQLAlchemyError

from server.credentials.sts_client import StsError
from server.destinations.destination import Destination
from server.errors import APIError
from server.services import services
from server.uploads.verdicts import Evidence, ObjectGone, Verdict, judge

log = logging.getLogger(__name__)


def answer_json(verdict: Verdict) -> dict:
    record = verdict.record
    if not verdict.accepted:
        return {"status": "rejected", "reason": record.reason, "message": record.message}
    return {
        "status": "recorded",
        "recordId": record.id,
        "key": record.key,
        "size": record.size,
        "etag": record.etag,
        "contentType": record.content_type,
        "destination": record.destination,
    }


def judge_for_answer(evidence: Evidence, destination: Destination) -> dict:
    """Judge the object with the app's parts and return the answer's JSON (or raise APIError)."""
    app = services()
    try:
        verdict = judge(
            evidence,
            destination=destination,
            bucket=app.server_bucket.bucket(),
            records=app.records,
            disposal=app.disposal,
        )
    except ObjectGone:
        raise APIError(404, "no_such_object", "There is no such object in the bucket.") from None
    except (StsError, oss2.exceptions.OssError, OSError):
        log.exception("judging an upload failed (%s); the sweep will judge it", evidence.source)
        raise APIError(
            503, "confirmation_unavailable", "The upload could not be confirmed right now."
        ) from None
    except SQLAlchemyError:
        log.exception("recording a verdict failed (%s); the sweep will judge it", evidence.source)
        raise APIError(
            503, "records_unavailable", "The upload is stored but could not be recorded yet."
        ) from None
    return answer_json(verdict)
