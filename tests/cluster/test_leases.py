"""Single-active roles on the 3-node cluster, as separate processes: two watchers on one incoming
directory and two alerters on one Slack webhook. One of each works, the other waits visibly as
standby; kill -9 the active one and the standby takes over within 10 s and does the work, once.
And in one process: a holder whose lease is taken stops working, then resumes when it is back.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from actors.alerter.actor import AlerterActor
from bus import StreamPolicy, connect_when_ready
from bus.lease import lease_bucket
from bus.server import EmbeddedServer
from harness.cluster import Role, System
from schemas.dsa import GroupUpdated, MeasurementSetWritten
from schemas.ops import ActorHeartbeat, AlertRaised
from settings import Settings
from sim.observation import SimGroup
from tests.conftest import eventually
from tests.dsa.conftest import FakeSlack, fake_slack
from tests.dsa.ingest_fixtures import sim_groups

pytestmark = pytest.mark.timeout(400)

__all__ = ["fake_slack", "sim_groups"]  # fixtures used by name

#: the issue's bound on failover (the lease TTL is 6 s, a standby polls every second)
FAILOVER_S = 10.0


def log_lines(role: Role) -> list[dict[str, Any]]:
    out = []
    for line in role.log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def acquired_at(role: Role) -> float:
    """Wall time at which this process logged that it took its lease (the process's own clock)."""
    from datetime import datetime

    stamps = [r["timestamp"] for r in log_lines(role) if r.get("event") == "lease acquired"]
    assert stamps, role.log.read_text()[-3000:]
    return datetime.fromisoformat(stamps[-1].replace("Z", "+00:00")).timestamp()


def waiting_lines(role: Role) -> list[str]:
    return [r["event"] for r in log_lines(role) if str(r.get("event", "")).startswith("standby: waiting")]


async def one_active(system: System, role: str, procs: list[Role]) -> tuple[Role, Role]:
    pids = {p.proc.pid for p in procs}

    def split() -> bool:
        return sorted(system.states(role, pids).values()) == ["active", "standby"]

    await eventually(split, timeout=120, interval=0.1)
    states = system.states(role, pids)
    active = next(p for p in procs if states[p.proc.pid] == "active")
    standby = next(p for p in procs if states[p.proc.pid] == "standby")
    return active, standby


async def test_two_watchers_on_one_directory(system: System, tmp_path: Path, sim_groups: list[SimGroup]) -> None:
    incoming, ms = tmp_path / "incoming", tmp_path / "ms"
    args = (
        "--incoming-dir", str(incoming), "--output-dir", str(ms), "--watch-poll", "0.3",
        "--watch-settle", "60", "--group-timeout", "600", "--kv-replicas", "3",
    )  # fmt: skip
    await system.start_role("edge")
    watchers = [await system.start_role("watcher", *args) for _ in range(2)]
    active, standby = await one_active(system, "watcher", watchers)

    # /api/actors shows which one works
    async def listed() -> bool:
        async with system.http.get(system.edge_url + "/api/actors") as r:
            body = await r.json()
        return sorted(a["state"] for a in body["actors"] if a["role"] == "watcher" and a["alive"]) == [
            "active",
            "standby",
        ]

    await eventually(listed, timeout=60, interval=0.2)

    async def converted(group: SimGroup, count: int) -> None:
        incoming.mkdir(parents=True, exist_ok=True)
        for f in group.files:
            shutil.copy(f, incoming / Path(f).name)

        async def written() -> bool:
            return len(await system.events(MeasurementSetWritten)) == count

        await eventually(written, timeout=240, interval=0.5)

    def rows_of(events: list[Any], gid: str) -> list[GroupUpdated]:
        return [e for _, e in events if e.group_id == gid]

    await converted(sim_groups[0], 1)
    (_, first), = await system.events(MeasurementSetWritten)  # fmt: skip
    rows = rows_of(await system.events(GroupUpdated), first.group_id)
    assert [r.subbands_present for r in rows if r.state == "collecting"] == list(range(1, 16))  # each file once
    assert [r.state for r in rows].count("completed") == 1
    assert waiting_lines(standby) == [f"standby: waiting for the lease held by {active_instance(system, active)}"]

    # kill -9 the active watcher: the standby takes the directory over and converts what comes next
    await active.kill()
    killed_at = time.time()
    await eventually(lambda: system.states("watcher", {standby.proc.pid}) == {standby.proc.pid: "active"}, timeout=60)
    took = acquired_at(standby) - killed_at
    assert 0 < took < FAILOVER_S, took
    await converted(sim_groups[1], 2)
    written = [e for _, e in await system.events(MeasurementSetWritten)]
    assert len({e.group_id for e in written}) == 2
    rows = rows_of(await system.events(GroupUpdated), written[1].group_id)
    assert [r.subbands_present for r in rows if r.state == "collecting"] == list(range(1, 16))
    assert [r.state for r in rows].count("completed") == 1
    print(f"watcher failover: lease taken {took:.1f} s after kill -9")


def active_instance(system: System, role: Role) -> str:
    return next(hb.instance for hb in system.heartbeats.values() if hb.pid == role.proc.pid)


async def test_two_alerters_one_post_per_alert(system: System, fake_slack: FakeSlack) -> None:
    args = ("--slack-webhook-url", fake_slack.url, "--alert-stall-factor", "4", "--kv-replicas", "3")
    alerters = [await system.start_role("alerter", *args) for _ in range(2)]
    active, standby = await one_active(system, "alerter", alerters)

    def posts(text: str) -> int:
        return sum(1 for t in fake_slack.texts() if text in t)

    # An instance that falls silent: each alerter that watches heartbeats would report it itself,
    # so two active alerters would post twice.
    started = "2026-01-01T00:00:00Z"
    for _ in range(8):
        await system.bus.publish_live(
            ActorHeartbeat(
                role="imager",
                instance="imager-fake-1",
                pid=1,
                host="elsewhere",
                started_at=started,
                handled=0,
                failed=0,
                in_flight=0,
            )
        )
        await asyncio.sleep(0.25)
    await eventually(lambda: posts("imager-fake-1") >= 1, timeout=60)

    async def alert(tag: str) -> None:
        await system.bus.publish(
            AlertRaised(alert_type="system_error", severity="warning", message=f"disk check {tag}", dedup_key=tag)
        )
        await eventually(lambda: posts(f"disk check {tag}") >= 1, timeout=60)

    await alert("one")
    # Absence of a second post cannot be awaited; give a duplicate several stall periods to show.
    await asyncio.sleep(5.0)
    assert posts("imager-fake-1") == 1
    assert posts("disk check one") == 1

    await active.kill()
    killed_at = time.time()
    await eventually(lambda: system.states("alerter", {standby.proc.pid}) == {standby.proc.pid: "active"}, timeout=60)
    took = acquired_at(standby) - killed_at
    assert 0 < took < FAILOVER_S, took
    await alert("two")
    assert posts("disk check two") == 1
    print(f"alerter failover: lease taken {took:.1f} s after kill -9")


async def test_an_alerter_that_loses_its_lease_stops_and_resumes(
    nats_server: EmbeddedServer, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """In one process: the lease taken from under the holder (as after a partition) stops its
    consuming and Slack deliveries; when the lease comes back it sets up again and catches up."""
    settings = Settings(
        data_dir=tmp_path / "data", nats_url=nats_server.url, heartbeat_s=0.5, lease_ttl_s=1.5,
        slack_webhook_url=fake_slack.url, slack_retry_base_s=0.05,
    )  # fmt: skip
    bus = await connect_when_ready(nats_server.url, StreamPolicy())
    alerter = AlerterActor(bus, settings)
    # What the alerter holds right after it stepped down. Read then, not when the test next looks:
    # the taken key expires 1.5 s later and the alerter, correctly, takes the lease back.
    consumer_after_standby: list[object] = []
    become_standby = alerter._become_standby

    async def spy(reason: str) -> None:
        await become_standby(reason)
        consumer_after_standby.append(alerter._consumer)

    alerter._become_standby = spy  # type: ignore[method-assign]
    await alerter.start()
    try:
        assert alerter.activity == "active" and alerter.lease is not None
        kv, _ = await lease_bucket(bus.js, replicas=1, ttl_s=1.5)
        await kv.put(alerter.lease.key, b"another-instance")  # its renew's compare-and-set now fails
        await eventually(lambda: len(consumer_after_standby) >= 1, timeout=30)
        assert consumer_after_standby[0] is None

        await bus.publish(
            AlertRaised(alert_type="system_error", severity="warning", message="raised on standby", dedup_key="s")
        )
        # the other instance never renews: its key expires and this one takes the lease again
        await eventually(lambda: alerter.activity == "active", timeout=30)
        await eventually(lambda: any("raised on standby" in t for t in fake_slack.texts()), timeout=30)
        assert sum("raised on standby" in t for t in fake_slack.texts()) == 1
    finally:
        await alerter.stop()
        await bus.close()
