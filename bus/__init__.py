"""The message bus: NATS JetStream, reached only through this package.

``Bus`` bundles the one connection of a process with its JetStream context and the stream set-up,
so actors and the edge never import nats directly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck

from bus.connection import connect
from bus.publish import publish, publish_live
from bus.stream import STREAM, StreamPolicy, ensure_stream
from schemas.base import Event


class Bus:
    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "obs",
        stream: StreamPolicy | None = None,
        manage_stream: bool = True,
        tls_ca: str = "",
    ) -> Bus:
        """Connect and make sure the event stream is there (``manage_stream=False``: only look).

        ``stream`` is what the settings ask of the stream; None takes the defaults, which only
        ever raise an existing stream's limits (see ``bus.stream.reconcile``).
        """
        nc = await connect(url, name=name, tls_ca=tls_ca)
        js = nc.jetstream(timeout=5.0)
        await ensure_stream(js, stream or StreamPolicy(), manage=manage_stream)
        return cls(nc, js)

    async def publish(self, event: Event, *, deadline_s: float = 60.0) -> PubAck:
        """Store ``event``, retrying until acknowledged or ``deadline_s`` has passed."""
        return await publish(self.js, event, deadline_s=deadline_s)

    async def publish_live(self, event: Event) -> None:
        await publish_live(self.nc, event)

    async def close(self) -> None:
        """Drain: finish what was sent and received, then close."""
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                await self.nc.close()


async def connect_when_ready(
    url: str, policy: StreamPolicy | None = None, deadline_s: float = 30.0, *, name: str = "obs", **options: Any
) -> Bus:
    """``Bus.connect``, retried until JetStream answers or ``deadline_s`` has passed.

    A fresh cluster answers JetStream requests only once its nodes have elected a meta leader, a few
    seconds after they listen; a client started with the cluster (a test, a benchmark, an operator's
    script) would otherwise fail its first stream set-up."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await Bus.connect(url, name=name, stream=policy, **options)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


__all__ = ["STREAM", "Bus", "StreamPolicy", "connect_when_ready"]
