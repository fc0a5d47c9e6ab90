"""Helpers for the event-feed tests: users with keys (as facts on the bus), and an SSE reader."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from actors.quota_keeper import keys
from bus import Bus
from schemas.seti import KeyCreated, UserUpdated


@dataclass
class FeedUser:
    user_id: str
    api_key: str


async def make_user(bus: Bus, edge: Any, user_id: str, role: str = "user") -> FeedUser:
    """A user and a key, published as the quota keeper would; returns once the edge has them."""
    api_key, key_id = keys.generate()
    now = int(time.time())
    await bus.publish(UserUpdated(user_id=user_id, email=f"{user_id}@example.org", tier="researcher", role=role))
    ack = await bus.publish(
        KeyCreated(
            key_id=key_id,
            user_id=user_id,
            name="feed",
            key_hash=keys.key_hash(api_key),
            created_at=now,
            expires_at=now + 86400,
        )
    )
    await edge.wait_applied(ack.seq)
    return FeedUser(user_id, api_key)


@dataclass
class SseEvent:
    id: str
    data: dict[str, Any]
    raw: str
    event: str = "message"  # the SSE event name (``event:``), "message" when none is given


async def read_sse(resp: aiohttp.ClientResponse, n: int, timeout: float = 15.0) -> list[SseEvent]:
    """The next ``n`` SSE events (comments and ``retry:`` skipped)."""
    out: list[SseEvent] = []
    event_id, data, name = "", "", "message"

    async def run() -> None:
        nonlocal event_id, data, name
        while len(out) < n:
            raw = await resp.content.readline()
            if not raw:
                raise AssertionError(f"stream ended after {len(out)} events")
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                out.append(SseEvent(event_id, json.loads(data), data, name))
                event_id, data, name = "", "", "message"

    await asyncio.wait_for(run(), timeout)
    return out


async def no_more_sse(resp: aiohttp.ClientResponse, wait: float = 0.5) -> bool:
    """True when nothing but comments arrives within ``wait`` seconds."""
    try:
        extra = await read_sse(resp, 1, timeout=wait)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected event {extra[0].raw}")
