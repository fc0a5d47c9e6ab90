"""Fair scheduling of SETI jobs across users (issue 15): one user's jobs cannot hold every searcher.

The policy is pure (``actors/searcher/fair_share.py``) and tested as such; deferral in the consumer
(``bus.consume.Defer``) is tested against a real nats-server, where a message deferred more times
than the delivery limit must still be handled, not dead-lettered; and two real ``SearcherActor``
instances sharing the one durable consumer must start bob's job before alice's 4th when alice
submitted 6 first, while alice alone still gets both. In those tests the search itself is a gate the test opens (``GatedSearcher``): what
is under test is who starts when, and a gate makes "a job still running" a fact, not a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import ClassVar

import pytest

from actors.runtime import Actor
from actors.searcher import fair_share
from actors.searcher.actor import SearcherActor
from actors.searcher.fair_share import Policy, claim_key, decide, running_by_user
from bus import Bus
from bus.consume import DEFERRALS, Defer
from bus.replay import replay
from schemas.base import Event
from schemas.events import decode
from schemas.ops import DeadLettered
from schemas.seti import JobProgressed, JobSubmitted
from settings import Settings
from tests.conftest import eventually

# -- the policy ------------------------------------------------------------------------------------
POLICY = Policy(max_running=1, max_deferrals=3, delay_s=0.5)


def running(*keys: str) -> Counter[str]:
    return running_by_user(keys)


def test_a_user_at_their_share_yields_while_others_wait() -> None:
    busy = running(claim_key("alice", "j1"))
    assert decide("alice", busy, True, 0, POLICY) == 0.5
    assert decide("bob", busy, True, 0, POLICY) is None  # bob has nothing running


def test_a_lone_user_is_not_held_back() -> None:
    busy = running(claim_key("alice", "j1"), claim_key("alice", "j2"))
    assert decide("alice", busy, False, 0, POLICY) is None  # nobody else waits: use every searcher


def test_a_job_yields_at_most_max_deferrals_times() -> None:
    busy = running(claim_key("alice", "j1"))
    assert decide("alice", busy, True, 2, POLICY) == 0.5
    assert decide("alice", busy, True, 3, POLICY) is None


def test_the_share_is_a_setting_and_zero_is_stream_order() -> None:
    busy = running(claim_key("alice", "j1"))
    assert decide("alice", busy, True, 0, replace(POLICY, max_running=2)) is None
    assert decide("alice", running(claim_key("alice", "j1"), claim_key("alice", "j2")), True, 0,
                  replace(POLICY, max_running=2)) == 0.5  # fmt: skip
    assert decide("alice", busy, True, 0, replace(POLICY, max_running=0)) is None


def test_claim_keys_are_valid_kv_keys_and_keep_users_apart() -> None:
    users = ["alice", "a.b", "a_2e_b", "a b", "ü/x", "a*", "a>"]
    keys = [claim_key(u, "job-1") for u in users]
    for key in keys:
        user, job = key.split(".")
        assert user and job == "job-1"
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in user), key
    assert len({k.split(".")[0] for k in keys}) == len(users)  # no two users share a count
    assert running(*keys, claim_key("a.b", "job-2"))[fair_share.user_token("a.b")] == 2


# -- deferral in the consumer: not a failed delivery --------------------------------------------------
class Deferring(Actor):
    """Defers every job ``times`` times, then records the attempt it was handled on."""

    role = "deferring"
    consumes: ClassVar[tuple[type[Event], ...]] = (JobSubmitted,)
    defers: ClassVar[bool] = True
    times: ClassVar[int] = 0
    fail_after_deferrals: ClassVar[bool] = False

    def __init__(self, bus: Bus, settings: Settings) -> None:
        super().__init__(bus, settings)
        self.attempts: list[tuple[str, int, int]] = []

    async def handle(self, event: Event) -> None:
        assert isinstance(event, JobSubmitted)
        if DEFERRALS.get() < self.times:
            raise Defer(0.1, "test")
        self.attempts.append((event.job_id, self.delivery(), DEFERRALS.get()))
        if self.fail_after_deferrals:
            raise RuntimeError("a real failure")


def job(user: str, n: int) -> JobSubmitted:
    return JobSubmitted(
        job_id=f"{user}-{n}-{uuid.uuid4().hex[:6]}",
        user_id=user,
        file_key=f"uploads/{user}/{n}.fil",
        filename=f"{n}.fil",
        source_name="TEST",
        file_size=1,
        created_at=0,
    )


async def dead_letters(bus: Bus) -> list[DeadLettered]:
    out = []
    async for stored in replay(bus.js, "ops.deadletter"):
        event = decode(stored.data)
        assert isinstance(event, DeadLettered)
        out.append(event)
    return out


async def test_deferrals_are_not_counted_as_failed_deliveries(bus: Bus, settings: Settings) -> None:
    assert settings.max_deliveries == 3
    Deferring.times, Deferring.fail_after_deferrals = 5, False  # more deferrals than the delivery limit
    actor = Deferring(bus, settings)
    await actor.start()
    try:
        submitted = job("alice", 1)
        await bus.publish(submitted)
        await eventually(lambda: actor.attempts, timeout=60)
        assert actor.attempts == [(submitted.job_id, 1, 5)]  # the first attempt, after 5 deferrals
        assert await dead_letters(bus) == []
    finally:
        await actor.stop()


async def test_after_deferrals_a_failing_job_still_gets_every_attempt(bus: Bus, settings: Settings) -> None:
    Deferring.times, Deferring.fail_after_deferrals = 4, True
    actor = Deferring(bus, settings)
    actor.consumer_spec = lambda: replace(Deferring.consumer_spec(actor), backoff_s=(0.1,))  # type: ignore[method-assign]
    await actor.start()
    try:
        submitted = job("alice", 1)
        await bus.publish(submitted)
        dead = await eventually(lambda: dead_letters(bus), timeout=60)
        assert [a[1] for a in actor.attempts] == [1, 2, 3]  # max_deliveries attempts, then dead-lettered
        assert dead[0].deliveries == 3 and "a real failure" in dead[0].reason
    finally:
        await actor.stop()


# -- two searchers, two users -----------------------------------------------------------------------
class GatedSearcher(SearcherActor):
    """The real searcher's scheduling (turn, claim, deferral) around a job that runs until released."""

    gates: ClassVar[dict[str, asyncio.Event]] = {}
    started: ClassVar[list[str]] = []

    async def _handle_job(self, job: JobSubmitted) -> None:
        GatedSearcher.started.append(job.job_id)
        await self.publish(JobProgressed(job_id=job.job_id, user_id=job.user_id, percent=0.0, stage="ingest"))
        await GatedSearcher.gates.setdefault(job.job_id, asyncio.Event()).wait()


