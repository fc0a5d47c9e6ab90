"""Health, system metrics, actor heartbeats and the generated OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
from openapi_spec_validator import validate

from actors.runtime import Actor
from bus import Bus
from schemas.base import Event
from settings import Settings
from tests.conftest import eventually


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.json()


async def test_health_and_metrics(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    assert await _get(edge.url + "/health") == (200, {"status": "healthy", "version": "0.3.0"})
    status, m = await _get(edge.url + "/api/metrics/system")
    assert status == 200
    assert set(m) == {
        "cpu_percent",
        "mem_percent",
        "disk_total",
        "disk_used",
        "disk_free",
        "load_1",
        "load_5",
        "load_15",
        "ts",
    }
    assert 0 <= m["cpu_percent"] <= 100 and 0 < m["mem_percent"] < 100
    assert m["disk_total"] == m["disk_used"] + m["disk_free"] or m["disk_total"] >= m["disk_used"]
    assert m["ts"].endswith("Z")


class Idle(Actor):
    role = "idle"
    consumes: ClassVar = ()

    async def handle(self, event: Event) -> None:  # pragma: no cover - consumes nothing
        pass


async def test_actor_heartbeats_show_on_the_edge(
    bus: Bus, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    actor = Idle(bus, settings)
    await actor.start()
    try:

        async def listed() -> Any:
            _, body = await _get(edge.url + "/api/actors")
            return [a for a in body["actors"] if a["instance"] == actor.instance]

        (view,) = await eventually(listed)
        assert view["role"] == "idle" and view["alive"] is True and view["last_seen_s"] < 2
    finally:
        await actor.stop()


async def test_openapi_document_is_valid_3_1_and_generated_from_structs(
    edge_factory: Callable[..., Awaitable[Any]],
) -> None:
    edge = await edge_factory()
    status, doc = await _get(edge.url + "/api/openapi.json")
    assert status == 200 and doc["openapi"] == "3.1.0"
    validate(doc)
    status_schema = doc["paths"]["/api/status"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert status_schema == {"$ref": "#/components/schemas/StatusResponse"}
    assert set(doc["components"]["schemas"]["StatusResponse"]["required"]) == {
        "queue",
        "calibration_sets",
        "recent_groups",
    }


async def test_read_auth_closes_dashboard_reads_but_not_health(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory(read_auth=True)
    assert (await _get(edge.url + "/health"))[0] == 200
    for path in ("/api/status", "/api/metrics/system", "/api/actors", "/api/sse/status"):
        status, body = await _get(edge.url + path)
        assert status == 403 and body["code"] == "MISSING_API_KEY", path
