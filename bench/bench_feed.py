"""Event-feed benchmark (issue 16). Run by hand: ``.venv/bin/python -m bench.bench_feed``.

In one run, on a real embedded nats-server, with the edge in its own process (``run.py edge``):

1. event -> first byte at an SSE subscriber of ``GET /api/events?subject=dsa.>``, p50/p99, with
   200 feed clients (in 2 processes of their own) while events are published at 500 per second;
   and whether every client got every event once, in order;
2. resume after a disconnect of 10,000 events: a client that read up to sequence S reconnects
   with ``Last-Event-ID: S`` after 10,000 more were stored; the time until it has them all, and
   whether they are exactly S+1 .. S+10,000 (no gap, no duplicate);
3. the edge process's CPU at 500 events/s with 0 feed clients and with 200 (same run, same rate).

Goal: p99 <= 50 ms. CLOCK_MONOTONIC is system-wide on Linux, so times compare across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logs  # noqa: E402
from bus import Bus  # noqa: E402
from bus.server import EmbeddedServer, free_port  # noqa: E402
from schemas.dsa import ImageReady  # noqa: E402


def image(k: int) -> ImageReady:
    return ImageReady(
        path=f"/data/images/bench_{k}.fits", group_id=f"g{k}", mjd=60000.0 + k / 1e4, noise_jy=1e-3,
        bmaj_deg=0.01, bmin_deg=0.01, bpa_deg=0.0, n_sources_5sigma=12,
    )


ACKED: dict[int, float] = {}


async def publish_at(bus: Bus, rate: int, seconds: float, published: dict[int, float] | None = None) -> float:
    """Publish ``rate`` events a second for ``seconds``; returns the achieved rate."""
    interval, n = 1.0 / rate, int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def pub(k: int) -> None:
        t = time.monotonic()
        ack = await bus.publish(image(k))
        if published is not None:
            published[ack.seq] = t
            ACKED[ack.seq] = time.monotonic()

    start = time.monotonic()
    for k in range(n):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(pub(k))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return n / (time.monotonic() - start)


async def edge_cpu(proc: psutil.Process, work: Any) -> tuple[float, Any]:
    """The edge's CPU (% of one core) while ``work`` runs."""
    before, t0 = proc.cpu_times(), time.monotonic()
    result = await work
    after, t1 = proc.cpu_times(), time.monotonic()
    return 100 * ((after.user - before.user) + (after.system - before.system)) / (t1 - t0), result


async def feed_latency(bus: Bus, edge_url: str, tmp: Path, proc: psutil.Process, clients: int = 200,
                       rate: int = 500, seconds: float = 10.0, procs: int = 2) -> dict[str, Any]:
    published: dict[int, float] = {}
    outs = [tmp / f"feed{i}.json" for i in range(procs)]
    readers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "feed_clients.py"), edge_url + "/api/events?subject=dsa.>",
            str(clients // procs), str(seconds + 6), str(out), stdout=asyncio.subprocess.PIPE)
        for out in outs
    ]
    for reader in readers:
        assert reader.stdout is not None
        await reader.stdout.readline()  # "ready"
    await asyncio.sleep(1.0)
    client_procs = [psutil.Process(r.pid) for r in readers]
    client_before = [c.cpu_times() for c in client_procs]
    t0 = time.monotonic()
    cpu, achieved = await edge_cpu(proc, publish_at(bus, rate, seconds, published))
    wall = time.monotonic() - t0
    client_cpu = [
        100 * (a.user + a.system - b.user - b.system) / wall
        for a, b in zip((c.cpu_times() for c in client_procs), client_before, strict=True)
    ]
    for reader in readers:
        await reader.wait()
    streams = [s for out in outs for s in json.loads(out.read_text())]
    seqs = sorted(published)
    latencies = sorted(at - published[seq] for s in streams for seq, at in s if seq in published)
    if os.environ.get("BENCH_FEED_DEBUG"):
        t_start = min(published.values())
        for sec in range(int(seconds) + 1):
            lat = sorted(at - published[seq] for st in streams for seq, at in st
                         if seq in published and sec <= published[seq] - t_start < sec + 1)
            if lat:
                acks = sorted(ACKED[q] - published[q] for q in published if sec <= published[q] - t_start < sec + 1)
                print(f"second {sec}: publish->ack p50 {1000 * acks[len(acks) // 2]:.0f} ms; p50 {1000 * lat[len(lat) // 2]:.0f} ms, p99 {1000 * lat[int(len(lat) * .99)]:.0f} ms")
    acks = sorted(ACKED[q] - published[q] for q in published)
    exact = sum(1 for s in streams if [seq for seq, _ in s if seq in published] == seqs)
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "clients": len(streams),
        "exact_clients": exact,
        "rate": achieved,
        "cpu": cpu,
        "client_cpu": client_cpu,
        "ack_p50_ms": 1000 * acks[len(acks) // 2],
    }


