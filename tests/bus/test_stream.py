"""The event stream's configuration is declared by the settings and kept: raised, never lowered.

The rules are checked as a pure function, then against a real nats-server (one node for
retention), then on a real three-node cluster for replicas — a single server refuses R3, so
only a cluster can show that a replicated stream stays replicated across every process start.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import nats
import pytest

from bus import Bus, connect_when_ready
from bus.server import EmbeddedServer, LocalCluster
from bus.stream import STREAM, StreamPolicy, reconcile, stream_config
from schemas.ops import AlertRaised
from tests.conftest import ROOT

DAY = 86400.0


def test_reconcile_raises_and_never_lowers() -> None:
    current = stream_config(StreamPolicy(max_age_days=365, max_bytes=-1, replicas=3))
    plan = reconcile(current, stream_config(StreamPolicy(max_age_days=90, max_bytes=10**9, replicas=1)))
    assert plan.update is None  # nothing to raise: unlimited bytes beats 1 GB, R3 beats R1, 365 d beats 90 d
    assert len(plan.drift) == 3 and any("replicas" in d for d in plan.drift)

    plan = reconcile(stream_config(StreamPolicy(replicas=1)), stream_config(StreamPolicy(replicas=3)))
    assert plan.update is not None and plan.update.num_replicas == 3
    assert plan.changes == ["replicas 1 -> 3"]

    older = replace(stream_config(), subjects=["dsa.>"], max_age=30 * DAY, max_bytes=10**6)
    plan = reconcile(older, stream_config(StreamPolicy(max_age_days=0)))  # 0: keep forever
    assert plan.update is not None
    assert plan.update.subjects == ["dsa.>", "seti.>", "ops.>"]
    assert plan.update.max_age is None and plan.update.max_bytes == -1


async def test_operator_retention_is_kept_and_readers_never_edit(nats_server: EmbeddedServer) -> None:
    bus = await Bus.connect(nats_server.url, name="t", stream=StreamPolicy(max_age_days=90))
    try:
        info = await bus.js.stream_info(STREAM)
        assert info.config.max_age == pytest.approx(90 * DAY)
        # an operator keeps a year of events by hand
        await bus.js.update_stream(replace(info.config, max_age=365 * DAY))
    finally:
        await bus.close()

    # every later start with the default settings leaves the year alone
    again = await Bus.connect(nats_server.url, name="t2", stream=StreamPolicy(max_age_days=90, max_bytes=10**9))
    try:
        assert (await again.js.stream_info(STREAM)).config.max_age == pytest.approx(365 * DAY)
        assert (await again.js.stream_info(STREAM)).config.max_bytes == -1
    finally:
        await again.close()

    # a reader with settings that would raise the age still changes nothing
    reader = await Bus.connect(nats_server.url, name="r", stream=StreamPolicy(max_age_days=1000), manage_stream=False)
    try:
        assert (await reader.js.stream_info(STREAM)).config.max_age == pytest.approx(365 * DAY)
    finally:
        await reader.close()


async def test_reader_does_not_create_the_stream(nats_server: EmbeddedServer) -> None:
    reader = await Bus.connect(nats_server.url, name="r", manage_stream=False)
    try:
        with pytest.raises(nats.js.errors.NotFoundError):
            await reader.js.stream_info(STREAM)
    finally:
        await reader.close()


async def test_cluster_stream_stays_r3_across_starts_and_replay(cluster: LocalCluster, tmp_path: Path) -> None:
    bus = await connect_when_ready(cluster.url, StreamPolicy(replicas=3))
    try:
        info = await bus.js.stream_info(STREAM)
        assert info.config.num_replicas == 3
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2
    finally:
        await bus.close()

    # a process started with the default settings (R1) keeps the stream at R3
    plain = await connect_when_ready(cluster.url, StreamPolicy())
    try:
        assert (await plain.js.stream_info(STREAM)).config.num_replicas == 3
    finally:
        await plain.close()

    # `run.py replay`, a read-only command, neither lowers nor edits it
    out = subprocess.run(
        [
            sys.executable,
            "run.py",
            "replay",
            "--subject",
            "dsa.>",
            "--nats-url",
            cluster.url,
            "--data-dir",
            str(tmp_path / "d"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    check = await connect_when_ready(cluster.url, StreamPolicy(replicas=3), 10)
    try:
        info = await check.js.stream_info(STREAM)
        assert info.config.num_replicas == 3
        assert info.config.max_age == pytest.approx(90 * DAY)
        # the start that was asked for less said so, in a warning naming the replicas
        lines = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
        assert not any(x.get("event") == "event stream changed" for x in lines)
        assert any(
            x.get("event") == "event stream differs from the settings" and "replicas" in x.get("drift", "")
            for x in lines
        ), out.stderr
    finally:
        await check.close()


async def test_cluster_survives_losing_the_stream_leader(cluster: LocalCluster) -> None:
    """R3 means the stream keeps taking writes with its leader's node gone, and loses nothing."""
    bus = await connect_when_ready(cluster.url, StreamPolicy(replicas=3))
    try:
        for i in range(20):
            await bus.publish(_raised(i))
        leader = (await bus.js.stream_info(STREAM)).cluster.leader  # type: ignore[union-attr]
        index = next(i for i, n in enumerate(cluster.nodes) if n.server_name == leader)
        cluster.kill(index)
        t0 = time.monotonic()
        deadline = t0 + 30
        written = 0
        while written < 20 and time.monotonic() < deadline:
            try:
                await bus.publish(_raised(100 + written))
                written += 1
            except Exception:
                await asyncio.sleep(0.2)
        assert written == 20, "the stream took no writes with its leader gone"
        info = await bus.js.stream_info(STREAM)
        assert info.state.messages == 40
        assert info.cluster is not None and info.cluster.leader != leader

        cluster.start_node(index)  # the old leader comes back and catches up
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            info = await bus.js.stream_info(STREAM)
            peers = {r.name: r for r in (info.cluster.replicas or [])} if info.cluster else {}
            back = peers.get(leader)
            if back is not None and back.current and not back.offline:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(f"node {leader} did not catch up: {info.cluster}")
    finally:
        await bus.close()


def _raised(i: int) -> AlertRaised:
    return AlertRaised(alert_type="system_error", severity="info", message=f"write {i}", dedup_key=f"w{i}")
