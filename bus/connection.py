"""One NATS connection per process, which reconnects by itself forever.

Why forever: an actor that gives up on the broker is an outage that needs a human, while one that
keeps trying carries on as soon as the broker is back. Connection state changes are logged.
"""

from __future__ import annotations

import ssl
from typing import Any

import nats
from nats.aio.client import Client

import logs

log = logs.get("bus.connection")


def server_address(nc: Client) -> str:
    """``host:port`` of the server ``nc`` is connected to: never the URL, which may hold a password."""
    url = nc.connected_url
    if url is None or not nc.is_connected:
        return ""
    return f"{url.hostname}:{url.port}"


def tls_context(ca_file: str) -> ssl.SSLContext | None:
    """A client TLS context trusting ``ca_file`` (the cluster's own CA); None when not set.

    ``tls://`` URLs without a CA file use the system's trust store, as nats-py does by default.
    """
    if not ca_file:
        return None
    return ssl.create_default_context(cafile=ca_file)


async def connect(url: str, *, name: str = "obs", tls_ca: str = "") -> Client:
    async def on_disconnect() -> None:
        if nc.is_closed:  # our own close() (every CLI exit, every stop): not news
            log.debug("nats disconnected", client=name)
        else:
            log.warning("nats disconnected", client=name)

    async def on_reconnect() -> None:
        log.info("nats reconnected", client=name, server=server_address(nc))

    async def on_error(e: Exception) -> None:
        log.warning("nats error", client=name, error=str(e))

    async def on_closed() -> None:
        log.debug("nats connection closed", client=name)

    options: dict[str, Any] = {
        "servers": [u.strip() for u in url.split(",") if u.strip()],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.25,
        "connect_timeout": 2,
        "allow_reconnect": True,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "pending_size": 64 * 1024 * 1024,  # buffer publishes during a short broker restart
        "drain_timeout": 3,  # shutdown must finish within 10 s even if a subscription is stuck
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        "error_cb": on_error,
        "closed_cb": on_closed,
    }
    context = tls_context(tls_ca)
    if context is not None:
        options["tls"] = context
    nc = await nats.connect(**options)
    return nc
