"""Failed jobs and quotas (README, "Failed jobs and quotas"): a job the service fails is never charged;
a job that fails on the user's invalid file is charged, and its error says so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import actors.searcher.actor as searcher_actor
from actors.searcher.actor import SearcherActor
from bus import Bus
from settings import Settings
from tests.seti.conftest import Stack, User
from tests.seti.test_searcher_service import analyze, synthetic, wait_finished


@pytest.fixture
async def searcher(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[SearcherActor]:
    actor = SearcherActor(bus, settings)
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()


async def usage(stack: Stack, user: User) -> int:
    r = await stack.call("GET", "/usage", user)
    assert r.status == 200, r.body
    return int(r.body["usage_this_month"])


async def eventually_usage(stack: Stack, user: User, want: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := await usage(stack, user)) != want:
        assert time.monotonic() < deadline, f"usage {got}, expected {want}"
        await asyncio.sleep(0.05)


async def test_an_invalid_file_is_charged_and_the_error_says_so(stack: Stack, searcher: SearcherActor) -> None:
    user = await stack.user()
    key = await stack.upload(user, "junk.fil", b"this is a text file, not a filterbank\n" * 50)
    job_id = await analyze(stack, user, key)
    job = await wait_finished(stack, user, job_id)
    assert job["status"] == "failed"
    assert "not a filterbank" in job["error"] and "counts toward this month's quota" in job["error"]
    await asyncio.sleep(0.3)  # nothing is given back
    assert await usage(stack, user) == 1


async def test_a_crashed_worker_is_not_charged(
    stack: Stack, searcher: SearcherActor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("worker crashed")

    monkeypatch.setattr(searcher_actor, "search_file", crash)
    user = await stack.user()
    key = await stack.upload(user, "good.fil", synthetic(tmp_path, "good.fil", nchans=1 << 12))
    job_id = await analyze(stack, user, key)
    assert await usage(stack, user) == 1  # counted when admitted
    job = await wait_finished(stack, user, job_id, timeout=120.0)
    assert job["status"] == "failed"
    assert "worker crashed" in job["error"] and "not charged" in job["error"]
    await eventually_usage(stack, user, 0)  # given back, by the edge's read model ...
    deadline = time.monotonic() + 20.0
    while await stack.keeper.counters.used(user.user_id, time.time()) != 0:
        assert time.monotonic() < deadline, "the quota keeper did not give the file back"
        await asyncio.sleep(0.05)  # ... and by the quota keeper, which admits the next job


async def test_a_dead_lettered_job_is_not_charged(stack: Stack) -> None:
    from bus.replay import replay
    from schemas.base import encode
    from schemas.events import decode
    from schemas.ops import DeadLettered
    from schemas.seti import JobSubmitted

    user = await stack.user()
    key = await stack.upload(user)
    job_id = await analyze(stack, user, key)
    submitted = None
    async for stored in replay(stack.bus.js, "seti.job.submitted"):
        event = decode(stored.data)
        if isinstance(event, JobSubmitted) and event.job_id == job_id:
            submitted = event
    assert submitted is not None and await usage(stack, user) == 1
    dead = DeadLettered(
        consumer="searcher", original_subject="seti.job.submitted", original_seq=1, deliveries=5,
        reason="delivered 6 times without an answer", payload=encode(submitted).decode(),
    )
    await stack.bus.publish(dead)
    await stack.bus.publish(msgspec.structs.replace(dead, id="another-copy"))
    job = await wait_finished(stack, user, job_id)
    assert "not charged" in job["error"]
    await eventually_usage(stack, user, 0)
    await asyncio.sleep(0.3)
    assert await usage(stack, user) == 0  # given back once, not twice
