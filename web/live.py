"""Live views: one fan-out hub behind both ``/api/ws/status`` and ``/api/sse/status``.

Each message is encoded once and handed to every client's own bounded queue; a per-client task
writes it out. A client whose queue is full is too slow to keep up, and it is dropped (WebSocket
close 1013 "try again later"; the SSE stream ends) rather than allowed to delay anybody else.

Every message has an id ``<epoch>-<n>``. The epoch changes when the edge restarts, so an SSE client
reconnecting with ``Last-Event-ID`` gets exactly the messages it missed while they are still in the
ring buffer, and a fresh snapshot otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

import logs

log = logs.get("web.live")

_enc = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class LiveMessage:
    id: str
    type: str
    body: bytes  # the JSON document {"type", "data", ...}


def sse_frame(msg: LiveMessage) -> bytes:
    """One Server-Sent Event: named by the message type (``addEventListener('status_update', ...)``
    in a browser; a nameless event would reach only ``onmessage``) with its id for Last-Event-ID."""
    return b"event: " + msg.type.encode() + b"\nid: " + msg.id.encode() + b"\ndata: " + msg.body + b"\n\n"


@dataclass(eq=False)
class Client:
    kind: str  # "ws" | "sse"
    send: Callable[[LiveMessage], Awaitable[None]]
    queue: asyncio.Queue[LiveMessage | None] = field(default_factory=lambda: asyncio.Queue(maxsize=64))
    dropped: bool = False
    on_drop: Callable[[], Awaitable[None]] | None = None


class LiveHub:
    def __init__(self, buffer: int = 512) -> None:
        self.epoch = uuid.uuid4().hex[:8]
        self._counter = itertools.count(1)
        self.recent: deque[LiveMessage] = deque(maxlen=buffer)
        self.clients: set[Client] = set()
        self.dropped_total = 0

    def make(self, type_: str, data: Any, **extra: Any) -> LiveMessage:
        msg_id = f"{self.epoch}-{next(self._counter)}"
        # Small envelope keys first, so a client can route a message before parsing a large body.
        body = _enc.encode({"type": type_, "id": msg_id, "ts": time.time(), **extra, "data": data})
        return LiveMessage(msg_id, type_, body)

    def broadcast(self, type_: str, data: Any, **extra: Any) -> LiveMessage:
        msg = self.make(type_, data, **extra)
        self.recent.append(msg)
        for client in list(self.clients):
            self._offer(client, msg)
        return msg

    def _offer(self, client: Client, msg: LiveMessage | None) -> None:
        try:
            client.queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.drop(client, "slow client")

    def drop(self, client: Client, reason: str) -> None:
        if client.dropped:
            return
        client.dropped = True
        self.clients.discard(client)
        self.dropped_total += 1
        log.info("live client dropped", kind=client.kind, reason=reason)
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(None)

    def missed_since(self, last_id: str) -> list[LiveMessage] | None:
        """Messages after ``last_id`` if it is still in the buffer, else None (send a snapshot)."""
        epoch, _, n = last_id.partition("-")
        if epoch != self.epoch or not n.isdigit():
            return None
        ids = [int(m.id.split("-")[1]) for m in self.recent]
        if not ids or int(n) < ids[0] - 1:
            return None
        return [m for m in self.recent if int(m.id.split("-")[1]) > int(n)]

    async def serve(self, client: Client, initial: list[LiveMessage]) -> None:
        """Run one client's writer until it disconnects or is dropped."""
        for first in initial:
            client.queue.put_nowait(first)
        self.clients.add(client)
        try:
            while True:
                item = await client.queue.get()
                if item is None:
                    break
                await client.send(item)
        finally:
            self.clients.discard(client)

    async def close_all(self) -> None:
        for client in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
