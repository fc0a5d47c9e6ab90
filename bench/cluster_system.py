"""Roles as separate ``run.py`` processes on a loopback ``LocalCluster``: what ``bench_cluster``
needs to start and kill them. Kept out of ``tests/`` so a benchmark never imports test helpers
(``tests/cluster/system.py`` is the fuller test-side equivalent, with the edge and API users).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from bus import Bus, StreamPolicy
from bus.server import LocalCluster
from schemas.ops import ActorHeartbeat

ROOT = Path(__file__).resolve().parents[1]


async def connect_when_ready(url: str, policy: StreamPolicy, deadline_s: float = 60.0) -> Bus:
    """JetStream answers only once the cluster has elected its meta leader: retry until then."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await Bus.connect(url, name="bench", stream=policy)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@dataclass
class Proc:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    async def kill(self) -> None:
        """SIGKILL to the process group (its pool workers too): a crash, no shutdown code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 12)
        await self.kill()


@dataclass
class ClusterSystem:
    root: Path
    cluster: LocalCluster = field(init=False)
    bus: Bus = field(init=False)
    procs: list[Proc] = field(default_factory=list)
    heartbeats: dict[str, ActorHeartbeat] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    async def start(self) -> None:
        self.cluster = LocalCluster(self.root / "nats")
        self.cluster.start()
        self.bus = await connect_when_ready(self.cluster.url, StreamPolicy(replicas=3))

        async def on(msg: object) -> None:
            hb = msgspec.json.decode(msg.data, type=ActorHeartbeat)  # type: ignore[attr-defined]
            self.heartbeats[hb.instance] = hb

        await self.bus.nc.subscribe(ActorHeartbeat.subject(), cb=on)

    async def start_actor(self, role: str, *extra: str) -> Proc:
        log = self.root / f"{role}-{len(self.procs)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBS_")}
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "run.py", "actor", role, "--nats-url", self.cluster.url,
                "--data-dir", str(self.data_dir), "--stream-replicas", "3", "--heartbeat", "0.5", *extra,
                cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        p = Proc(role, proc, log)
        self.procs.append(p)
        return p

    async def live(self, role: str, pids: set[int], timeout: float = 180.0) -> None:
        """Until every process in ``pids`` has sent a heartbeat (its consumer is bound by then)."""
        deadline = time.monotonic() + timeout
        while {hb.pid for hb in self.heartbeats.values() if hb.role == role} & pids != pids:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{role}: not all of {sorted(pids)} started")
            await asyncio.sleep(0.2)

    def in_flight(self, role: str) -> set[int]:
        return {hb.pid for hb in self.heartbeats.values() if hb.role == role and hb.in_flight}

    async def stop_procs(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.procs), return_exceptions=True)
        self.procs.clear()
        self.heartbeats.clear()

    async def close(self) -> None:
        await self.stop_procs()
        with contextlib.suppress(Exception):
            await self.bus.close()
        self.cluster.stop()
