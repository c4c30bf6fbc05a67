"""The metrics, and the calls that move them from where things happen.

prometheus-client picks its storage when it is first imported: in-process values, or, when
``PROMETHEUS_MULTIPROC_DIR`` is set, one memory-mapped file per process in that folder, which
``server.metrics.api`` sums at scrape time. The metrics here are module-level, so every app
built in one process (tests build many) shares them; tests read differences, not totals.

Only outcomes, rejection reasons, error codes and evidence sources (all from ossgate's code)
become labels, so a label can take a handful of values whatever the traffic, and nothing
about a user, an object key or a credential can reach a scrape.

The token endpoint is ossgate's hot path: a warm request costs one pre-bound counter
increment (``count_token_response``) and one more in the credential cache
(``CACHE_HIT``), each a lock and an addition; nothing there reads a clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Response, g, request
from prometheus_client import Counter, Gauge, Histogram

# -- the token endpoint ---------------------------------------------------------------------

TOKEN_REQUESTS = Counter(
    "ossgate_token_requests",
    "Requests to /api/sts-token, by outcome (ok, or why not).",
    ["outcome"],
)
#: HTTP status of a token answer → its outcome label. Anything else is ``error``.
_TOKEN_OUTCOMES = {
    200: "ok",
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "unknown_destination",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}
#: Pre-bound children: ``labels()`` per request would hash and lock once more.
_TOKEN_CHILDREN = {status: TOKEN_REQUESTS.labels(name) for status, name in _TOKEN_OUTCOMES.items()}
_TOKEN_ERROR = TOKEN_REQUESTS.labels("error")


def count_token_response(response: Response) -> Response:
    """The tokens blueprint's ``after_request``: one increment, by the answer's status.

    A hook rather than calls in the view, because most refusals (401 from the bearer check,
    429, 503) are raised before or around the view and answered by the error handlers; the
    hook sees every answer. CORS preflights are not token requests and are not counted.
    """
    if request.method != "OPTIONS":
        _TOKEN_CHILDREN.get(response.status_code, _TOKEN_ERROR).inc()
    return response


# -- STS and the credential cache -----------------------------------------------------------

ASSUME_ROLE_CALLS = Counter(
    "ossgate_sts_assume_role_calls",
    "AssumeRole calls to STS, by outcome (ok, unavailable, misconfigured, error).",
    ["outcome"],
)
ASSUME_ROLE_SECONDS = Histogram(
    "ossgate_sts_assume_role_duration_seconds",
    "How long AssumeRole calls took, whatever their outcome.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


@contextmanager
def timed_assume_role() -> Iterator[None]:
    """Count one AssumeRole call and observe its duration; the outcome is named after the
    error ``server.credentials.sts_client`` raised (its class name decides, so this module
    needs none of the STS client's imports)."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except Exception as exc:
        outcome = _STS_OUTCOMES.get(type(exc).__name__, "error")
        raise
    finally:
        ASSUME_ROLE_SECONDS.observe(time.perf_counter() - started)
        ASSUME_ROLE_CALLS.labels(outcome).inc()


_STS_OUTCOMES = {"StsUnavailable": "unavailable", "StsConfigurationError": "misconfigured"}

CACHE_LOOKUPS = Counter(
    "ossgate_credential_cache_lookups",
    "Credential cache lookups: hit, miss (this caller made the AssumeRole) or coalesced "
    "(waited for another caller's AssumeRole).",
    ["result"],
)
CACHE_HIT = CACHE_LOOKUPS.labels("hit")
CACHE_MISS = CACHE_LOOKUPS.labels("miss")
CACHE_COALESCED = CACHE_LOOKUPS.labels("coalesced")
CACHE_STALE_SERVED = Counter(
    "ossgate_credential_cache_stale_served",
    "Cached credentials served past their refresh point because STS was unavailable.",
)

# -- callbacks and verdicts -----------------------------------------------------------------

CALLBACKS = Counter(
    "ossgate_callbacks",
    "OSS upload callbacks by outcome: recorded, rejected (reason: the rule broken), refused "
    "(reason: the error code, e.g. a bad signature) or failed (reason: the error code).",
    ["outcome", "reason"],
)


#: Where the callback view leaves the answer it sends (on ``flask.g``), so that
#: ``count_callback_response`` need not parse back the JSON just made from it.
CALLBACK_ANSWER = "ossgate_callback_answer"


def count_callback_response(response: Response) -> Response:
    """The callback blueprint's ``after_request``: one increment per callback answered.

    The answer says everything (verdict or error code, both from ossgate's code), including
    for refusals raised deep in verification, so the hook reads it rather than each refusal
    counting itself. Callback answers are a few hundred bytes of JSON.
    """
    body = g.pop(CALLBACK_ANSWER, None)
    if body is None or response.status_code != 200:
        body = response.get_json(silent=True) if response.is_json else None
    body = body if isinstance(body, dict) else {}
    if response.status_code == 200:
        status = body.get("status")
        outcome = status if status in ("recorded", "rejected") else "error"
        reason = str(body.get("reason") or "") if outcome == "rejected" else ""
    else:
        outcome = "refused" if response.status_code < 500 else "failed"
        error = body.get("error")
        reason = str(error.get("code", "")) if isinstance(error, dict) else ""
    _child(CALLBACKS, outcome, reason[:64]).inc()
    return response


VERDICTS = Counter(
    "ossgate_verdicts",
    "Verdicts recorded (a new or changed record), by outcome (accepted, rejected), the rule "
    "a rejected upload broke, and the evidence that led to it (callback, confirm, sweep, "
    "reconcile).",
    ["outcome", "reason", "source"],
)


def count_verdict(status: str, reason: str | None, source: str) -> None:
    _child(VERDICTS, status, reason or "", source).inc()


#: Children of labelled counters counted on every callback, by (counter, label values).
_CHILDREN: dict[tuple, Counter] = {}


def _child(counter: Counter, *values: str) -> Counter:
    """``counter.labels(*values)``, kept: ``labels()`` locks and hashes on every call, and a
    callback counts twice. The values are ossgate's own words (outcomes, reasons, error
    codes, evidence sources), so the table stays small."""
    key = (counter, *values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN.setdefault(key, counter.labels(*values))
    return child


# -- the sweep ------------------------------------------------------------------------------

SWEEP_PREFIXES = Counter(
    "ossgate_sweep_prefixes",
    "Prefixes the sweep handled, by outcome (swept, failed: stays due, orphaned: its "
    "destination is no longer configured).",
    ["outcome"],
)
SWEEP_DUE = Gauge(
    "ossgate_sweep_due_prefixes",
    "Prefixes that were due at the start of the latest sweep pass (its backlog).",
    multiprocess_mode="mostrecent",
)
SWEEP_LAST_PASS = Gauge(
    "ossgate_sweep_last_pass_timestamp_seconds",
    "When the latest sweep pass finished (Unix time). Sweep lag is "
    "time() - ossgate_sweep_last_pass_timestamp_seconds.",
    multiprocess_mode="max",
)

# -- webhooks -------------------------------------------------------------------------------

WEBHOOK_DELIVERIES = Counter(
    "ossgate_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retrying (will be tried again), failed "
    "(out of attempts), unrecorded (the claim ran out before the attempt was recorded).",
    ["outcome"],
)
