"""Replay by time and by sequence, through the library and through ``run.py replay``."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime

from bus import STREAM, Bus
from bus.consume import ConsumerSpec, ensure_consumer
from bus.replay import replay
from harness.env import clean_env
from schemas.dsa import GroupUpdated
from schemas.events import decode
from schemas.seti import JobFailed
from settings import Settings
from tests.conftest import PYTHON, ROOT


async def _publish_two_batches(bus: Bus) -> datetime:
    for i in range(3):
        await bus.publish(GroupUpdated(group_id=f"early{i}", state="collecting", subbands_present=1))
    await asyncio.sleep(0.3)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.3)
    for i in range(3):
        await bus.publish(GroupUpdated(group_id=f"late{i}", state="pending", subbands_present=16))
    await bus.publish(JobFailed(job_id="j", user_id="u", completed_at=0, error="x"))
    return middle


async def _ids(bus: Bus, **kw: object) -> list[str]:
    out = []
    async for stored in replay(bus.js, **kw):  # type: ignore[arg-type]
        event = decode(stored.data)
        out.append(getattr(event, "group_id", getattr(event, "job_id", "")))
    return out


async def test_replay_by_time_sequence_and_subject(bus: Bus) -> None:
    middle = await _publish_two_batches(bus)
    assert await _ids(bus, subject="dsa.>") == ["early0", "early1", "early2", "late0", "late1", "late2"]
    assert await _ids(bus, subject="dsa.>", since=middle) == ["late0", "late1", "late2"]
    assert await _ids(bus, subject="dsa.>", until=middle) == ["early0", "early1", "early2"]
    assert await _ids(bus, seq=5) == ["late1", "late2", "j"]
    assert await _ids(bus, subject="seti.>") == ["j"]
    assert await _ids(bus, subject="ops.>") == []


async def test_replay_does_not_disturb_durable_consumers(bus: Bus) -> None:
    await _publish_two_batches(bus)
    spec = ConsumerSpec(name="watcher", filter_subjects=["dsa.>"])
    await ensure_consumer(bus.js, spec)
    sub = await bus.js.pull_subscribe_bind(durable="watcher", stream=STREAM)
    for msg in await sub.fetch(2, timeout=2):
        await msg.ack_sync()
    before = await bus.js.consumer_info(STREAM, "watcher")
    assert await _ids(bus) == ["early0", "early1", "early2", "late0", "late1", "late2", "j"]
    after = await bus.js.consumer_info(STREAM, "watcher")
    assert (after.delivered, after.ack_floor, after.num_pending) == (
        before.delivered,
        before.ack_floor,
        before.num_pending,
    )
    durable = [c.config.durable_name for c in await bus.js.consumers_info(STREAM) if c.config.durable_name]
    assert durable == ["watcher"]


async def test_replay_command_prints_json_lines(bus: Bus, settings: Settings) -> None:
    middle = await _publish_two_batches(bus)
    env = clean_env()

    def run(*args: str) -> list[dict[str, object]]:
        proc = subprocess.run(
            [PYTHON, "run.py", "replay", "--nats-url", settings.nats_url, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    lines = await asyncio.to_thread(run, "--subject", "dsa.>", "--since", middle.isoformat())
    assert [line["event"]["group_id"] for line in lines] == ["late0", "late1", "late2"]  # type: ignore[index]
    assert {line["subject"] for line in lines} == {"dsa.group.updated"}
    assert all(str(line["stored_at"]).endswith("Z") for line in lines)
    lines = await asyncio.to_thread(run, "--seq", "6")
    assert [line["seq"] for line in lines] == [6, 7]
    assert lines[-1]["event"]["type"] == "seti.job.failed"  # type: ignore[index]


async def test_replay_follow_streams_new_events(bus: Bus, settings: Settings) -> None:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "replay",
        "--nats-url",
        settings.nats_url,
        "--subject",
        "dsa.>",
        "--follow",
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.sleep(1.5)
        await bus.publish(GroupUpdated(group_id="live", state="pending", subbands_present=16))
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        assert json.loads(line)["event"]["group_id"] == "live"
    finally:
        proc.terminate()
        await proc.wait()
