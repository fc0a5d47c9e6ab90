"""Durable consumers against a real nats-server: ack, redelivery, dead-letter, poison, dedup."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

from actors.runtime import Actor
from bus import STREAM, Bus
from bus.replay import replay
from schemas.base import Event
from schemas.dsa import GroupUpdated
from schemas.events import decode
from schemas.ops import DeadLettered
from settings import Settings
from tests.conftest import eventually


def group(group_id: str, **kw: Any) -> GroupUpdated:
    return GroupUpdated(group_id=group_id, state=kw.pop("state", "collecting"), subbands_present=1, **kw)


class Recorder(Actor):
    role = "recorder"
    consumes: ClassVar = (GroupUpdated,)
    concurrency = 4
    fail_first: ClassVar[set[str]] = set()
    always_fail: ClassVar[set[str]] = set()

    def __init__(self, bus: Bus, settings: Settings) -> None:
        super().__init__(bus, settings)
        self.calls: Counter[str] = Counter()
        self.done: list[str] = []

    async def handle(self, event: Event) -> None:
        assert isinstance(event, GroupUpdated)
        self.calls[event.group_id] += 1
        if event.group_id in self.always_fail:
            raise RuntimeError(f"cannot handle {event.group_id}")
        if event.group_id in self.fail_first and self.calls[event.group_id] == 1:
            raise RuntimeError("transient")
        self.done.append(event.group_id)


async def dead_letters(bus: Bus) -> list[DeadLettered]:
    out = []
    async for stored in replay(bus.js, "ops.deadletter"):
        e = decode(stored.data)
        assert isinstance(e, DeadLettered)
        out.append(e)
    return out


async def test_publish_consume_ack(bus: Bus, settings: Settings) -> None:
    actor = Recorder(bus, settings)
    await actor.start()
    try:
        for i in range(20):
            await bus.publish(group(f"g{i}"))
        await eventually(lambda: len(actor.done) == 20)
        info = await eventually(lambda: _acked(bus, "recorder", 20))
        assert info.num_ack_pending == 0 and info.num_redelivered == 0
    finally:
        await actor.stop()


async def _acked(bus: Bus, consumer: str, n: int) -> Any:
    info = await bus.js.consumer_info(STREAM, consumer)
    return info if info.ack_floor.stream_seq >= n and info.num_ack_pending == 0 else None


async def test_redelivery_after_handler_error(bus: Bus, settings: Settings) -> None:
    Recorder.fail_first = {"flaky"}
    actor = Recorder(bus, settings)
    actor.consumer_spec = lambda: _fast(Recorder.consumer_spec(actor))  # type: ignore[method-assign]
    await actor.start()
    try:
        await bus.publish(group("flaky"))
        await eventually(lambda: "flaky" in actor.done)
        assert actor.calls["flaky"] == 2
        assert await dead_letters(bus) == []
    finally:
        Recorder.fail_first = set()
        await actor.stop()


def _fast(spec: Any) -> Any:
    from dataclasses import replace

    return replace(spec, backoff_s=(0.1, 0.2))


async def test_dead_letter_after_max_deliveries_and_poison_does_not_block(bus: Bus, settings: Settings) -> None:
    Recorder.always_fail = {"poison"}
    actor = Recorder(bus, settings)
    actor.consumer_spec = lambda: _fast(Recorder.consumer_spec(actor))  # type: ignore[method-assign]
    await actor.start()
    try:
        poison = await actor.publish(group("poison", correlation_id="work-1"))
        for i in range(5):
            await bus.publish(group(f"after{i}"))
        # The messages behind the poison one are handled while it is still being retried.
        await eventually(lambda: len(actor.done) == 5, timeout=5)
        letters = await eventually(lambda: dead_letters(bus))
        assert len(letters) == 1
        dead = letters[0]
        assert dead.consumer == "recorder" and dead.original_subject == "dsa.group.updated"
        assert dead.deliveries == settings.max_deliveries == actor.calls["poison"]
        assert "cannot handle poison" in dead.reason
        assert dead.correlation_id == "work-1"
        assert decode(dead.payload.encode()).id == poison.id  # the original bytes are kept
        await asyncio.sleep(0.5)
        assert actor.calls["poison"] == settings.max_deliveries  # terminated: not delivered again
    finally:
        Recorder.always_fail = set()
        await actor.stop()


async def test_undecodable_message_is_dead_lettered_not_crashing(bus: Bus, settings: Settings) -> None:
    actor = Recorder(bus, settings)
    await actor.start()
    try:
        await bus.js.publish("dsa.group.updated", b'{"type": "dsa.group.updated", "group_id": 5}')
        await bus.js.publish("dsa.group.updated", b"\xff\xfe not json")
        await bus.publish(group("fine"))
        await eventually(lambda: actor.done == ["fine"])
        letters = await eventually(lambda: _n(dead_letters(bus), 2))
        reasons = sorted(d.reason for d in letters)
        assert all(r.startswith("undecodable message") for r in reasons)
        assert any("$.group_id" in r for r in reasons)
        assert any(d.payload_encoding == "base64" for d in letters)
    finally:
        await actor.stop()


async def _n(coro: Any, n: int) -> Any:
    items = await coro
    return items if len(items) >= n else None


async def test_republished_event_is_stored_once(bus: Bus) -> None:
    event = group("dup")
    first = await bus.publish(event)
    second = await bus.publish(event)
    assert second.duplicate and second.seq == first.seq
    info = await bus.js.stream_info(STREAM)
    assert info.state.messages == 1


async def test_two_instances_share_one_consumer(bus: Bus, settings: Settings) -> None:
    a, b = Recorder(bus, settings), Recorder(bus, settings)
    await a.start()
    await b.start()
    try:
        for i in range(40):
            await bus.publish(group(f"s{i}"))
        await eventually(lambda: len(a.done) + len(b.done) == 40)
        assert not set(a.done) & set(b.done)
    finally:
        await a.stop()
        await b.stop()


async def test_actor_survives_nats_server_restart(bus: Bus, settings: Settings, nats_server: Any) -> None:
    actor = Recorder(bus, settings)
    await actor.start()
    try:
        for i in range(5):
            await bus.publish(group(f"before{i}"))
        await eventually(lambda: len(actor.done) == 5)
        # Events acknowledged by the server but not yet consumed must survive the restart too.
        await actor.stop()
        for i in range(5):
            await bus.publish(group(f"stored{i}"))
        nats_server.restart()
        actor = Recorder(bus, settings)
        await actor.start()
        for i in range(5):
            await bus.publish(group(f"after{i}"))  # retries until the reconnect is done
        await eventually(lambda: len(actor.done) == 10, timeout=20)
        assert sorted(actor.done) == sorted([f"stored{i}" for i in range(5)] + [f"after{i}" for i in range(5)])
        info = await bus.js.stream_info(STREAM)
        assert info.state.messages == 15
    finally:
        await actor.stop()
