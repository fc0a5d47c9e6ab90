"""Admission that a retrying client can trust: Idempotency-Key replays, and a 503 that means
nothing was started or charged (the keeper admits nothing past the edge's deadline)."""

from __future__ import annotations

import asyncio
import time
import uuid

from actors.quota_keeper import commands
from actors.quota_keeper.counters import Counters
from bus.replay import replay
from bus.request import request
from schemas.base import encode
from schemas.events import decode
from schemas.seti import JobSubmitted
from tests.conftest import eventually
from tests.seti.conftest import Stack


async def _submitted(stack: Stack, user_id: str) -> list[JobSubmitted]:
    out = []
    async for stored in replay(stack.bus.js, JobSubmitted.subject()):
        event = decode(stored.data)
        if isinstance(event, JobSubmitted) and event.user_id == user_id:
            out.append(event)
    return out


async def test_idempotency_key_replays_the_same_job_uncharged(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)
    headers = {"Idempotency-Key": "run-2026-12-05-001"}
    first = await stack.call("POST", "/analyze", user, {"file_key": key}, headers=headers)
    again = await stack.call("POST", "/analyze", user, {"file_key": key}, headers=headers)
    assert first.status == again.status == 202
    assert again.body["job_id"] == first.body["job_id"]
    # a second user's identical key is theirs alone
    other = await stack.user()
    other_key = await stack.upload(other)
    theirs = await stack.call("POST", "/analyze", other, {"file_key": other_key}, headers=headers)
    assert theirs.status == 202 and theirs.body["job_id"] != first.body["job_id"]
    # a new key, or none, is a new job
    fresh = await stack.call("POST", "/analyze", user, {"file_key": key}, headers={"Idempotency-Key": "run-002"})
    plain = await stack.call("POST", "/analyze", user, {"file_key": key})
    assert len({first.body["job_id"], fresh.body["job_id"], plain.body["job_id"]}) == 3

    assert await stack.keeper.counters.used(user.user_id, time.time()) == 3
    assert len(await _submitted(stack, user.user_id)) == 3
    usage = await stack.call("GET", "/usage", user)
    assert usage.body["usage_this_month"] == 3

    bad = await stack.call("POST", "/analyze", user, {"file_key": key}, headers={"Idempotency-Key": "has space"})
    assert bad.status == 400 and bad.body["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert bad.body["details"]["field"] == "Idempotency-Key"


async def test_an_admission_past_the_callers_deadline_starts_and_charges_nothing(stack: Stack) -> None:
    """What the edge's 503 promises: the keeper never admits after the edge stopped waiting."""
    user = await stack.user()
    key = await stack.upload(user)
    cmd = commands.Admit(
        user_id=user.user_id, file_key=key, filename="obs.fil", source_name="obs", deadline=time.time() - 0.1
    )
    reply = await request(stack.bus.nc, commands.subject("admit"), cmd)
    assert not reply.ok and reply.status == 503 and reply.code == "ADMISSION_EXPIRED"
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 0
    assert await _submitted(stack, user.user_id) == []


async def test_a_slow_keeper_answers_503_and_admits_nothing_later(stack: Stack) -> None:
    """A keeper stalled past the edge's wait (storage slow, say): 503 now, nothing charged after."""
    from web.routes import seti as seti_routes

    user = await stack.user()
    key = await stack.upload(user)
    real_head = stack.keeper.storage.head
    stall = seti_routes.COMMAND_TIMEOUT_S + 1.0

    async def slow_head(file_key: str) -> int | None:
        await asyncio.sleep(stall)
        return await real_head(file_key)

    stack.keeper.storage.head = slow_head  # type: ignore[method-assign]
    try:
        r = await stack.call("POST", "/analyze", user, {"file_key": key})
        assert r.status == 503
        await asyncio.sleep(2.0)  # the keeper has finished its stalled admission by now
    finally:
        stack.keeper.storage.head = real_head  # type: ignore[method-assign]
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 0
    assert await _submitted(stack, user.user_id) == []
    # the retry the 503 asked for is admitted once
    retry = await stack.call("POST", "/analyze", user, {"file_key": key})
    assert retry.status == 202
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 1


async def _counted_not_stored(stack: Stack, user_id: str, key: str, request_id: str = "") -> str:
    """What a keeper killed between counting a job and storing its event leaves in the ledger."""
    job_id = str(uuid.uuid4())
    event = JobSubmitted(
        id=uuid.uuid5(uuid.NAMESPACE_URL, f"observatory/job-submitted/{job_id}").hex,
        job_id=job_id, user_id=user_id, file_key=key, filename="obs.fil", source_name="obs",
        file_size=1, created_at=int(time.time()), correlation_id=job_id,
    )  # fmt: skip
    await stack.keeper.counters.admit(
        user_id, job_id, int(time.time()), 500, 5, request_id=request_id, event=encode(event)
    )
    return job_id


async def test_a_job_counted_but_never_stored_is_stored_on_retry_or_refunded(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)

    # retried with its Idempotency-Key: the same job, now stored, and run
    kept = await _counted_not_stored(stack, user.user_id, key, "key:lost-reply")
    r = await stack.call("POST", "/analyze", user, {"file_key": key}, headers={"Idempotency-Key": "lost-reply"})
    assert r.status == 202 and r.body["job_id"] == kept
    assert [e.job_id for e in await _submitted(stack, user.user_id)] == [kept]
    await eventually(lambda: _unstored_gone(stack, user.user_id, kept))

    # never retried (its client was told 503): refunded once the keeper has seen the whole stream
    lost = await _counted_not_stored(stack, user.user_id, key)
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 2
    assert await eventually(lambda: stack.keeper.refund_unstored(older_than_s=0)) == [lost]
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 1
    assert [e.job_id for e in await _submitted(stack, user.user_id)] == [kept]


async def test_an_idle_ledger_is_not_read_by_the_unstored_sweep(stack: Stack) -> None:
    """Each reading of the records makes the nats-server load the bucket's last block; a sweep
    every 15 s kept it loaded, and an idle server's memory up, for ever. Read only after a change."""
    user = await stack.user()
    key = await stack.upload(user)
    assert (await stack.call("POST", "/analyze", user, {"file_key": key})).status == 202
    await eventually(lambda: _no_unstored(stack, user.user_id))
    sweep = Counters(stack.keeper.counters.kv)  # a second keeper's view, with its own state
    now = int(time.time())
    assert await sweep.unstored_before(now) == [] and sweep.scans == 1
    for _ in range(3):  # nothing changed: nothing read
        assert await sweep.unstored_before(now) == []
    assert sweep.scans == 1

    lost = await _counted_not_stored(stack, user.user_id, key)  # a change: read again
    assert await sweep.unstored_before(int(time.time()) - 60) == [] and sweep.scans == 2
    # a job counted and unstored, not yet old enough: every sweep reads until it is refunded
    assert await sweep.unstored_before(int(time.time()) - 60) == [] and sweep.scans == 3
    assert await sweep.unstored_before(int(time.time()) + 1) == [(f"u.{user.user_id}", lost)]
    assert await sweep.unadmit_key(f"u.{user.user_id}", lost)
    assert await sweep.unstored_before(int(time.time()) + 1) == [] and sweep.scans == 5
    assert await sweep.unstored_before(int(time.time()) + 1) == [] and sweep.scans == 5


async def _no_unstored(stack: Stack, user_id: str) -> bool:
    record, _ = await stack.keeper.counters.read(user_id)
    return not record.unstored


async def _unstored_gone(stack: Stack, user_id: str, job_id: str) -> bool:
    return await stack.keeper.counters.unstored_event(user_id, job_id) is None