async def resume(bus: Bus, edge_url: str, gap: int = 10000) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.get(edge_url + "/api/events", params={"subject": "dsa.>"}) as r:
            await asyncio.sleep(0.5)
            first = (await bus.publish(image(-1))).seq
            async for line in r.content:
                if line.startswith(b"id: "):
                    last_id = int(line[4:])
                    break
        assert last_id == first
        stored = [(await bus.publish(image(k))).seq for k in range(gap)]  # while disconnected
        got: list[int] = []
        t0 = time.monotonic()
        async with s.get(edge_url + "/api/events", params={"subject": "dsa.>"},
                         headers={"Last-Event-ID": str(last_id)}) as r:
            async for line in r.content:
                if line.startswith(b"id: "):
                    got.append(int(line[4:]))
                    if len(got) == gap:
                        break
        elapsed = time.monotonic() - t0
    return {"seconds": elapsed, "events": len(got), "exact": got == stored, "rate": len(got) / elapsed}


async def wait_url(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(300):
            try:
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def main() -> None:
    logs.configure("warning", json=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    server = EmbeddedServer(tmp / "nats")
    server.start()
    bus = await Bus.connect(server.url, name="bench")
    edge_port = free_port()
    env = dict(os.environ, OBS_LOG_LEVEL="warning")
    edge = subprocess.Popen([sys.executable, "run.py", "edge", "--nats-url", server.url, "--data-dir",
                             str(tmp / "edge"), "--port", str(edge_port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    edge_url = f"http://127.0.0.1:{edge_port}"
    results: dict[str, Any] = {}
    try:
        await wait_url(edge_url + "/health")
        proc = psutil.Process(edge.pid)
        load_before = os.getloadavg()
        clients = int(os.environ.get("BENCH_FEED_CLIENTS", "200"))
        results["cpu0"], results["rate0"] = await edge_cpu(proc, publish_at(bus, 500, 10.0))
        results["feed"] = await feed_latency(bus, edge_url, tmp, proc, clients=clients)
        if not os.environ.get("BENCH_FEED_SKIP_RESUME"):
            results["resume"] = await resume(bus, edge_url)
        if not os.environ.get("BENCH_FEED_SKIP_REFERENCE"):
            # the reference, same edge, same load: the dashboard's live view (/api/ws/status, issue 2)
            from bench.bench_core import ws_latency

            results["ws"] = await ws_latency(bus, edge_url, tmp, clients=clients)
        load_after = os.getloadavg()
    finally:
        edge.terminate()
        edge.wait(15)
        await bus.close()
        server.stop()

    feed = results["feed"]
    res = results.get("resume", {"seconds": 0.0, "rate": 0.0, "exact": False})
    mem = psutil.virtual_memory().total / 2**30
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, "
          f"Python {platform.python_version()}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (shared machine)\n")
    print("| measure | result | goal |")
    print("|---|---|---|")
    print(f"| event -> first byte, {feed['clients']} SSE feed clients at {feed['rate']:.0f} events/s | "
          f"p50 {feed['p50_ms']:.1f} ms, p99 {feed['p99_ms']:.1f} ms (max {feed['max_ms']:.0f} ms); "
          f"{feed['exact_clients']}/{feed['clients']} clients got every event once, in order; the clients' "
          f"{len(feed['client_cpu'])} processes used {', '.join(f'{c:.0f}' for c in feed['client_cpu'])} % of a core "
          "| p99 <= 50 ms |")
    ws = results.get("ws")
    if ws:
        print(f"| reference: event -> /api/ws/status message, {ws['clients']} clients at {ws['rate']:.0f} events/s "
              f"(same run) | p50 {ws['p50_ms']:.1f} ms, p99 {ws['p99_ms']:.1f} ms (max {ws['max_ms']:.0f} ms) | |")
    print(f"| publish -> stored (ack), p50 | {feed['ack_p50_ms']:.1f} ms | |")
    print(f"| resume after 10,000 events missed | {res['seconds']:.2f} s to catch up ({res['rate']:,.0f} events/s); "
          f"{'exactly the missed sequences, no gap, no duplicate' if res['exact'] else 'NOT EXACT'} | |")
    print(f"| edge CPU at {results['rate0']:.0f} events/s, 0 feed clients | {results['cpu0']:.0f} % of one core | |")
    print(f"| edge CPU at {feed['rate']:.0f} events/s, {feed['clients']} feed clients | {feed['cpu']:.0f} % of one "
          "core | |")


if __name__ == "__main__":
    asyncio.run(main())
