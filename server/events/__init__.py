"""Upload events for the host app: an outbox written with each verdict, delivered by the worker.

- ``outbox``: which event a verdict makes (``upload.recorded``, ``upload.rejected``,
  ``upload.replaced``), written in the record's own transaction; claiming, retries, replay
  and pruning of the ``upload_events`` table.
- ``delivery``: the POSTs, signed per the Standard Webhooks specification, and the loop
  ``ossgate worker`` runs.
- ``cli``: ``ossgate events list`` and ``ossgate events replay``.

Delivery is at least once: an event is sent again until a 2xx answer is recorded, always with
the same ``webhook-id``, so receivers deduplicate on it. See docs/events.md.
"""
