"""Restart safety: the watcher's state comes from its events, files already present are picked up,
a file seen twice is queued once, and a conversion interrupted by a crash is redone on redelivery."""

from __future__ import annotations

import asyncio

from schemas.dsa import GroupUpdated, MeasurementSetWritten, SubbandRejected
from sim.observation import SimGroup
from tests.conftest import eventually
from tests.dsa import ingest_fixtures
from tests.dsa.ingest_fixtures import IngestStack

ingest = ingest_fixtures.ingest
sim_groups = ingest_fixtures.sim_groups


async def test_state_is_rebuilt_and_nothing_is_queued_twice(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    a, b = sim_groups[0], sim_groups[1]
    w1 = await ingest.start_watcher()
    ingest.drop(a.files[:8])

    async def eight() -> bool:
        g = await ingest.group_of(a)
        return g is not None and g["subbands_present"] == 8

    await eventually(eight, timeout=30)
    await ingest.stop_watcher(w1)

    # while no watcher runs: the rest of group a, and all of group b
    ingest.drop(a.files[8:])
    ingest.drop(b.files)
    await asyncio.sleep(0.5)
    assert (await ingest.group_of(a))["subbands_present"] == 8  # type: ignore[index]

    ga8 = await ingest.group_of(a)
    w2 = await ingest.start_watcher()
    assert ga8 is not None and ga8["group_id"] in w2.state.groups  # rebuilt from w1's events
    ga = await ingest.wait_group(a, "completed")
    gb = await ingest.wait_group(b, "completed")
    assert ga["subbands_present"] == gb["subbands_present"] == 16

    for g in (ga, gb):
        rows = await ingest.events(GroupUpdated, lambda e, g=g: e.group_id == g["group_id"])
        collecting = [e.subbands_present for e in rows if e.state == "collecting"]
        assert collecting == list(range(1, 16)), collecting  # each file counted once
        assert [e.state for e in rows].count("completed") == 1
    assert await ingest.events(SubbandRejected) == []
    assert len(await ingest.events(MeasurementSetWritten)) == 2
    await ingest.stop_watcher(w2)

    # a third watcher finds everything done: it publishes no group change and converts nothing
    before = len(await ingest.events(GroupUpdated))
    w3 = await ingest.start_watcher()
    assert w3.state.counts()["completed"] == 2 and len(w3.state.seen_paths) == 32
    await asyncio.sleep(1.5)  # several scans and the redelivery of nothing
    assert len(await ingest.events(GroupUpdated)) == before
    assert len(await ingest.events(MeasurementSetWritten)) == 2


async def test_conversion_interrupted_by_a_crash_is_redone(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    """A watcher died after publishing in_progress: its pending event was never acknowledged."""
    group = sim_groups[1]
    files = [str(p) for p in ingest.drop(group.files)]
    gid = min(p.rsplit("/", 1)[1][:19] for p in files)
    row = {
        "group_id": gid,
        "subbands_present": 16,
        "files": files,
        "first_seen": 0.0,
        "producer": "watcher",
        "correlation_id": gid,
    }
    await ingest.bus.publish(GroupUpdated(state="pending", **row))  # type: ignore[arg-type]
    await ingest.bus.publish(GroupUpdated(state="in_progress", **row))  # type: ignore[arg-type]
    # a half-written MS left behind by the crash
    tmp = ingest.settings.ms_dir / f".{gid}.ms.123.tmp"
    tmp.mkdir(parents=True)

    w = await ingest.start_watcher()
    assert w.state.groups[gid].state.value == "in_progress"
    g = await ingest.wait_group(group, "completed")
    assert g["group_id"] == gid
    ms = await ingest.events(MeasurementSetWritten)
    assert len(ms) == 1 and ms[0].path == str(ingest.settings.ms_dir / f"{gid}.ms")
    rows = await ingest.events(GroupUpdated, lambda e: e.group_id == gid)
    assert [e.state for e in rows] == ["pending", "in_progress", "completed"]  # files not regrouped
