"""Publishing events so that a retried publish is stored once.

The event id is sent as ``Nats-Msg-Id``; JetStream drops a second message with the same id inside
the stream's duplicate window. So when a publish times out (the broker restarting, say) we simply
publish the same bytes again until it is acknowledged, without fear of doubling the fact.
"""

from __future__ import annotations

import asyncio
import time

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

import logs
from schemas.base import Event, encode
from telemetry import EVENTS_PUBLISHED

log = logs.get("bus.publish")

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionClosedError,
    asyncio.TimeoutError,
)


async def publish(js: JetStreamContext, event: Event, *, deadline_s: float = 60.0) -> PubAck:
    """Store one event, retrying with the same message id until acknowledged or the deadline."""
    data = encode(event)
    headers = {"Nats-Msg-Id": event.id}
    until = time.monotonic() + deadline_s
    delay = 0.05
    while True:
        try:
            ack = await js.publish(event.subject(), data, headers=headers, timeout=2.0)
            EVENTS_PUBLISHED.labels(event.subject()).inc()
            return ack
        except _RETRYABLE as exc:
            if time.monotonic() > until:
                raise
            log.warning("publish retry", event_id=event.id, type=event.type, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


async def publish_live(nc: Client, event: Event) -> None:
    """Fire-and-forget on core NATS, for ephemeral facts (heartbeats) that are not stored."""
    if nc.is_connected:
        await nc.publish(event.subject(), encode(event))
