"""A platform spread as it is in production, on one machine: three clustered nats-server nodes on
loopback and the roles as separate ``run.py`` processes, sharing one data directory (the hosts'
shared filesystem). The fault tests (``tests/cluster``) kill parts of it with SIGKILL and count
what survives; the cluster benchmarks (``bench/bench_cluster.py``, ``bench_admission.py``) time
the same processes. One launcher for both, so what is measured is what is tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from actors.quota_keeper import commands, keys
from bus import Bus, StreamPolicy, connect_when_ready
from bus.replay import replay
from bus.request import CommandUnavailable, request
from bus.server import LocalCluster
from bus.stream import STREAM
from harness.env import clean_env
from schemas.events import decode
from schemas.ops import ActorHeartbeat
from schemas.seti import JobCompleted, JobFailed

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass
class Role:
    name: str
    proc: asyncio.subprocess.Process
    log: Path

    async def kill(self) -> None:
        """SIGKILL, as a crash or a lost host: no shutdown code runs."""
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
class ApiUser:
    user_id: str
    api_key: str


@dataclass
class System:
    root: Path
    cluster: LocalCluster = field(init=False)
    bus: Bus = field(init=False)
    roles: list[Role] = field(default_factory=list)
    edge_url: str = ""
    http: aiohttp.ClientSession = field(init=False)
    #: the latest heartbeat of every instance, by instance id (watched from ``start``)
    heartbeats: dict[str, ActorHeartbeat] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    async def start(self) -> None:
        self.cluster = LocalCluster(self.root / "nats")
        self.cluster.start()
        self.bus = await connect_when_ready(self.cluster.url, StreamPolicy(replicas=3))
        self.http = aiohttp.ClientSession()

        async def on_heartbeat(msg: Any) -> None:
            hb = msgspec.json.decode(msg.data, type=ActorHeartbeat)
            self.heartbeats[hb.instance] = hb

        await self.bus.nc.subscribe(ActorHeartbeat.subject(), cb=on_heartbeat)

    async def start_role(self, name: str, *extra: str, replicas: int = 3) -> Role:
        args = ["edge", "--port", "0"] if name == "edge" else ["actor", name]
        log = self.root / f"{name}-{len(self.roles)}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                PYTHON,
                "run.py",
                *args,
                "--nats-url",
                self.cluster.url,
                "--data-dir",
                str(self.data_dir),
                "--stream-replicas",
                str(replicas),
                "--heartbeat",
                "0.5",
                *extra,
                cwd=ROOT,
                env=clean_env(),
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own group: a kill reaches its pool workers too
            )
        role = Role(name, proc, log)
        self.roles.append(role)
        if name == "edge":
            url_file = self.data_dir / "edge.url"
            deadline = time.monotonic() + 60
            while not (url_file.exists() and url_file.read_text().strip()):
                assert proc.returncode is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the edge did not start"
                await asyncio.sleep(0.1)
            self.edge_url = url_file.read_text().strip()
        return role

    async def wait_heartbeats(self, role: str, count: int, timeout: float = 90) -> None:
        """Until ``count`` instances of ``role`` are live (their consumers are bound by then)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.http.get(self.edge_url + "/api/actors") as r:
                body = await r.json()
            live = [a for a in body["actors"] if a["role"] == role and a["alive"]]
            if len(live) >= count:
                return
            if time.monotonic() >= deadline:  # say why: each instance's last log lines
                tails = "\n".join(
                    f"--- {r.log.name}\n{r.log.read_text(errors='replace')[-2000:]}"
                    for r in self.roles
                    if r.name == role
                )
                raise AssertionError(f"{role}: {len(live)} of {count} live\n{tails}")
            await asyncio.sleep(0.3)

    async def live(self, role: str, pids: set[int], timeout: float = 180.0) -> None:
        """Until every process in ``pids`` has sent a heartbeat (its consumer is bound by then);
        needs no edge, unlike ``wait_heartbeats``."""
        deadline = time.monotonic() + timeout
        while {hb.pid for hb in self.heartbeats.values() if hb.role == role} & pids != pids:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{role}: not all of {sorted(pids)} started")
            await asyncio.sleep(0.2)

    def in_flight(self, role: str) -> set[int]:
        """Processes of ``role`` whose latest heartbeat says they are handling a message."""
        return {hb.pid for hb in self.heartbeats.values() if hb.role == role and hb.in_flight}

    def states(self, role: str, pids: set[int]) -> dict[int, str]:
        """The latest ``state`` (active, or standby for a leased role) of each process in ``pids``."""
        return {hb.pid: hb.state for hb in self.heartbeats.values() if hb.role == role and hb.pid in pids}

    async def stop_roles(self) -> None:
        """Stop every role (SIGTERM, then SIGKILL after 12 s), keeping the cluster up."""
        await asyncio.gather(*(r.stop() for r in self.roles), return_exceptions=True)
        self.roles.clear()
        self.heartbeats.clear()

    async def user(self, tier: str = "researcher") -> ApiUser:
        api_key, key_id = keys.generate()
        cmd = commands.CreateUser(
            email=f"{key_id}@example.org", tier=tier, key_id=key_id, key_hash=keys.key_hash(api_key)
        )
        deadline = time.monotonic() + 60
        while True:  # the keeper may still be starting
            try:
                reply = await request(self.bus.nc, commands.subject("create_user"), cmd, timeout=15)
                break
            except CommandUnavailable:
                assert time.monotonic() < deadline, "the quota keeper does not answer"
                await asyncio.sleep(0.3)
        assert reply.ok, reply
        user = ApiUser(reply.data["user_id"], api_key)
        deadline = time.monotonic() + 20
        while (await self.call("GET", "/usage", user))[0] != 200:  # the edge has projected the key
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        return user

    async def call(
        self, method: str, path: str, user: ApiUser, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdrs = {"x-api-key": user.api_key, **(headers or {})}
        async with self.http.request(method, self.edge_url + path, json=body, headers=hdrs) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if raw else None

    async def upload(self, user: ApiUser, payload: bytes, name: str = "obs.fil") -> str:
        status, body = await self.call("POST", "/upload-url", user, {"filename": name, "file_size": len(payload)})
        assert status == 200, body
        async with self.http.put(body["upload_url"], data=payload) as r:
            assert r.status == 200, await r.text()
        return str(body["file_key"])

    async def events(self, cls: Any, job_ids: set[str] | None = None, timeout: float = 60) -> list[Any]:
        """Every stored ``cls`` event (of these jobs): retried while the stream elects a leader."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                out = []
                async for stored in replay(self.bus.js, cls.subject()):
                    e = decode(stored.data)
                    if isinstance(e, cls) and (job_ids is None or e.job_id in job_ids):
                        out.append((stored, e))
                return out
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def finished(self, job_ids: set[str], timeout: float) -> dict[str, str]:
        """Wait until every job has completed or failed; their final states."""
        deadline = time.monotonic() + timeout
        while True:
            done = {e.job_id: "complete" for _, e in await self.events(JobCompleted, job_ids)}
            done |= {e.job_id: "failed" for _, e in await self.events(JobFailed, job_ids) if e.job_id not in done}
            if set(done) >= job_ids:
                return done
            assert time.monotonic() < deadline, f"{len(job_ids - set(done))} of {len(job_ids)} jobs unfinished"
            await asyncio.sleep(0.5)

    async def stream_replicas(self) -> tuple[int, int]:
        """The stream's configured replicas and how many are current (leader included)."""
        info = await self.bus.js.stream_info(STREAM)
        peers = info.cluster.replicas or [] if info.cluster else []
        current = (1 if info.cluster and info.cluster.leader else 0) + sum(
            1 for p in peers if p.current and not p.offline
        )
        return int(info.config.num_replicas or 1), current

    async def close(self) -> None:
        for role in reversed(self.roles):
            await role.stop()
        with contextlib.suppress(Exception):
            await self.bus.close()
        with contextlib.suppress(Exception):
            await self.http.close()
        self.cluster.stop()


__all__ = ["ROOT", "ApiUser", "Role", "System"]
