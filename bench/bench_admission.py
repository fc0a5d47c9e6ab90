"""Admission throughput (issue 13). Run by hand: ``.venv/bin/python -m bench.bench_admission``.

``POST /analyze`` admissions per second through the edge, every role a separate ``run.py``
process as in production, with the quota ledger in JetStream KV (per-user compare-and-set):

* on a 3-node loopback cluster (``bus.server.LocalCluster``), stream and ``QUOTA`` bucket R3,
  with 1 keeper and with 2 keepers (one queue group);
* as the reference, on one nats-server (R1) with 1 keeper: the single-keeper shape of before
  (the SQLite ledger is gone, so the KV ledger on R1 stands in for it).

Load: ``--users`` researcher users, each admitted up to the running limit (5: no searcher runs,
so jobs stay running), ``--concurrency`` requests in flight from one client process. Every user
has several requests in flight at once, so per-user CAS conflicts are part of the figure.
Printed: admissions/s, 202s, 429s, other statuses, and the CPU each role's process used during the
burst (cores: CPU seconds / wall seconds), which says where the limit is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.searcher.synth import make_filterbank  # noqa: E402
from bus import StreamPolicy, connect_when_ready  # noqa: E402
from bus.server import EmbeddedServer  # noqa: E402
from harness.cluster import ApiUser, System  # noqa: E402

PER_USER = 5  # the running limit: every admission after it is a 429


class SingleNode:
    """One nats-server with the ``LocalCluster`` surface ``System`` uses (url, stop)."""

    def __init__(self, root: Path) -> None:
        self.node = EmbeddedServer(root / "n1")

    @property
    def url(self) -> str:
        return self.node.url

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()


class BenchSystem(System):
    replicas: int = 3

    async def start(self) -> None:
        if self.replicas == 1:
            self.cluster = SingleNode(self.root / "nats")  # type: ignore[assignment]
            self.cluster.start()
            self.bus = await connect_when_ready(self.cluster.url, StreamPolicy(replicas=1))
            import aiohttp

            self.http = aiohttp.ClientSession()
        else:
            await super().start()


async def run(replicas: int, keepers: int, users: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp:
        system = BenchSystem(Path(tmp))
        system.replicas = replicas
        await system.start()
        try:
            start = system.start_role
            await start("edge", replicas=replicas)
            for _ in range(keepers):
                await start("quota_keeper", "--kv-replicas", str(replicas), replicas=replicas)
            await system.wait_heartbeats("quota_keeper", keepers)
            payload = make_filterbank(Path(tmp) / "noise.fil", nchans=256, ntime=16).read_bytes()
            people: list[tuple[ApiUser, str]] = []
            for _ in range(users):
                user = await system.user("researcher")
                people.append((user, await system.upload(user, payload)))
            work = [p for p in people for _ in range(PER_USER + 1)]  # one 429 each, past the limit
            statuses: list[int] = []
            queue: asyncio.Queue[tuple[ApiUser, str]] = asyncio.Queue()
            for item in work:
                queue.put_nowait(item)

            async def worker() -> None:
                while not queue.empty():
                    user, key = queue.get_nowait()
                    status, _ = await system.call("POST", "/analyze", user, {"file_key": key})
                    statuses.append(status)

            procs = {f"{r.name}{i}": psutil.Process(r.proc.pid) for i, r in enumerate(system.roles)}
            nodes = system.cluster.nodes if replicas > 1 else [system.cluster.node]  # type: ignore[attr-defined]
            procs |= {f"nats{i + 1}": psutil.Process(n.proc.pid) for i, n in enumerate(nodes) if n.proc}
            procs["client"] = psutil.Process()
            cpu0 = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t0
            # where the time goes: each process's CPU share of the burst's wall time
            cpu = {name: round((sum(p.cpu_times()[:2]) - cpu0[name]) / elapsed, 2) for name, p in procs.items()}
            admitted = statuses.count(202)
            return {
                "nodes": replicas,
                "keepers": keepers,
                "requests": len(statuses),
                "admitted": admitted,
                "refused_429": statuses.count(429),
                "other": len(statuses) - admitted - statuses.count(429),
                "seconds": round(elapsed, 2),
                "admissions_per_s": round(admitted / elapsed, 1),
                "requests_per_s": round(len(statuses) / elapsed, 1),
                "expected_admitted": users * PER_USER,
                "cpu_cores_used": cpu,
            }
        finally:
            await system.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores; load before: {os.getloadavg()}")
    for _ in range(args.rounds):
        for replicas, keepers in ((1, 1), (3, 1), (3, 2)):
            result = await run(replicas, keepers, args.users, args.concurrency)
            print(result, f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
