"""``ossgate events …``: look at the upload events in the outbox, and send some again."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from server.events.outbox import EVENT_ID_PREFIX, EVENT_STATUSES, Event, iso
from server.services import services

events_group = AppGroup("events", help="Upload events sent to the host app (the outbox).")


def _when(event: Event) -> str:
    """The time that matters for the event's status."""
    if event.status == "delivered" and event.delivered_at is not None:
        return f"delivered {iso(event.delivered_at)}"
    if event.status == "pending":
        return f"next {iso(event.next_attempt_at)}"
    return f"created {iso(event.created_at)}"


def _last(event: Event) -> str:
    if event.last_error:
        return event.last_error
    return f"HTTP {event.last_status}" if event.last_status is not None else "-"


@events_group.command("list")
@click.option("--status", type=click.Choice(EVENT_STATUSES), help="Only events in this state.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True,
    help="Show at most this many, newest first.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help='Print JSON: {"events": [...]}.')
def list_command(status: str | None, limit: int, as_json: bool) -> None:
    """List upload events, newest first: id, type, status, attempts, last answer, key."""
    outbox = services().events
    events = outbox.latest(status=status, limit=limit)
    if as_json:
        click.echo(json.dumps({"events": [e.to_json() for e in events]}, indent=2))
        return
    counts = outbox.counts()
    click.echo(
        f"{counts['pending']} pending, {counts['delivered']} delivered, {counts['failed']} failed"
    )
    for event in events:
        click.echo(
            f"{event.event_id}  {event.type:<15}  {event.status:<9}  "
            f"attempts {event.attempts:<2}  {_when(event)}  {event.data.get('key')}  "
            f"last: {_last(event)}"
        )


@events_group.command("replay")
@click.argument("event_id", required=False)
@click.option("--failed", is_flag=True, help="Every failed event.")
def replay_command(event_id: str | None, failed: bool) -> None:
    """Send events again: one by its id (evt_…), or every failed one with --failed.

    They go back to pending with their attempts reset, and keep their webhook-id, so a
    receiver that got one before recognises it.
    """
    if (event_id is None) == (not failed):
        raise click.UsageError("give one event id (evt_…), or --failed")
    outbox = services().events
    if failed:
        click.echo(f"replaying {outbox.replay()} failed events")
        return
    assert event_id is not None
    if not event_id.startswith(EVENT_ID_PREFIX) or outbox.replay(event_id) == 0:
        raise click.ClickException(
            f"no event {event_id!r}; `ossgate events list` shows their ids ({EVENT_ID_PREFIX}…)"
        )
    click.echo(f"replaying {event_id}")
