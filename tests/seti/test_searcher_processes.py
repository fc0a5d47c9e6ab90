"""Searchers as real, separate processes (``run.py actor searcher``) sharing one durable consumer.

One of two searchers is killed (SIGKILL) in the middle of a search: JetStream redelivers the job
to the other one after ``--ack-wait``, and the job completes exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors.searcher.pipeline import search_file
from actors.searcher.synth import Tone, make_filterbank
from bus import Bus
from harness.env import clean_env
from schemas.ops import ActorHeartbeat
from settings import Settings
from tests.conftest import PYTHON, ROOT
from tests.seti.conftest import Stack
from tests.seti.test_searcher_service import ALL_FORMATS, analyze, completions

MAX_DRIFT = 20.0


def coarse_channels_for(tmp_path: Path, seconds: float) -> int:
    """How many 2^16-channel coarse channels the search does in about ``seconds`` (8 to 48: one PUT)."""
    probe = make_filterbank(tmp_path / "probe.fil", nchans=2 << 16, ntime=16, nbits=8)
    search_file(probe, max_drift=MAX_DRIFT)  # numba loads (or compiles) the kernels
    started = time.perf_counter()
    search_file(probe, max_drift=MAX_DRIFT)
    per_channel = (time.perf_counter() - started) / 2
    return max(8, min(48, math.ceil(seconds / per_channel)))


class Heartbeats:
    """The latest heartbeat of each searcher process, and a way to await a condition on them."""

    def __init__(self) -> None:
        self.latest: dict[int, ActorHeartbeat] = {}
        self._changed = asyncio.Condition()

    async def on_msg(self, msg: Any) -> None:
        hb = msgspec.json.decode(msg.data, type=ActorHeartbeat)
        if hb.role == "searcher":
            async with self._changed:
                self.latest[hb.pid] = hb
                self._changed.notify_all()

    async def wait_for(self, check: Callable[[dict[int, ActorHeartbeat]], Any], timeout: float) -> Any:
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(lambda: check(self.latest)), timeout)


@pytest.fixture
async def searchers(settings: Settings, bus: Bus, tmp_path: Path) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs = []
    for n in range(2):
        log = (tmp_path / f"searcher{n}.log").open("wb")
        procs.append(
            await asyncio.create_subprocess_exec(
                PYTHON,
                "run.py",
                "actor",
                "searcher",
                "--nats-url",
                settings.nats_url,
                "--data-dir",
                str(settings.data_dir),
                "--ack-wait",
                "2",
                "--heartbeat",
                "0.3",
                "--max-deliveries",
                "3",
                cwd=ROOT,
                env=clean_env(),
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group, so cleanup reaches any pool workers
            )
        )
        log.close()
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 12)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


async def test_searcher_killed_mid_job_the_job_completes_once_on_another(
    stack: Stack, bus: Bus, searchers: list[asyncio.subprocess.Process], tmp_path: Path
) -> None:
    heartbeats = Heartbeats()
    sub = await bus.nc.subscribe(ActorHeartbeat.subject(), cb=heartbeats.on_msg)
    pids = {p.pid for p in searchers}
    await heartbeats.wait_for(lambda hb: pids <= set(hb), timeout=60)  # both up (kernels warmed)

    # A search long enough to be killed in the middle of: coarse channels of 2^16 × 16 steps × 8 bits
    # (1 MiB each) searched to ±20 Hz/s, as many as take about 6 s here (the search keeps getting faster).
    coarse = await asyncio.to_thread(coarse_channels_for, tmp_path, 6.0)
    path = make_filterbank(
        tmp_path / "long.fil", nchans=coarse << 16, ntime=16, nbits=8, fch1=1400.0, tones=[Tone(1399.95, 1.5, 30.0)]
    )
    user = await stack.user()
    file_key = await stack.upload(user, "long.fil", path.read_bytes())
    job_id = await analyze(stack, user, file_key, max_drift=MAX_DRIFT)

    async with stack.session.ws_connect(f"{stack.url}/jobs/{job_id}/ws", headers={"x-api-key": user.api_key}) as ws:

        async def next_update() -> dict[str, Any]:
            msg = await ws.receive(timeout=60)
            body: dict[str, Any] = json.loads(msg.data)
            return body

        # the search is under way in one of the two processes ...
        update = await next_update()
        while not (update["data"]["status"] == "processing" and update["data"]["progress"]["coarse_channels_done"]):
            update = await next_update()
        assert update["data"]["progress"]["percent"] < 100
        seen_at = time.time()

        def holder(hb: dict[int, ActorHeartbeat]) -> int | None:
            busy = [pid for pid, h in hb.items() if pid in pids and h.in_flight and h.time.timestamp() > seen_at]
            return busy[0] if busy else None

        victim = await heartbeats.wait_for(holder, timeout=10)
        survivor = (pids - {victim}).pop()
        assert heartbeats.latest[survivor].in_flight == 0  # the other one never took the same job

        # ... which is killed mid-job
        os.kill(victim, signal.SIGKILL)
        victim_proc = next(p for p in searchers if p.pid == victim)
        assert await asyncio.wait_for(victim_proc.wait(), 10) == -signal.SIGKILL
        assert await completions(bus, job_id) == []  # it died before completing

        # the job is redelivered to the survivor (after --ack-wait) and completes, with its exports
        update = await next_update()
        while not (update["data"]["status"] == "complete" and update["exports"] == ALL_FORMATS):
            assert update["data"]["status"] != "failed", update
            update = await next_update()

    results = update["data"]["results"]
    assert results["candidates"] >= 1
    assert any(abs(c["frequency_hz"] - 1399.95e6) < 10 for c in results["top_candidates"])
    done = await completions(bus, job_id)
    assert len(done) == 1, done
    survivor_hb = await heartbeats.wait_for(lambda hb: hb[survivor].handled >= 1 and hb[survivor], timeout=10)
    assert survivor_hb.in_flight == 0
    await sub.unsubscribe()
