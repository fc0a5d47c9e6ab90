"""Bad input to the watcher: each case is rejected with an event and an alert, nothing crashes, and
no file is lost (every file stays in the incoming directory; a fixed file is taken in)."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np

from schemas.dsa import GroupUpdated, SubbandRejected
from schemas.ops import AlertRaised
from sim.observation import SimGroup
from tests.conftest import eventually
from tests.dsa import ingest_fixtures
from tests.dsa.ingest_fixtures import IngestStack

# the stack's fixtures (tests/dsa/conftest.py belongs to the science tests)
ingest = ingest_fixtures.ingest
sim_groups = ingest_fixtures.sim_groups


def shifted_name(path: str, seconds: int) -> str:
    ts, _, rest = Path(path).name.partition("_")
    t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) + timedelta(seconds=seconds)
    return f"{t:%Y-%m-%dT%H:%M:%S}_{rest}"


async def rejections(ingest: IngestStack) -> dict[str, SubbandRejected]:
    return {e.code: e for e in await ingest.events(SubbandRejected)}


async def alerts(ingest: IngestStack, text: str) -> list[AlertRaised]:
    return await ingest.events(AlertRaised, lambda a: text in a.message)


async def test_bad_files_are_rejected_and_kept(ingest: IngestStack, sim_groups: list[SimGroup], tmp_path: Path) -> None:
    group, other = sim_groups[0], sim_groups[1]
    watcher = await ingest.start_watcher()
    inc = ingest.incoming
    half = group.files[5]
    ingest.drop([f for f in group.files if f != half])
    # a half-written subband: the writer stopped half way (for now)
    data = Path(half).read_bytes()
    (inc / Path(half).name).write_bytes(data[: len(data) // 2])
    # a non-HDF5 file with the right name
    (inc / "2025-10-24T10:00:00_sb03.hdf5").write_bytes(b"this is not HDF5 at all\n" * 100)
    # a UVH5 file whose flags do not match its header's shape
    wrong = tmp_path / "2025-10-24T11:00:00_sb07.hdf5"
    shutil.copy(other.files[7], wrong)
    with h5py.File(wrong, "r+") as fh:
        shape = fh["Data/flags"].shape
        del fh["Data/flags"]
        fh["Data"].create_dataset("flags", data=np.zeros((shape[0], shape[1] + 1, shape[2]), bool))
    shutil.copy(wrong, inc / wrong.name)

    async def three() -> bool:
        return {"incomplete", "not_hdf5", "wrong_shape"} <= set(await rejections(ingest))

    await eventually(three, timeout=30)
    rej = await rejections(ingest)
    assert "not an HDF5 file" in rej["not_hdf5"].reason
    assert "Data/flags has shape" in rej["wrong_shape"].reason
    assert "left in place" in rej["wrong_shape"].reason
    assert Path(rej["incomplete"].path).name == Path(half).name
    for code, r in rej.items():
        a = await ingest.events(AlertRaised, lambda a, r=r: a.dedup_key.endswith(f"{r.code}:{r.path}"))
        assert a and a[0].alert_type == "system_error", code
    g = await ingest.group_of(group)
    assert g is not None and g["state"] == "collecting" and g["subbands_present"] == 15

    # the writer finishes the half-written file: it is taken in and the group completes
    (inc / Path(half).name).write_bytes(data)
    done = await ingest.wait_group(group, "completed")
    assert done["subbands_present"] == 16

    # a second file for a subband the group already has: a duplicate, not queued
    dup = inc / shifted_name(group.files[1], 1)
    assert not dup.exists()
    shutil.copy(group.files[1], dup)

    async def duplicate() -> SubbandRejected | None:
        return (await rejections(ingest)).get("duplicate")

    d = await eventually(duplicate, timeout=20)
    assert d.group_id == done["group_id"] and d.subband == 1 and "duplicate" in d.reason
    assert await ingest.events(AlertRaised, lambda a: a.dedup_key == f"watcher:duplicate:{dup}")

    # nothing was lost: every file is still there; the bad ones were judged once
    names = {p.name for p in inc.iterdir()}
    assert {Path(f).name for f in group.files} <= names
    assert {"2025-10-24T10:00:00_sb03.hdf5", wrong.name, dup.name} <= names
    assert len(await ingest.events(SubbandRejected, lambda e: e.code == "not_hdf5")) == 1
    rows = await ingest.events(GroupUpdated, lambda e: e.group_id == done["group_id"])
    assert [e.state for e in rows].count("completed") == 1
    # and nothing crashed
    assert not watcher._tasks[0].done() and watcher._running.is_set()
    r = await ingest.get("/api/streaming/status")
    assert r.body["running"] is True


async def test_timeout_partial_then_late_subband(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    group = sim_groups[1]
    watcher = await ingest.start_watcher(group_timeout_s=2.0, group_timeout_policy="process_partial")
    ingest.drop(group.files[:15])
    g = await ingest.wait_group(group, "completed")
    assert g["subbands_present"] == 15
    rows = await ingest.events(GroupUpdated, lambda e: e.group_id == g["group_id"] and e.state == "pending")
    assert rows[0].missing_subbands == [15]
    await eventually(lambda: alerts(ingest, "converting with sb15 flagged"), timeout=10)
    ms = (await ingest.get("/api/control/ms/list")).body["ms_list"]
    assert len(ms) == 1 and g["group_id"] in ms[0]["path"]

    # the missing subband turns up three hours later
    watcher.clock = lambda: time.time() + 3 * 3600
    ingest.drop(group.files[15:])

    async def late() -> SubbandRejected | None:
        return (await rejections(ingest)).get("late")

    r = await eventually(late, timeout=20)
    assert r.group_id == g["group_id"] and r.subband == 15
    assert "already completed" in r.reason and "3.0" in r.reason
    assert await ingest.events(AlertRaised, lambda a: a.dedup_key == f"watcher:late:{r.path}")
    assert Path(r.path).exists()
    assert (await ingest.group_of(group))["subbands_present"] == 15  # type: ignore[index]


async def test_timeout_fail_policy(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    group = sim_groups[2]
    await ingest.start_watcher(group_timeout_s=1.5, group_timeout_policy="fail")
    ingest.drop(group.files[:3])
    g = await ingest.wait_group(group, "failed", timeout=30)
    assert g["subbands_present"] == 3 and "timed out" in g["reason"]
    await eventually(lambda: alerts(ingest, f"group {g['group_id']} failed: timed out"), timeout=10)

    async def failed_in_status() -> bool:
        q = (await ingest.get("/api/status")).body["queue"]
        return bool(q["failed"] == 1 and q["total"] == 1)

    await eventually(failed_in_status, timeout=5)  # /api/status is refreshed by the broadcaster
    assert (await ingest.get("/api/control/ms/list")).body["total"] == 0


async def test_incoming_directory_vanishes_and_comes_back(ingest: IngestStack, sim_groups: list[SimGroup]) -> None:
    group = sim_groups[0]
    await ingest.start_watcher()
    inc = ingest.incoming
    assert inc.is_dir()
    shutil.rmtree(inc)

    async def missing() -> list[AlertRaised]:
        return await alerts(ingest, "is missing")

    gone = await eventually(missing, timeout=20)
    assert gone[0].severity == "critical" and gone[0].alert_type == "system_error"
    inc.mkdir()
    ingest.drop(group.files)
    g = await ingest.wait_group(group, "completed")
    assert g["subbands_present"] == 16
    back = await alerts(ingest, "is back")
    assert len(back) == 1 and len(await alerts(ingest, "is missing")) == 1
