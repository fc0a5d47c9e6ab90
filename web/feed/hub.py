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


@dataclass(eq=False)
class FeedClient:
    selection: Selection
    max_pending: int = CLIENT_QUEUE
    pending: deque[FeedItem] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    next_seq: int = 1
    dropped: bool = False
    closed: bool = False

    def offer(self, item: FeedItem, admitted: bool) -> bool:
        """Queue ``item`` if this client wants it; True when it did (the caller wakes the writer)."""
        if item.seq < self.next_seq or not admitted or self.closed:
            return False
        if len(self.pending) >= self.max_pending:
            self.dropped = True
            self.close()
            return False
        self.pending.append(item)
        self.next_seq = item.seq + 1
        return True

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
        self._to_wake: set[FeedClient] = set()
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
        verdicts: dict[Selection, bool] = {}
        for client in list(self.clients):
            admitted = verdicts.get(client.selection)
            if admitted is None:
                admitted = verdicts[client.selection] = client.selection.admits(item.subject, item.owner)
            if client.offer(item, admitted):
                self._to_wake.add(client)
            elif client.dropped:
                self.clients.discard(client)
                self.dropped_total += 1
                log.info("feed client dropped", reason="slow client", at_seq=item.seq)
        if self._to_wake and self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_later(COALESCE_S, self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        to_wake, self._to_wake = self._to_wake, set()
        for client in to_wake:
            client.wake.set()

    def attach(self, client: FeedClient, next_seq: int) -> bool:
        """Serve ``client`` from ``next_seq`` on, if the ring still reaches back that far."""
        if next_seq < self.floor or self.closing:
            return False
        client.next_seq = next_seq
        for item in self.ring:
            if item.seq >= next_seq:
                client.offer(item, client.selection.admits(item.subject, item.owner))
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
