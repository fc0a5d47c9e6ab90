"""The feed's shared tail of the stream, and each subscriber's bounded queue.

Why one shared tail rather than a consumer per client for live events: 200 subscribers at 500
events/s would otherwise be 100,000 deliveries a second from the broker into one Python process.
The hub follows the whole stream once (an ordered push consumer, ``bus.replay``), encodes each
message once, keeps the last few thousand in a ring, and offers each to every attached client
whose selection admits it. History older than the ring is read by the client's *own* pull
consumer (``web.feed.session``), which then attaches here at the exact next sequence.

Invariant that makes the hand-over gap-free and duplicate-free: every stored message with
``seq >= floor`` is either in the ring or not yet seen by the hub (and will be offered, in
order). ``attach(client, next_seq)`` succeeds only when ``next_seq >= floor``; it copies the
ring's messages from ``next_seq`` on and registers the client in one synchronous step, so no
message can slip between the two. A client never sees a sequence below its ``next_seq``.

A client whose queue is full is dropped (its stream ends; it reconnects with ``Last-Event-ID``
and catches up from the stream), so a slow reader costs the hub nothing and delays nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.js import JetStreamContext

import logs
from bus.replay import StoredMessage, replay
from bus.stream import STREAM
from schemas.base import iso
from web.feed.subjects import Selection, owner_of

log = logs.get("web.feed")

RING = 4096
#: how long the hub gathers events before waking subscribers' writers: at 500 events/s a writer
#: then makes ~100 socket writes a second instead of 500, which is what lets one edge core feed
#: 200 subscribers (see bench/bench_feed.py); it adds at most this much latency
COALESCE_S = 0.015
RING_BYTES = 64 * 1024 * 1024
CLIENT_QUEUE = 2048


@dataclass(frozen=True, slots=True)
class FeedItem:
    seq: int
    subject: str
    owner: str | None
    #: ``{"seq", "subject", "time", "event"}``, encoded once for every client
    body: bytes
    #: the same as one Server-Sent Event (``id: seq``), also encoded once
    sse: bytes


def make_item(stored: StoredMessage) -> FeedItem:
    body = b'{"seq":%d,"subject":"%s","time":"%s","event":%s}' % (
        stored.seq,
        stored.subject.encode(),
        iso(stored.time).encode(),
        stored.data,
    )
    sse = b"id: %d\ndata: %s\n\n" % (stored.seq, body)
    return FeedItem(stored.seq, stored.subject, owner_of(stored.subject, stored.data), body, sse)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive admitted events for one selection, with their SSE frames joined once.

    Subscribers with the same selection share one chunk per gathering window: fanning an event
    out to 200 of them is then 200 references to the same bytes, not 200 encodes or joins.
    """

    items: tuple[FeedItem, ...]
    sse: bytes


def make_chunk(items: list[FeedItem] | tuple[FeedItem, ...]) -> Chunk:
    return Chunk(tuple(items), b"".join([i.sse for i in items]))


@dataclass(eq=False)
class FeedClient:
    selection: Selection
    #: events queued and not yet written; past this the client is dropped
    max_pending: int = CLIENT_QUEUE
    pending: deque[Chunk] = field(default_factory=deque)
    pending_events: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    next_seq: int = 1
    dropped: bool = False
    closed: bool = False

    def offer(self, chunk: Chunk) -> bool:
        """Queue what of ``chunk`` this client has not had; True when something was queued."""
        if self.closed or not chunk.items or chunk.items[-1].seq < self.next_seq:
            return False
        if chunk.items[0].seq < self.next_seq:  # it attached in the middle of this window
            chunk = make_chunk([i for i in chunk.items if i.seq >= self.next_seq])
        if self.pending_events + len(chunk.items) > self.max_pending:
            self.dropped = True
            self.close()
            return False
        self.pending.append(chunk)
        self.pending_events += len(chunk.items)
        self.next_seq = chunk.items[-1].seq + 1
        return True

    def take(self) -> list[Chunk]:
        chunks = list(self.pending)
        self.pending.clear()
        self.pending_events = 0
        return chunks

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class FeedHub:
    def __init__(self, js: JetStreamContext, *, ring: int = RING, ring_bytes: int = RING_BYTES) -> None:
        self.js = js
        self.ring: deque[FeedItem] = deque()
        self.ring_max, self.ring_bytes_max, self.ring_bytes = ring, ring_bytes, 0
        self.floor = 1
        self.last_seq = 0
        self.clients: set[FeedClient] = set()
        self.dropped_total = 0
        self.closing = False
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._window: list[FeedItem] = []
        self._flush_at: asyncio.TimerHandle | None = None

    async def ensure_started(self, spawn: Callable[[Awaitable[None]], asyncio.Task[None]]) -> None:
        """Start following from the stream's next sequence (on the first subscriber)."""
        if self._task is None:
            self._task = spawn(self._tail())
        await self._ready.wait()

    async def _tail(self) -> None:
        info = await self.js.stream_info(STREAM)
        self.floor = info.state.last_seq + 1
        self.last_seq = info.state.last_seq
        self._ready.set()
        while not self.closing:
            try:
                async with contextlib.aclosing(replay(self.js, ">", seq=self.last_seq + 1, follow=True)) as stored_msgs:
                    async for stored in stored_msgs:
                        self.publish(make_item(stored))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed tail interrupted; resuming", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)

    def publish(self, item: FeedItem) -> None:
        if item.seq <= self.last_seq:
            return  # the tail was recreated and repeated one: never twice
        self.ring.append(item)
        self.ring_bytes += len(item.body)
        while len(self.ring) > self.ring_max or (self.ring_bytes > self.ring_bytes_max and len(self.ring) > 1):
            gone = self.ring.popleft()
            self.ring_bytes -= len(gone.body)
            self.floor = gone.seq + 1
        self.last_seq = item.seq
        self._window.append(item)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(COALESCE_S, self._flush)

    def _flush(self) -> None:
        """Hand the window's events to every subscriber: one chunk per distinct selection."""
        self._flush_at = None
        window, self._window = self._window, []
        chunks: dict[Selection, Chunk | None] = {}
        for client in list(self.clients):
            if client.selection not in chunks:
                admitted = [i for i in window if client.selection.admits(i.subject, i.owner)]
                chunks[client.selection] = make_chunk(admitted) if admitted else None
            chunk = chunks[client.selection]
            if chunk is None:
                continue
            if client.offer(chunk):
                client.wake.set()
            elif client.dropped:
                self.clients.discard(client)
                self.dropped_total += 1
                log.info("feed client dropped", reason="slow client", at_seq=window[-1].seq)

    def attach(self, client: FeedClient, next_seq: int) -> bool:
        """Serve ``client`` from ``next_seq`` on, if the ring still reaches back that far."""
        if next_seq < self.floor or self.closing:
            return False
        client.next_seq = next_seq
        backlog = [i for i in self.ring if i.seq >= next_seq and client.selection.admits(i.subject, i.owner)]
        if backlog:
            client.offer(make_chunk(backlog))
        if not client.dropped:
            self.clients.add(client)
        client.wake.set()
        return True

    def detach(self, client: FeedClient) -> None:
        self.clients.discard(client)

    def close_all(self) -> None:
        self.closing = True
        for client in list(self.clients):
            client.close()
        self.clients.clear()

    async def stop(self) -> None:
        self.close_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 1.0)
