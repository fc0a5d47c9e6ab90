"""One subscriber's feed: catch up from the stream with its own consumer, then follow the hub.

    reason = await serve(hub, client, Start(seq=1201), write, keepalive)

Catch-up reads history with an ephemeral pull consumer of the client's own (``bus.replay``,
server-side ``filter_subjects``), paced by how fast the client takes it: a slow reader slows only
its own consumer. When a round ends, everything admitted up to the stream's end *at the start of
the round* was written, so the client continues at ``max(last written + 1, hub.last_seq + 1 as
seen before the round)``; if the hub's ring still reaches back there it attaches (gap-free, see
``web.feed.hub``), else another round reads what came meanwhile.

``write`` gets chunks (``web.feed.hub.Chunk``: events and their SSE frames joined once) so that
a catch-up batch or a gathering window is one socket write.

A start the stream no longer reaches (its retention removed the events from ``since_seq`` on, or
a client came back after a long absence) is not silently moved forward: ``on_gap`` is told the
sequences that are gone first, so a subscriber knows what it missed rather than believing it has
everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import msgspec
import nats.js.errors

from bus.replay import replay
from bus.stream import STREAM
from web.feed.hub import Chunk, FeedClient, FeedHub, FeedItem, make_chunk, make_item

Write = Callable[[list[Chunk]], Awaitable[None]]

CATCH_UP_BATCH = 256
#: a client that has not taken a write within this long is dropped like a full queue
WRITE_TIMEOUT_S = 10.0
KEEPALIVE_S = 15.0


@dataclass(frozen=True, slots=True)
class Start:
    """Where a feed starts: at a stream sequence, else at a time, else with new events only."""

    seq: int | None = None
    time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Stream sequences ``from_seq``..``to_seq`` (inclusive) that a feed asked for and the stream
    no longer holds: removed by its retention (``--stream-max-age-days``, ``--stream-max-bytes``)."""

    from_seq: int
    to_seq: int

    def body(self) -> bytes:
        return msgspec.json.encode(
            {
                "gap": {"from_seq": self.from_seq, "to_seq": self.to_seq},
                "reason": "these events were removed by the stream's retention before this feed read them",
            }
        )


OnGap = Callable[[Gap], Awaitable[None]]


class SlowClient(Exception):
    pass


async def _write(write: Write, chunks: list[Chunk]) -> None:
    try:
        # asyncio.timeout, not wait_for: no task per write (thousands a second with 200 subscribers)
        async with asyncio.timeout(WRITE_TIMEOUT_S):
            await write(chunks)
    except TimeoutError:
        raise SlowClient from None


async def _catch_up(hub: FeedHub, client: FeedClient, next_seq: int, since: datetime | None, write: Write) -> int:
    """One round of history from ``next_seq`` (or ``since``); returns the next sequence to serve."""
    horizon = hub.last_seq
    filters: str | list[str] = client.selection.nats_filters or ">"
    last = 0
    for attempt in (0, 1):
        try:
            async with contextlib.aclosing(
                replay(hub.js, filters, seq=None if since else next_seq, since=since)
            ) as stored_msgs:
                batch: list[FeedItem] = []
                async for stored in stored_msgs:
                    item = make_item(stored)
                    last = stored.seq
                    if client.selection.admits(item.subject, item.owner):
                        batch.append(item)
                    if len(batch) >= CATCH_UP_BATCH or (batch and stored.pending == 0):
                        await _write(write, [make_chunk(batch)])
                        batch = []
                    if hub.closing:
                        break
                if batch:
                    await _write(write, [make_chunk(batch)])
            break
        except nats.js.errors.BadRequestError:
            if attempt or last:
                raise
            filters = ">"  # overlapping filters are refused by the server: filter here instead
    return max(next_seq, last + 1, horizon + 1)


async def _gap(hub: FeedHub, next_seq: int) -> Gap | None:
    """The sequences before the stream's first that a start at ``next_seq`` asks for, if any."""
    first = int((await hub.js.stream_info(STREAM)).state.first_seq or 1)
    return Gap(next_seq, first - 1) if next_seq < first else None


async def serve(
    hub: FeedHub,
    client: FeedClient,
    start: Start,
    write: Write,
    keepalive: Callable[[], Awaitable[None]],
    on_gap: OnGap | None = None,
) -> str:
    """Feed ``client`` until it goes away (an exception from ``write``) or is dropped; returns why it ended."""
    try:
        if start.seq is None and start.time is None:
            if not hub.attach(client, hub.last_seq + 1):
                return "closed"
        else:
            next_seq = start.seq or 1
            if start.seq is not None and on_gap is not None and (gap := await _gap(hub, next_seq)) is not None:
                await on_gap(gap)
                next_seq = gap.to_seq + 1
            if start.time is not None:
                next_seq = await _catch_up(hub, client, next_seq, start.time, write)
            while not hub.attach(client, next_seq):
                if hub.closing:
                    return "closed"
                next_seq = await _catch_up(hub, client, next_seq, None, write)
        while True:
            if client.closed:
                return "dropped" if client.dropped else "closed"
            if client.pending:
                await _write(write, client.take())
                continue
            client.wake.clear()
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    await client.wake.wait()
            except TimeoutError:
                await keepalive()
    except SlowClient:
        client.dropped = True
        return "dropped"
    finally:
        hub.detach(client)
