"""The nats-server's memory and CPU under each GOGC, side by side: why the platform does not tune it.

Why: over a 30-minute fuzz run (``bench/fuzz.py``) the nats-server's RSS grew ~20 % while its live
heap grew ~1.5 MB. JetStream's file store keeps a stream's active block in memory while it is
being read or written (up to the block size: 8 MB for the event stream, 4 MB for a KV bucket, in
pooled buffers of 256 kB, 1 MB, 4 MB, 8 MB), so the live heap follows the blocks as they fill;
with Go's default GOGC=100 the heap may then reach twice the live data before a collection, and the
runtime keeps what it grew to. A lower GOGC would keep the heap nearer the live data, for more
collections, if the growth were garbage. This measures both sides on the project's own stream
and quota bucket (what did fix it is in docs/ARCHITECTURE.md, "What the nats-server keeps"):

1. a warm-up (60 events, 50 quota-record rewrites, every event read once), then the RSS settled
   for ``--settle`` s with no traffic (median of 5 readings): *before*;
2. what the rest of a 30-minute fuzz run stores: 500 events of ~600 B (the event stream's block
   past 256 kB) and 350 rewrites of an ~870 B quota record (the bucket's last block past 256 kB),
   reading an old event every tenth step, as the SSE/WebSocket replays do; then settled: *after*;
3. a burst of ``--burst`` events published as fast as the server acknowledges them: the server's
   CPU seconds, i.e. what the extra collections cost.

One server per GOGC, all at once on the same machine, the same workload. Run:
``python -m bench.bench_nats_gc [--gogc 100 50 25] [--settle 150]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats

from actors.quota_keeper.counters import Counters
from bus.server import EmbeddedServer, free_port
from bus.stream import ensure_stream

ROOT = Path(__file__).resolve().parent.parent
EVENT = b'{"kind":"ops.bench","detail":"' + b"x" * 560 + b'"}'  # ~600 B, a typical event's size
RECORD_BYTES = 870  # a quota record of a user with a few running jobs and Idempotency-Keys


def _status(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon / RssFile (kB) of a process."""
    with open(f"/proc/{pid}/status") as fh:
        return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in fh) if k in ("VmRSS", "RssAnon", "RssFile")}


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _memstats(prof_port: int) -> dict[str, int]:
    """The Go runtime's MemStats from the server's profiling port (heap in use, collections)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{prof_port}/debug/pprof/heap?debug=1", timeout=10) as r:
        text = r.read().decode()
    wanted = ("HeapAlloc", "HeapInuse", "HeapIdle", "HeapReleased", "NumGC")
    out = {}
    for line in text.splitlines():
        k, _, v = line.removeprefix("# ").partition(" = ")
        if k in wanted:
            out[k] = int(v)
    return out


class Variant:
    def __init__(self, gogc: int, root: Path) -> None:
        self.gogc = gogc
        self.prof_port = free_port()
        self.server = EmbeddedServer(root / f"gogc{gogc}", extra_config=f"prof_port: {self.prof_port}\n")

    def start(self) -> None:
        """Start the server with this GOGC: the child inherits the environment at its start."""
        saved = os.environ.get("GOGC")
        os.environ["GOGC"] = str(self.gogc)
        try:
            self.server.start()
        finally:
            if saved is None:
                os.environ.pop("GOGC", None)
            else:
                os.environ["GOGC"] = saved

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    async def settled(self, settle_s: float) -> dict[str, Any]:
        await asyncio.sleep(settle_s)
        readings = []
        for k in range(5):
            if k:
                await asyncio.sleep(2)
            readings.append(_status(self.pid))
        rss = {key: statistics.median(r[key] for r in readings) for key in readings[0]}
        return {"rss_kb": rss, "go": _memstats(self.prof_port)}

    async def run(self, settle_s: float, burst: int) -> dict[str, Any]:
        nc = await nats.connect(self.server.url)
        try:
            js = nc.jetstream()
            await ensure_stream(js)
            counters = await Counters.open(js)
            kv = counters.kv
            await kv.put("u.bench", b"{}")

            async def rewrite(n: int) -> None:
                for i in range(n):
                    entry = await kv.get("u.bench")
                    record = json.dumps({"n": i, "pad": "r" * RECORD_BYTES}).encode()[:RECORD_BYTES]
                    await kv.update("u.bench", record, last=entry.revision)

            for _ in range(60):
                await js.publish("ops.bench.event", EVENT)
            await rewrite(50)
            for seq in range(1, 61):
                await js.get_msg("EVENTS", seq)
            before = await self.settled(settle_s)

            cpu0 = _cpu_s(self.pid)
            for i in range(500):
                await js.publish("ops.bench.event", EVENT)
                if i < 350:
                    await rewrite(1)
                if i % 10 == 0:
                    await js.get_msg("EVENTS", 1 + i // 10)
                await asyncio.sleep(0.01)
            traffic_cpu = _cpu_s(self.pid) - cpu0
            stored = (await js.stream_info("EVENTS")).state.bytes
            after = await self.settled(settle_s)

            cpu0, t0 = _cpu_s(self.pid), time.perf_counter()
            pending: list[asyncio.Future[Any]] = []
            for _ in range(burst):
                pending.append(asyncio.ensure_future(js.publish("ops.bench.burst", EVENT)))
                if len(pending) >= 256:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            burst_s = time.perf_counter() - t0
            burst_cpu = _cpu_s(self.pid) - cpu0
            go_end = _memstats(self.prof_port)
        finally:
            await nc.close()
            await self.server.astop()
        growth = {k: round(after["rss_kb"][k] / v - 1.0, 3) for k, v in before["rss_kb"].items() if v}
        return {
            "gogc": self.gogc,
            "before": before,
            "after": after,
            "rss_growth": growth,
            "event_stream_bytes": stored,
            "traffic_server_cpu_s": round(traffic_cpu, 2),
            "burst_events": burst,
            "burst_s": round(burst_s, 2),
            "burst_server_cpu_s": round(burst_cpu, 2),
            "collections": go_end["NumGC"],
        }


async def main_async(gogcs: list[int], settle_s: float, burst: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-nats-gc-") as tmp:
        variants = [Variant(g, Path(tmp)) for g in gogcs]
        for v in variants:  # one at a time: each takes its GOGC from the environment
            v.start()
        return list(await asyncio.gather(*(v.run(settle_s, burst) for v in variants)))


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_nats_gc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--gogc", type=int, nargs="+", default=[100, 50, 25])
    ap.add_argument("--settle", type=float, default=150.0, help="seconds with no traffic before each RSS reading")
    ap.add_argument("--burst", type=int, default=20000)
    args = ap.parse_args()
    results = asyncio.run(main_async(args.gogc, args.settle, args.burst))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nats_gc.json").write_text(json.dumps(results, indent=2))
    print(f"{'GOGC':>5} {'RSS before':>11} {'after':>8} {'growth':>7} {'anon growth':>11} {'heap in use':>16} "
          f"{'traffic CPU':>11} {'burst':>16} {'burst CPU':>9} {'GCs':>5}")  # fmt: skip
    for r in results:
        b, a = r["before"], r["after"]
        anon = a["rss_kb"]["RssAnon"] / b["rss_kb"]["RssAnon"] - 1
        print(
            f"{r['gogc']:>5} {b['rss_kb']['VmRSS'] / 1024:>9.1f}MB {a['rss_kb']['VmRSS'] / 1024:>6.1f}MB "
            f"{r['rss_growth']['VmRSS']:>+7.1%} {anon:>+11.1%} "
            f"{b['go']['HeapInuse'] / 2**20:>6.1f}->{a['go']['HeapInuse'] / 2**20:.1f} MB "
            f"{r['traffic_server_cpu_s']:>10.2f}s {r['burst_events']:>6} in {r['burst_s']:>5.2f}s "
            f"{r['burst_server_cpu_s']:>8.2f}s {r['collections']:>5}"
        )


if __name__ == "__main__":
    main()
