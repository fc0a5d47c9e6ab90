"""Files dropped into the incoming directory of a running stack become completed groups with their
Measurement Sets listed, visible in /api/status and live on the WebSocket and SSE views."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from actors.watcher.convert import read_ms_summary
from schemas.dsa import GroupUpdated, MeasurementSetWritten
from sim.observation import SimGroup
from tests.conftest import eventually
from tests.dsa import ingest_fixtures
from tests.dsa.ingest_fixtures import IngestStack

# the stack's fixtures (tests/dsa/conftest.py belongs to the science tests)
ingest = ingest_fixtures.ingest
sim_groups = ingest_fixtures.sim_groups


async def test_groups_become_measurement_sets(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    plain, with_cal = sim_groups[0], sim_groups[2]
    assert with_cal.calibrator is not None and plain.calibrator is None
    await ingest.start_watcher()

    # a WebSocket client sees the states go by
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(ingest.url.replace("http", "ws") + "/api/ws/status")
    seen_states: set[str] = set()

    async def read_ws() -> None:
        async for msg in ws:
            data = json.loads(msg.data)
            if data.get("type") == "status_update":
                for g in data["data"]["pipeline_status"]["recent_groups"]:
                    seen_states.add(g["state"])

    reader = asyncio.create_task(read_ws())
    try:
        ingest.drop(plain.files)
        ingest.drop(with_cal.files)
        g1 = await ingest.wait_group(plain, "completed")
        g2 = await ingest.wait_group(with_cal, "completed")
        await asyncio.sleep(0.2)
    finally:
        reader.cancel()
        await ws.close()
        await session.close()
    assert {"completed"} <= seen_states
    assert g1["subbands_present"] == 16 and not g1["has_calibrator"]
    assert g2["has_calibrator"]

    # /api/status (bytes refreshed by the edge's broadcaster a few ms after each change)
    async def settled() -> bool:
        return bool((await ingest.get("/api/status")).body["queue"]["completed"] == 2)

    await eventually(settled, timeout=5)
    r = await ingest.get("/api/status")
    assert r.status == 200
    assert r.body["queue"] == {
        "total": 2,
        "pending": 0,
        "in_progress": 0,
        "completed": 2,
        "failed": 0,
        "collecting": 0,
    }
    recent = {g["group_id"]: g for g in r.body["recent_groups"]}
    assert recent[g1["group_id"]] == {
        "group_id": g1["group_id"],
        "state": "completed",
        "subbands_present": 16,
        "expected_subbands": 16,
        "has_calibrator": False,
    }
    assert recent[g2["group_id"]]["has_calibrator"] is True

    # every state change was an event: collecting (1..16 subbands) -> pending -> in_progress -> completed
    rows = await ingest.events(GroupUpdated, lambda e: e.group_id == g1["group_id"])
    states = [e.state for e in rows]
    assert states[-3:] == ["pending", "in_progress", "completed"]
    assert [e.subbands_present for e in rows if e.state == "collecting"] == list(range(1, 16))
    assert rows[-1].ms_path.endswith(f"{g1['group_id']}.ms")

    # the MS list
    r = await ingest.get("/api/control/ms/list")
    assert r.status == 200 and r.body["total"] == 2 and r.body["limit"] == 50 and r.body["offset"] == 0
    item = next(i for i in r.body["ms_list"] if g1["group_id"] in i["path"])
    assert set(item) == {"path", "stage", "status", "mid_mjd", "field_name"}
    assert item["stage"] == "converted" and item["status"] == "ok"
    assert abs(item["mid_mjd"] - plain.mid_mjd) < 1e-3
    assert item["field_name"].startswith("J") and item["field_name"].endswith("+54")
    assert Path(item["path"]) == ingest.settings.ms_dir / f"{g1['group_id']}.ms"
    summary = read_ms_summary(item["path"])
    assert summary["n_rows"] == 10 * 24  # 4 antennas: 10 baselines with autos, 24 integrations
    assert len(summary["chan_freq"]) == 64 and summary["chan_freq"][0] < summary["chan_freq"][-1]

    ms_events = await ingest.events(MeasurementSetWritten)
    assert len(ms_events) == 2 and {e.stage for e in ms_events} == {"converted"}

    # filters and paging
    assert (await ingest.get("/api/control/ms/list?stage=converted&status=ok")).body["total"] == 2
    assert (await ingest.get("/api/control/ms/list?stage=imaged")).body == {
        "ms_list": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    page = (await ingest.get("/api/control/ms/list?limit=1&offset=1")).body
    assert page["total"] == 2 and len(page["ms_list"]) == 1 and page["limit"] == 1 and page["offset"] == 1
    newest = (await ingest.get("/api/control/ms/list?limit=1")).body["ms_list"][0]
    assert newest["mid_mjd"] > page["ms_list"][0]["mid_mjd"]
    for bad in ("limit=0", "limit=x", "offset=-1", "limit=100000"):
        r = await ingest.get(f"/api/control/ms/list?{bad}")
        assert r.status == 422, bad
        assert r.body["status"] == "error"

    # the SSE view shows the same status
    async with (
        aiohttp.ClientSession() as s,
        s.get(ingest.url + "/api/sse/status") as resp,
    ):
        assert resp.status == 200
        buf = b""
        while b"status_update" not in buf:
            buf += await asyncio.wait_for(resp.content.readany(), 5)
        line = next(x for x in buf.split(b"\n") if x.startswith(b"data: ") and b"status_update" in x)
        data = json.loads(line[6:])
        assert data["data"]["pipeline_status"]["queue"]["completed"] == 2
