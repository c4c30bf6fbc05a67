"""Prometheus metrics (``GET /metrics``), every one named ``ossgate_…``.

``server.metrics.registry`` defines the metrics and the one-line helpers the app calls where
things happen; ``server.metrics.api`` serves them. Labels are bounded by construction:
outcomes, rejection reasons and error codes from ossgate's own code, never a user, a key, a
token or anything a request chose. Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` (see
docs/metrics.md) so a scrape sums every worker process instead of showing whichever worker
answered.
"""
