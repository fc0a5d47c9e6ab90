"""The message bus: NATS JetStream, reached only through this package.

``Bus`` bundles the one connection of a process with its JetStream context and the stream set-up,
so actors and the edge never import nats directly.
"""

from __future__ import annotations

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


__all__ = ["STREAM", "Bus", "StreamPolicy"]
