"""WebSocket and SSE: snapshot on connect, updates within a second, heartbeats, slow clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from bus import Bus
from schemas.dsa import GroupUpdated
from web.live import Client, LiveHub, LiveMessage


async def ws_messages(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            yield json.loads(msg.data)


async def sse_events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
    """Yield (id, data) per SSE event, and ("", None) per comment (heartbeat)."""
    event_id, data = "", ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            yield "", None
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield event_id, json.loads(data)
            event_id, data = "", ""


async def until_type(gen: AsyncIterator[dict[str, Any]], pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async for msg in gen:
        if pred(msg):
            return msg
    raise AssertionError("stream ended")


def has_group(msg: dict[str, Any], group_id: str) -> bool:
    if msg.get("type") != "status_update":
        return False
    return any(g["group_id"] == group_id for g in msg["data"]["pipeline_status"]["recent_groups"])


async def test_websocket_snapshot_then_update_within_one_second(
    bus: Bus, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    async with aiohttp.ClientSession() as session, session.ws_connect(edge.url + "/api/ws/status") as ws:
        stream = ws_messages(ws)
        first = await asyncio.wait_for(anext(stream), 5)
        assert first["type"] == "status_update"
        assert set(first["data"]) == {"pipeline_status", "metrics", "ese_candidates"}
        assert first["data"]["pipeline_status"]["queue"]["total"] == 0
        seen = {first["type"]}
        while not {"status_update", "metrics_update", "ese_update"} <= seen:  # alert_update too
            seen.add((await asyncio.wait_for(anext(stream), 5))["type"])

        sent = time.monotonic()
        await bus.publish(GroupUpdated(group_id="g-live", state="pending", subbands_present=16))
        msg = await asyncio.wait_for(until_type(stream, lambda m: has_group(m, "g-live")), 1.0)
        assert time.monotonic() - sent < 1.0
        assert msg["data"]["pipeline_status"]["queue"]["pending"] == 1


async def test_sse_update_within_one_second_and_last_event_id(
    bus: Bus, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory(heartbeat_s=0.3)
    async with aiohttp.ClientSession() as session:
        async with session.get(edge.url + "/api/sse/status") as resp:
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            events = sse_events(resp)
            first_id, first = await asyncio.wait_for(anext(events), 5)
            assert first is not None and first["type"] == "status_update" and first_id
            await bus.publish(GroupUpdated(group_id="g-sse", state="pending", subbands_present=16))
            sent = time.monotonic()
            last_id = ""
            heartbeats = 0
            while True:
                event_id, data = await asyncio.wait_for(anext(events), 1.0)
                if data is None:
                    heartbeats += 1
                    continue
                if has_group(data, "g-sse"):
                    last_id = event_id
                    break
            assert time.monotonic() - sent < 1.0

        # Missed while disconnected: a reconnect with Last-Event-ID gets exactly what came after.
        await bus.publish(GroupUpdated(group_id="g-missed", state="completed", subbands_present=16))
        await asyncio.sleep(0.5)
        async with session.get(edge.url + "/api/sse/status", headers={"Last-Event-ID": last_id}) as resp:
            events = sse_events(resp)
            event_id, data = await asyncio.wait_for(anext(events), 5)
            while data is None:
                event_id, data = await asyncio.wait_for(anext(events), 5)
            assert has_group(data, "g-missed")
            assert int(event_id.split("-")[1]) > int(last_id.split("-")[1])
            # ...and heartbeats keep the idle stream alive.
            while (await asyncio.wait_for(anext(events), 2))[1] is not None:
                pass

        # An unknown or stale id gets a fresh snapshot instead.
        async with session.get(edge.url + "/api/sse/status", headers={"Last-Event-ID": "gone-1"}) as resp:
            _, data = await asyncio.wait_for(anext(sse_events(resp)), 5)
            assert data is not None and data["type"] == "status_update" and has_group(data, "g-missed")


async def test_slow_client_is_dropped_without_delaying_others() -> None:
    hub = LiveHub()
    fast_got: list[str] = []
    stuck = asyncio.Event()

    async def fast_send(m: LiveMessage) -> None:
        fast_got.append(m.id)

    async def slow_send(m: LiveMessage) -> None:
        await stuck.wait()  # a client that never reads

    fast, slow = Client("ws", fast_send), Client("ws", slow_send)
    tasks = [asyncio.create_task(hub.serve(fast, [])), asyncio.create_task(hub.serve(slow, []))]
    await asyncio.sleep(0)
    started = time.monotonic()
    for i in range(200):
        hub.broadcast("status_update", {"n": i})
        await asyncio.sleep(0)
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.05)
    assert slow.dropped and not fast.dropped
    assert len(fast_got) == 200
    assert hub.clients == {fast}
    await hub.close_all()
    tasks[1].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
