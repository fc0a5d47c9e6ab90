"""The streaming service endpoints of seed 000: status, start/stop/restart really switching
ingestion, configuration validated, persisted and applied; operator keys on every POST."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from pathlib import Path

from bus import Bus
from schemas.dsa import GroupUpdated
from sim.observation import SimGroup
from tests.conftest import eventually
from tests.dsa import ingest_fixtures
from tests.dsa.ingest_fixtures import IngestStack

ingest = ingest_fixtures.ingest
sim_groups = ingest_fixtures.sim_groups


async def test_start_stop_restart(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    group = sim_groups[0]
    watcher = await ingest.start_watcher()
    op = await ingest.operator()
    user = await ingest.user(role="user")

    for path in ("/api/streaming/stop", "/api/streaming/start", "/api/streaming/restart"):
        r = await ingest.post(path)
        assert r.status == 403 and r.body["code"] == "MISSING_API_KEY", path
        r = await ingest.post(path, user=user)
        assert r.status == 403 and r.body["code"] == "OPERATOR_ONLY", path
        r = await ingest.post(path, user="sk_live_" + "x" * 43)
        assert r.status == 403, path

    async def status() -> dict:
        return (await ingest.get("/api/streaming/status")).body  # type: ignore[no-any-return]

    s = await eventually(status)
    assert s["running"] is True and s["pid"] == os.getpid()
    assert s["memory_mb"] > 0 and s["uptime_seconds"] >= 0
    assert s["queue_stats"] == {"total": 0, "pending": 0, "processing": 0}
    assert set(s) == {"running", "pid", "uptime_seconds", "cpu_percent", "memory_mb", "queue_stats"}

    r = await ingest.post("/api/streaming/stop", user=op)
    assert r.status == 200
    assert r.body == {"status": "stopped", "message": "Streaming service stopped successfully"}
    assert (await status())["running"] is False

    # a group dropped while stopped is not taken in
    ingest.drop(group.files)
    await asyncio.sleep(2.0)  # more than six scan intervals
    assert await ingest.group_of(group) is None
    assert await ingest.events(GroupUpdated) == []

    r = await ingest.post("/api/streaming/start", user=op)
    assert r.status == 200
    assert r.body == {"status": "started", "pid": os.getpid(), "message": "Streaming service started successfully"}
    assert (await status())["running"] is True
    await ingest.wait_group(group, "completed")

    r = await ingest.post("/api/streaming/restart", user=op)
    assert r.status == 200
    assert r.body == {
        "status": "restarted",
        "pid": os.getpid(),
        "message": "Streaming service restarted successfully",
    }
    s = await status()
    assert s["running"] is True and s["uptime_seconds"] < 5

    r = await ingest.post("/api/streaming/stop", user=op)
    assert r.status == 200

    # no watcher at all: commands are 503, the status says not running
    await ingest.stop_watcher(watcher)
    r = await ingest.post("/api/streaming/start", user=op)
    assert r.status == 503 and r.body["status"] == "error"
    await eventually(lambda: _not_running(ingest), timeout=5)


async def _not_running(ingest: IngestStack) -> bool:
    return (await ingest.get("/api/streaming/status")).body["running"] is False


async def test_config_validated_persisted_and_applied(
    ingest: IngestStack, sim_groups: list[SimGroup], tmp_path: Path
) -> None:
    group = sim_groups[2]
    watcher = await ingest.start_watcher()
    op = await ingest.operator()
    r = await ingest.get("/api/streaming/config")
    assert r.body == {
        "input_dir": str(ingest.settings.incoming),
        "output_dir": str(ingest.settings.ms_dir),
        "batch_size": 16,
        "poll_interval": 0.3,
    }

    assert (await ingest.post("/api/streaming/config", {"batch_size": 2})).status == 403
    user = await ingest.user(role="user")
    assert (await ingest.post("/api/streaming/config", {"batch_size": 2}, user)).status == 403
    for body, field in (
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1.5}, "poll_interval"),
        ({"poll_interval": "fast"}, "poll_interval"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"input_dir": "relative/incoming"}, "input_dir"),
        ({"output_dir": ""}, "output_dir"),
        ({"output_dir": str(ingest.settings.incoming)}, "output_dir"),
    ):
        r = await ingest.post("/api/streaming/config", body, op)
        assert r.status == (400 if body == {"output_dir": ""} else 422), body  # an empty string is a missing field
        assert r.body["details"]["field"] == field and field in r.body["error"], (body, r.body)
    assert (await ingest.post("/api/streaming/config", {}, op)).status == 400
    r = await ingest.call(
        "POST", "/api/streaming/config", op, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status == 400
    assert (await ingest.post("/api/streaming/config", {"unknown": 1}, op)).status in (400, 422)
    assert watcher.config.batch_size == 16  # nothing applied

    new_in, new_out = tmp_path / "elsewhere" / "incoming", tmp_path / "elsewhere" / "ms"
    new = {"input_dir": str(new_in), "output_dir": str(new_out), "batch_size": 4, "poll_interval": 0.2}
    r = await ingest.post("/api/streaming/config", new, op)
    assert r.status == 200
    assert r.body == {"status": "updated", "message": "Configuration updated successfully"}
    assert (await ingest.get("/api/streaming/config")).body == new

    # applied without restarting anything: the watcher now watches the new directory
    await eventually(lambda: watcher.config.input_dir == str(new_in), timeout=10)
    ingest.drop(group.files, new_in)
    g = await ingest.wait_group(group, "completed")
    ms = (await ingest.get("/api/control/ms/list")).body["ms_list"]
    assert ms[0]["path"] == str(new_out / f"{g['group_id']}.ms")

    # a partial update keeps the rest
    r = await ingest.post("/api/streaming/config", {"poll_interval": 1.0}, op)
    assert r.status == 200
    assert (await ingest.get("/api/streaming/config")).body == {**new, "poll_interval": 1.0}

    # persisted: another edge and a new watcher see the same configuration

    from web.app import Edge

    edge_bus = await Bus.connect(ingest.settings.nats_url, name="test-edge-2")
    edge2 = Edge(replace(ingest.settings, edge_name="edge2"), edge_bus)
    await edge2.start(host="127.0.0.1", port=0)
    try:

        async def config2() -> bool:  # once edge2 has projected the stream
            async with ingest.session.get(edge2.url + "/api/streaming/config") as resp:
                return bool(await resp.json() == {**new, "poll_interval": 1.0})

        await eventually(config2, timeout=10)
    finally:
        with contextlib.suppress(Exception):
            await edge2.stop()
        await edge_bus.close()
    await ingest.stop_watcher(watcher)
    w2 = await ingest.start_watcher(incoming_dir=None, output_dir=None)
    assert w2.config.input_dir == str(new_in) and w2.config.poll_interval == 1.0
