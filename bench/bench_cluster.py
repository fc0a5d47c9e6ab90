"""Cluster scaling and failover benchmark (issue 13). Run by hand:
``.venv/bin/python -m bench.bench_cluster [--jobs 8] [--nchans-log2 18] [--searchers 1,2,4]``.

On a 3-node nats-server cluster on loopback, with the event stream at R3:

1. **Scaling**: searcher processes (``run.py actor searcher``) 1, 2 and 4 on the same fixed set of
   ``.fil`` files (``actors/searcher/synth.py``, 2^18 channels x 16 spectra, one drifting tone),
   jobs published as ``seti.job.submitted`` the way the quota keeper does after admission. Jobs
   per minute from the first submission to the last ``seti.job.completed``, as ratios to one
   searcher. The searchers are started and heard from (heartbeat) before the clock starts.
2. **Node loss**: events published back to back while the stream leader's node is killed with
   SIGKILL; the time from the kill to the first publish acknowledged after it.
3. **Searcher loss**: two searchers, one long job; SIGKILL the one working on it once it has
   reported progress; the time until a progress event for the job is stored after the kill.

Prints the figures and ``uptime``'s load average: on a shared 2-core machine they move with the
load, so quote them with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actors.searcher.synth import Tone, make_filterbank  # noqa: E402
from bus.replay import replay  # noqa: E402
from bus.stream import STREAM  # noqa: E402
from harness.cluster import System  # noqa: E402
from schemas.events import decode  # noqa: E402
from schemas.ops import AlertRaised  # noqa: E402
from schemas.seti import JobCompleted, JobFailed, JobProgressed, JobSubmitted  # noqa: E402
from settings import Settings  # noqa: E402
from storage import open_storage  # noqa: E402

USER = "bench-user"
MAX_DRIFT = 20.0


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


async def stored(system: System, cls: type, job_ids: set[str]) -> list[tuple[float, object]]:
    """(stored time, event) of every ``cls`` event of these jobs; retried while a leader is elected."""
    for _ in range(60):
        try:
            out: list[tuple[float, object]] = []
            async for m in replay(system.bus.js, cls.subject()):  # type: ignore[attr-defined]
                e = decode(m.data)
                if isinstance(e, cls) and getattr(e, "job_id", None) in job_ids:
                    out.append((m.time.timestamp(), e))
            return out
        except Exception:
            await asyncio.sleep(0.5)
    raise TimeoutError("the stream did not answer")


async def submit(system: System, keys: list[str]) -> set[str]:
    jobs = set()
    for i, key in enumerate(keys):
        job_id = f"bench-{uuid.uuid4().hex[:12]}"
        await system.bus.publish(
            JobSubmitted(
                job_id=job_id,
                user_id=USER,
                file_key=key,
                filename=f"obs{i}.fil",
                source_name="bench",
                file_size=0,
                created_at=int(time.time()),
                max_drift=MAX_DRIFT,
                correlation_id=job_id,
            )
        )
        jobs.add(job_id)
    return jobs


async def finished(system: System, jobs: set[str], timeout: float = 1800.0) -> float:
    """Wall time at which the last of ``jobs`` was stored as completed (or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        done = await stored(system, JobCompleted, jobs) + await stored(system, JobFailed, jobs)
        if {e.job_id for _, e in done} >= jobs:  # type: ignore[attr-defined]
            failed = [e for _, e in done if isinstance(e, JobFailed)]
            if failed:
                print(f"  {len(failed)} jobs failed: {failed[0].error[:200]}")  # type: ignore[attr-defined]
            return max(t for t, _ in done)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(jobs) - len({e.job_id for _, e in done})} jobs unfinished")  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)


async def scaling(system: System, keys: list[str], counts: list[int]) -> dict[int, float]:
    rates: dict[int, float] = {}
    for n in counts:
        procs = [await system.start_role("searcher") for _ in range(n)]
        await system.live("searcher", {p.proc.pid for p in procs})
        await finished(system, await submit(system, keys[:1]))  # warm: numba kernels loaded in every pool
        psutil.cpu_percent(None)
        t0 = time.time()
        jobs = await submit(system, keys)
        t1 = await finished(system, jobs)
        busy = psutil.cpu_percent(None)  # the whole machine's, other work included
        rates[n] = len(jobs) / (t1 - t0) * 60.0
        print(
            f"  {n} searcher(s): {len(jobs)} jobs in {t1 - t0:.1f} s = {rates[n]:.1f} jobs/min, "
            f"CPU {busy:.0f}% of {os.cpu_count()} cores  (load {load()})"
        )
        await system.stop_roles()
    return rates


