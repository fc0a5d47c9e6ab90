"""Leases (bus/lease.py) against a real nats-server: one holder at a time, expiry, hand-over."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.js.kv import KeyValue

from bus import Bus, StreamPolicy, connect_when_ready
from bus.kv import SMALL_BLOCKS_MAX_BYTES, ensure_kv
from bus.lease import Lease, lease_bucket, lease_key
from bus.server import EmbeddedServer

TTL = 1.5


async def eventually(cond: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def bus(nats_server: EmbeddedServer) -> AsyncIterator[Bus]:
    b = await connect_when_ready(nats_server.url, StreamPolicy())
    yield b
    await b.close()


@pytest.fixture
async def kv(bus: Bus) -> KeyValue:
    kv, ttl = await lease_bucket(bus.js, replicas=1, ttl_s=TTL)
    assert ttl == pytest.approx(TTL)
    return kv


async def test_the_bucket_ttl_wins_over_a_different_setting(kv: KeyValue, bus: Bus) -> None:
    _, ttl = await lease_bucket(bus.js, replicas=1, ttl_s=60.0)
    assert ttl == pytest.approx(TTL)  # counting 60 s against a 1.5 s expiry would allow two holders


def test_keys_are_valid_kv_keys() -> None:
    assert lease_key("watcher", "/data/in coming", "ab12") == "watcher.data_in_coming.ab12"
    assert lease_key("alerter") == "alerter"


async def test_one_holder_at_a_time_and_cas_on_renew(kv: KeyValue) -> None:
    a = Lease(kv, "role", "inst-a", ttl_s=TTL)
    b = Lease(kv, "role", "inst-b", ttl_s=TTL)
    assert await a.try_acquire()
    assert a.held
    assert not await b.try_acquire()
    assert b.other == "inst-a"
    assert await a.renew()
    assert await a.current_holder() == "inst-a"

    # someone else wrote the key (a takeover): the compare-and-set renew fails, the lease is lost
    await kv.put("role", b"inst-b")
    assert not await a.renew()
    assert not a.held


async def test_an_unrenewed_lease_expires_and_is_taken_over(kv: KeyValue) -> None:
    a = Lease(kv, "role", "inst-a", ttl_s=TTL)
    b = Lease(kv, "role", "inst-b", ttl_s=TTL)
    assert await a.try_acquire()
    # a stops renewing (a dead process): b gets the lease once the server expires the key
    await eventually(b.try_acquire)
    assert await b.current_holder() == "inst-b"
    assert not await a.renew()  # the late renew of the old holder is refused
    assert await b.renew()


async def test_release_hands_over_at_once(kv: KeyValue) -> None:
    a = Lease(kv, "role", "inst-a", ttl_s=60.0)
    b = Lease(kv, "role", "inst-b", ttl_s=60.0)
    assert await a.try_acquire()
    assert not await b.try_acquire()
    await a.release()
    assert not a.held
    assert await b.try_acquire()  # no wait for the (60 s) expiry
    await a.release()  # releasing what is no longer ours changes nothing
    assert await b.current_holder() == "inst-b"


async def test_run_waits_visibly_once_and_takes_over_after_a_release(kv: KeyValue) -> None:
    a = Lease(kv, "role", "inst-a", ttl_s=TTL)
    assert await a.try_acquire()
    b = Lease(kv, "role", "inst-b", ttl_s=TTL)
    waiting: list[str] = []
    acquired = asyncio.Event()

    async def on_acquired() -> None:
        acquired.set()

    async def on_lost(reason: str) -> None:
        pass

    task = asyncio.create_task(b.run(on_acquired, on_lost, on_waiting=waiting.append))
    try:
        # a keeps renewing for several of b's polls: b says once whom it waits for
        for _ in range(6):
            assert await a.renew()
            await asyncio.sleep(TTL / 4)
        assert waiting == ["inst-a"]
        assert not acquired.is_set()
        await a.release()
        await asyncio.wait_for(acquired.wait(), 30)
        assert await b.current_holder() == "inst-b"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_partitioned_holder_stops_before_another_takes_over(
    kv: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = Lease(kv, "role", "inst-a", ttl_s=TTL)
    events: list[str] = []

    async def a_acquired() -> None:
        events.append("a active")

    async def a_lost(reason: str) -> None:
        events.append("a stopped")

    task_a = asyncio.create_task(a.run(a_acquired, a_lost))
    await eventually(lambda: events == ["a active"])
    # hold it across a few renews, then cut a off from the bus: its renews never answer
    await asyncio.sleep(TTL)
    assert await a.current_holder() == "inst-a"

    class Partitioned:
        """The bus as seen from the wrong side of a partition: nothing ever answers."""

        def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
            async def hang(*args: object, **kwargs: object) -> None:
                await asyncio.Event().wait()

            return hang

    monkeypatch.setattr(a, "kv", Partitioned())
    b = Lease(kv, "role", "inst-b", ttl_s=TTL)

    async def b_acquired() -> None:
        events.append("b active")

    async def b_lost(reason: str) -> None:
        events.append("b stopped")

    task_b = asyncio.create_task(b.run(b_acquired, b_lost))
    try:
        await eventually(lambda: "b active" in events)
        assert events == ["a active", "a stopped", "b active"]
    finally:
        for t in (task_a, task_b):
            t.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)


async def test_renewals_keep_the_bucket_in_small_file_blocks(
    kv: KeyValue, bus: Bus, nats_server: EmbeddedServer
) -> None:
    """Every renew appends a record to the stream's last file block, which the server never
    compacts: with the default 4 MB blocks, two leases grew it ~8.5 kB a minute for ever, and the
    server re-read the whole block into a buffer of its size class on every write (the embedded
    server's memory grew 21 % in a 30-minute fuzz run). Capped, the bucket gets 32 kB blocks and
    drops each one once its records are superseded."""
    key = lease_key("watcher", "/data/incoming", "fuzz")
    rev = await kv.create(key, b'{"holder": "a", "since": 0.0}')
    for _ in range(1500):  # ~200 kB of records: ~12 minutes of two leases renewed every 2 s
        rev = await kv.update(key, b'{"holder": "a", "since": 0.0}', last=rev)
    info = await bus.js.stream_info("KV_leases")
    assert info.config.max_bytes == SMALL_BLOCKS_MAX_BYTES
    blocks = list(nats_server.store_dir.rglob("KV_leases/msgs/*.blk"))
    assert blocks, "the stream's blocks are where the test looks"
    assert max(b.stat().st_size for b in blocks) <= 40_000
    assert sum(b.stat().st_size for b in blocks) < 100_000  # superseded blocks are gone


async def test_an_uncapped_leases_bucket_is_given_the_cap(bus: Bus) -> None:
    """A bucket made before the cap (every existing installation) gets it on the next start."""
    await ensure_kv(bus.js, "leases", replicas=1, ttl_s=TTL)
    assert (await bus.js.stream_info("KV_leases")).config.max_bytes in (None, -1)
    await lease_bucket(bus.js, replicas=1, ttl_s=TTL)
    assert (await bus.js.stream_info("KV_leases")).config.max_bytes == SMALL_BLOCKS_MAX_BYTES
