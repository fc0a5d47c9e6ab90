"""The edge's read models: served from the stream, caught up after a restart, rebuilt when lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bus import Bus
from schemas.dsa import CalibrationSetSolved, GroupUpdated
from tests.conftest import eventually


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        return await r.json()


async def test_status_is_projected_from_events(bus: Bus, edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    assert await get_json(edge.url + "/api/status") == {
        "queue": {"total": 0, "pending": 0, "in_progress": 0, "completed": 0, "failed": 0, "collecting": 0},
        "calibration_sets": [],
        "recent_groups": [],
    }
    await bus.publish(GroupUpdated(group_id="2025-10-24T14:00:00", state="collecting", subbands_present=3))
    await bus.publish(
        GroupUpdated(group_id="2025-10-24T14:00:00", state="completed", subbands_present=16, has_calibrator=True)
    )
    await bus.publish(GroupUpdated(group_id="2025-10-24T14:05:00", state="pending", subbands_present=16))
    await bus.publish(
        CalibrationSetSolved(
            cal_group_id="2025-10-24T14:00:00",
            path="/x",
            created_at="2025-10-24T14:06:00Z",
            num_targets=96,
            valid_from_mjd=1.0,
            valid_to_mjd=2.0,
        )
    )

    async def projected() -> Any:
        body = await get_json(edge.url + "/api/status")
        return body if body["calibration_sets"] else None

    body = await eventually(projected)
    assert body["queue"] == {"total": 2, "pending": 1, "in_progress": 0, "completed": 1, "failed": 0, "collecting": 0}
    assert body["recent_groups"][1] == {
        "group_id": "2025-10-24T14:00:00",
        "state": "completed",
        "subbands_present": 16,
        "expected_subbands": 16,
        "has_calibrator": True,
    }
    assert body["calibration_sets"] == [
        {
            "cal_group_id": "2025-10-24T14:00:00",
            "created_at": "2025-10-24T14:06:00Z",
            "num_targets": 96,
            "valid_from_mjd": 1.0,
            "valid_to_mjd": 2.0,
            "calibrator": "",
        }
    ]


async def test_catch_up_after_restart_and_rebuild_after_database_loss(
    bus: Bus, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    for i in range(5):
        await bus.publish(GroupUpdated(group_id=f"g{i}", state="completed", subbands_present=16))
    await eventually(lambda: edge.store.last_seq == 5)
    await edge.stop()

    # Events that arrive while the edge is down are applied on its next start, once each.
    for i in range(5, 8):
        await bus.publish(GroupUpdated(group_id=f"g{i}", state="failed", subbands_present=9))
    edge2 = await edge_factory()
    assert edge2.store.last_seq in range(5, 9)  # resumed from its last applied sequence, not from zero
    await eventually(lambda: edge2.store.last_seq == 8)
    body = await eventually(lambda: _status_when(edge2, total=8))
    assert body["queue"]["completed"] == 5 and body["queue"]["failed"] == 3
    await edge2.stop()

    edge2.settings.projection_db.unlink()
    edge3 = await edge_factory()
    body = await eventually(lambda: _status_when(edge3, total=8))
    assert body["queue"]["completed"] == 5 and body["queue"]["failed"] == 3
    assert edge3.store.last_seq == 8


async def _status_when(edge: Any, total: int) -> Any:
    body = await get_json(edge.url + "/api/status")
    return body if body["queue"]["total"] == total else None
