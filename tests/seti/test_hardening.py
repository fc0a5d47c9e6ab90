"""Inputs that cannot stall or bloat the searcher, and small faults found by a hostile test.

* a few-kB gzip .h5 declaring 16 GiB is refused by its DECODED size, before anything is read;
* a search past ``--search-time-limit`` is stopped and the job failed with that reason;
* a job whose file key is invalid fails at its first delivery (no retries);
* ``/analyze`` with ``..``, ``//`` or NUL in the user's own file_key is a 400 envelope, not a 500;
* revoking an already revoked key publishes no second event;
* a redelivered job's progress never goes back to 0 %.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from actors.searcher.actor import SearcherActor
from bus import Bus
from bus.replay import replay
from schemas.events import decode
from schemas.seti import JobProgressed, JobSubmitted, KeyRevoked
from settings import Settings
from tests.seti.conftest import Stack, _header
from tests.seti.test_searcher_service import analyze, synthetic, wait_finished


def lying_h5(path: Path) -> bytes:
    """A gzip FBH5 whose 'data' declares 2^12 × 1 × 2^20 float32 = 16 GiB and stores none of it."""
    nchans, ntime = 1 << 20, 1 << 12
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "data", shape=(ntime, 1, nchans), dtype="<f4", chunks=(1, 1, nchans), compression="gzip"
        )
        for k, v in _header(nchans).items():
            if k not in ("rawdatafile",):
                ds.attrs[k] = v
        ds.attrs["nifs"] = 1
        ds.attrs["nbits"] = 32
    return path.read_bytes()


@pytest.fixture
async def limited_searcher(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[SearcherActor]:
    actor = SearcherActor(bus, replace(settings, search_time_limit_s=0.02))
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()


@pytest.fixture
async def searcher(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[SearcherActor]:
    actor = SearcherActor(bus, settings)
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()


async def test_compressed_h5_is_limited_by_its_decoded_size(
    stack: Stack, searcher: SearcherActor, tmp_path: Path
) -> None:
    payload = lying_h5(tmp_path / "bomb.h5")
    assert len(payload) < 64 * 1024  # tiny on disk
    user = await stack.user()  # researcher: 1 GB per file
    key = await stack.upload(user, "bomb.h5", payload)
    started = time.monotonic()
    job = await wait_finished(stack, user, await analyze(stack, user, key), timeout=30)
    assert job["status"] == "failed", job
    assert "decodes to 16,384.0 MB" in job["error"] and "limit" in job["error"], job["error"]
    assert time.monotonic() - started < 10  # refused before reading, not after a 37 s search


async def test_a_search_past_the_time_limit_fails_with_that_reason(
    stack: Stack, limited_searcher: SearcherActor, tmp_path: Path
) -> None:
    user = await stack.user()
    key = await stack.upload(user, "slow.fil", synthetic(tmp_path, "slow.fil", nchans=1 << 18))
    job = await wait_finished(stack, user, await analyze(stack, user, key), timeout=60)
    assert job["status"] == "failed", job
    assert "per-job time limit of 0.02 s" in job["error"]
    assert limited_searcher._consumer is not None and limited_searcher._consumer.stats.failed == 0


async def test_an_invalid_file_key_fails_the_job_at_once(stack: Stack, searcher: SearcherActor) -> None:
    user = await stack.user()
    bad = JobSubmitted(
        job_id="job-bad-key",
        user_id=user.user_id,
        file_key=f"uploads/{user.user_id}/x/../../etc/passwd",
        filename="passwd.fil",
        source_name="x",
        file_size=10,
        created_at=int(time.time()),
    )
    await stack.bus.publish(bad)
    consumer = searcher._consumer
    assert consumer is not None
    deadline = time.monotonic() + 20
    failed = None
    while failed is None and time.monotonic() < deadline:
        async for stored in replay(stack.bus.js, "seti.job.failed"):
            event = decode(stored.data)
            if getattr(event, "job_id", "") == "job-bad-key":
                failed = event
    assert failed is not None and "invalid file key" in failed.error  # type: ignore[attr-defined]
    assert consumer.stats.failed == 0  # handled at the first delivery: not raised, so not retried


@pytest.mark.parametrize(
    "tail", ["a/../../b.fil", "a//b.fil", "a/b\x00.fil", "a/./b.fil"], ids=["dotdot", "slashes", "nul", "dot"]
)
async def test_analyze_with_a_malformed_own_file_key_is_400(stack: Stack, tail: str) -> None:
    user = await stack.user()
    r = await stack.call("POST", "/analyze", user, {"file_key": f"uploads/{user.user_id}/{tail}"})
    assert r.status == 400, r.body
    assert r.body["status"] == "error" and r.body["code"] == "INVALID_FILE_KEY"


async def test_revoking_twice_publishes_one_event(stack: Stack) -> None:
    user = await stack.user()
    created = await stack.call("POST", "/api-keys", user, {"name": "twice"})
    key_id = created.body["key_id"]
    assert (await stack.call("DELETE", f"/api-keys/{key_id}", user)).status == 200
    assert (await stack.call("DELETE", f"/api-keys/{key_id}", user)).status == 200
    revoked = [
        e
        async for e in (decode(s.data) async for s in replay(stack.bus.js, KeyRevoked.subject()))
        if isinstance(e, KeyRevoked) and e.key_id == key_id
    ]
    assert len(revoked) == 1


async def test_progress_never_goes_back_after_a_redelivery(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)
    job_id = await analyze(stack, user, key)

    async def progress(percent: float, stage: str) -> None:
        ack = await stack.bus.publish(
            JobProgressed(job_id=job_id, user_id=user.user_id, percent=percent, stage=stage,
                          coarse_channels_done=int(percent), coarse_channels_total=100)
        )
        await stack.edge.wait_applied(ack.seq)

    await progress(60.0, "dedoppler")
    await progress(0.0, "ingest")  # the redelivered job starts again on another searcher
    r = await stack.call("GET", f"/jobs/{job_id}", user)
    assert r.body["progress"]["percent"] == 60.0
    await progress(75.0, "dedoppler")
    r = await stack.call("GET", f"/jobs/{job_id}", user)
    assert r.body["progress"]["percent"] == 75.0
    assert np.isfinite(r.body["progress"]["percent"])