async def node_loss(system: System) -> float:
    info = await system.bus.js.stream_info(STREAM)
    leader = info.cluster.leader if info.cluster else None
    index = next(i for i, n in enumerate(system.cluster.nodes) if n.server_name == leader)
    stop = asyncio.Event()
    acked: list[float] = []  # ack times of publishes *started* after the kill (or all, before it)
    killed = float("inf")

    async def publisher() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    system.bus.publish(
                        AlertRaised(alert_type="system_error", severity="info", message=f"bench {n}", dedup_key="b")
                    ),
                    2.0,
                )
                if started > killed or killed == float("inf"):
                    acked.append(time.monotonic())
            except Exception:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(publisher())
    while len(acked) < 20:
        await asyncio.sleep(0.05)
    killed = time.monotonic()  # read by publisher(): publishes started from now on count
    system.cluster.kill(index)
    while not any(t > killed for t in acked):
        await asyncio.sleep(0.01)
    first = min(t for t in acked if t > killed) - killed
    stop.set()
    await task
    system.cluster.start_node(index)
    return first


async def searcher_loss(system: System, key: str) -> float:
    procs = [await system.start_role("searcher") for _ in range(2)]
    await system.live("searcher", {p.proc.pid for p in procs})
    jobs = await submit(system, [key])
    while not await stored(system, JobProgressed, jobs):
        await asyncio.sleep(0.1)
    holder = None
    while holder is None:
        busy = system.in_flight("searcher")
        holder = next((p for p in procs if p.proc.pid in busy), None)
        await asyncio.sleep(0.1)
    await holder.kill()
    killed = time.time()
    while True:
        later = [t for t, _ in await stored(system, JobProgressed, jobs) if t > killed + 0.05]
        if later:
            took = min(later) - killed
            break
        await asyncio.sleep(0.2)
    await finished(system, jobs)
    await system.stop_roles()
    return took


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--nchans-log2", type=int, default=18)
    ap.add_argument("--searchers", default="1,2,4")
    ap.add_argument("--long-nchans-log2", type=int, default=21, help="the searcher-loss job's file")
    args = ap.parse_args()
    counts = [int(c) for c in args.searchers.split(",")]
    print(f"cluster benchmark: {os.cpu_count()} cores, load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        root = Path(tmp)
        system = System(root)
        await system.start()
        try:
            storage = open_storage(Settings(data_dir=system.data_dir))
            keys = []
            for i in range(args.jobs):
                path = make_filterbank(
                    root / f"obs{i}.fil", nchans=1 << args.nchans_log2, ntime=16, nbits=8, fch1=1400.0,
                    tones=[Tone(1399.95 - 0.01 * i, 1.5, 30.0)],
                )  # fmt: skip
                key = f"uploads/{USER}/obs{i}.fil"
                await storage.put_file(key, path)
                keys.append(key)
            long_path = make_filterbank(
                root / "long.fil", nchans=1 << args.long_nchans_log2, ntime=16, nbits=8, fch1=1400.0,
                tones=[Tone(1399.95, 1.5, 30.0)],
            )  # fmt: skip
            await storage.put_file(f"uploads/{USER}/long.fil", long_path)
            size = (1 << args.nchans_log2) * 16
            print(f"scaling: {args.jobs} files of 2^{args.nchans_log2} x 16 (8-bit, {size / 1e6:.1f} MB each)")
            rates = await scaling(system, keys, counts)
            base = rates[counts[0]]
            print("  ratios: " + ", ".join(f"{n}: {rates[n] / base:.2f}x" for n in counts))
            print("searcher loss (2 searchers, SIGKILL the one on the job):")
            took = await searcher_loss(system, f"uploads/{USER}/long.fil")
            print(f"  job resumed (progress stored by the survivor) {took:.1f} s after the kill  (load {load()})")
            print("node loss (SIGKILL the stream leader's node while publishing):")
            first = await node_loss(system)
            print(f"  first acknowledged write {first * 1000:.0f} ms after the kill  (load {load()})")
        finally:
            await system.close()


if __name__ == "__main__":
    asyncio.run(main())