@pytest.fixture
async def two_searchers(settings: Settings) -> AsyncIterator[list[GatedSearcher]]:
    GatedSearcher.gates, GatedSearcher.started = {}, []
    s = replace(settings, fair_share_running=1, fair_share_defer_s=0.3, fair_share_max_deferrals=50)
    actors: list[tuple[GatedSearcher, Bus]] = []
    try:
        for n in range(2):
            b = await Bus.connect(s.nats_url, name=f"searcher-{n}")
            actor = GatedSearcher(b, s)
            actors.append((actor, b))
        await asyncio.gather(*(a.start() for a, _ in actors))
        yield [a for a, _ in actors]
    finally:
        for gate in GatedSearcher.gates.values():
            gate.set()
        for actor, b in actors:
            with contextlib.suppress(Exception):
                await actor.stop()
            await b.close()


async def started_in_stream(bus: Bus) -> list[str]:
    out = []
    async for stored in replay(bus.js, JobProgressed.subject()):
        event = decode(stored.data)
        assert isinstance(event, JobProgressed)
        out.append(event.job_id)
    return out


async def test_bob_starts_before_alices_fourth_job(bus: Bus, two_searchers: list[GatedSearcher]) -> None:
    # Both searchers are consuming before anything is submitted, as in production.
    alice = [job("alice", n) for n in range(6)]
    bob = job("bob", 0)
    gates = {j.job_id: asyncio.Event() for j in [*alice, bob]}
    GatedSearcher.gates.update(gates)
    for submitted in [*alice, bob]:
        await bus.publish(submitted)

    async def both_busy(released: int) -> list[str] | None:
        """The start order (from the stream) once both searchers hold an unreleased job."""
        order = await started_in_stream(bus)
        return order if len(order) - released >= 2 else None

    # Each round: wait until both searchers run a job, then end the one that started first; so a
    # freed searcher picks its next job while alice still has one running.
    order: list[str] = []
    released: list[str] = []
    while bob.job_id not in order and alice[3].job_id not in order:
        order = await eventually(lambda n=len(released): both_busy(n), timeout=90)
        oldest = next(j for j in order if j not in released)
        released.append(oldest)
        gates[oldest].set()

    assert bob.job_id in order and alice[3].job_id not in order, order
    assert order.index(bob.job_id) <= 2, order  # at worst after the two alice jobs that ran at once
    assert len(order) == len(set(order))  # each job started once

    # then every job runs: the deferrals starved nothing and dead-lettered nothing
    for gate in gates.values():
        gate.set()
    await eventually(lambda: len(set(GatedSearcher.started)) == 7, timeout=120)
    assert sorted(set(await started_in_stream(bus))) == sorted(gates)
    assert await dead_letters(bus) == []


async def test_a_lone_user_gets_every_searcher(bus: Bus, two_searchers: list[GatedSearcher]) -> None:
    alice = [job("alice", n) for n in range(3)]
    GatedSearcher.gates.update({j.job_id: asyncio.Event() for j in alice})
    for submitted in alice:
        await bus.publish(submitted)
    # nobody else waits: once every queued job has been seen, two of alice's run at once
    both = await eventually(lambda: _at_least(bus, 2), timeout=90)
    assert len(set(both)) == 2 and set(both) <= {j.job_id for j in alice}
    for gate in GatedSearcher.gates.values():
        gate.set()
    await eventually(lambda: len(set(GatedSearcher.started)) == 3, timeout=90)
    assert await dead_letters(bus) == []


async def _at_least(bus: Bus, n: int) -> list[str] | None:
    order = await started_in_stream(bus)
    return order if len(order) >= n else None
