"""KV buckets follow the stream's rule: created with the settings' replicas, raised, never lowered."""

from __future__ import annotations

import asyncio
import time

from bus import StreamPolicy, connect_when_ready
from bus.kv import LIST_INACTIVE_S, ensure_kv, list_keys
from bus.server import EmbeddedServer, LocalCluster


async def test_a_bucket_is_created_once_and_keeps_its_values(nats_server: EmbeddedServer) -> None:
    bus = await connect_when_ready(nats_server.url, StreamPolicy())
    try:
        kv = await ensure_kv(bus.js, "T_LEDGER", history=2)
        await kv.put("alice", b"1")
        again = await ensure_kv(bus.js, "T_LEDGER", history=2)
        assert (await again.get("alice")).value == b"1"
    finally:
        await bus.close()


async def test_listing_keys_leaves_no_consumer_on_the_server(nats_server: EmbeddedServer) -> None:
    """Keys are listed on every scheduling decision; each listing's consumer must go with it (nats-py's
    own ``keys()`` leaves one for five minutes, and the server's memory grew with them)."""
    bus = await connect_when_ready(nats_server.url, StreamPolicy())
    try:
        kv = await ensure_kv(bus.js, "T_LIST")
        assert await list_keys(kv) == []
        for key in ("a.1", "b.2", "c.3"):
            await kv.put(key, b"x")
        await kv.delete("b.2")
        for _ in range(10):
            assert sorted(await list_keys(kv)) == ["a.1", "c.3"]
        deadline = time.monotonic() + LIST_INACTIVE_S + 10
        while (await bus.js.stream_info("KV_T_LIST")).state.consumer_count:
            assert time.monotonic() < deadline, "the listings' consumers are still on the server"
            await asyncio.sleep(0.5)
    finally:
        await bus.close()


async def test_kv_replicas_are_raised_and_never_lowered(cluster: LocalCluster) -> None:
    bus = await connect_when_ready(cluster.url, StreamPolicy())
    try:
        deadline = time.monotonic() + 30
        while True:  # the KV API answers once the meta leader is elected
            try:
                await ensure_kv(bus.js, "T_LEASES", replicas=1)
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
        assert (await bus.js.stream_info("KV_T_LEASES")).config.num_replicas == 1
        await ensure_kv(bus.js, "T_LEASES", replicas=3)
        assert (await bus.js.stream_info("KV_T_LEASES")).config.num_replicas == 3
        kv = await ensure_kv(bus.js, "T_LEASES", replicas=1)  # a default start: kept at 3
        assert (await bus.js.stream_info("KV_T_LEASES")).config.num_replicas == 3
        deadline = time.monotonic() + 30
        while True:  # a bucket that was just scaled up elects its new leader first
            try:
                await kv.put("watcher", b"x")
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
        assert (await kv.get("watcher")).value == b"x"
    finally:
        await bus.close()


async def test_keepers_starting_at_once_on_a_fresh_cluster_all_get_the_bucket(cluster: LocalCluster) -> None:
    """Several processes creating the same R3 bucket at the same instant (two quota keepers started
    together): every one gets the bucket, none fails its start-up on the other's create, and each
    can write to it at once (ensure_kv returns when the new bucket has elected its leader)."""
    buses = [await connect_when_ready(cluster.url, StreamPolicy()) for _ in range(4)]
    try:
        kvs = await asyncio.wait_for(
            asyncio.gather(*(ensure_kv(b.js, "T_RACE", replicas=3) for b in buses)), timeout=60
        )
        for i, kv in enumerate(kvs):  # each can write at once: the bucket has its leader
            await kv.put(f"keeper{i}", b"1")
        info = await buses[0].js.stream_info("KV_T_RACE")  # answered from the leader's state
        assert info.config.num_replicas == 3
        assert info.state.messages == 4
    finally:
        for b in buses:
            await b.close()
