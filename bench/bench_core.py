"""Platform-core benchmark (issue 2). Run by hand: ``.venv/bin/python -m bench.bench_core``.

Measures, in one run, on a real embedded nats-server:

1. events per second through publish -> actor -> ack (a counting actor, 32 handlers at once);
2. event-to-WebSocket latency, p50 and p99, with 200 connected clients while events are published
   at 500 per second. The edge runs in its own process (``run.py edge``); the latency of event s is
   the time from its publish to the first message a client receives whose cursor has reached s;
3. ``GET /api/status`` requests per second from the edge, against a bare aiohttp handler returning
   the same bytes, both in their own process and driven by the same keep-alive load generator.

Goals: p99 <= 50 ms, and the status endpoint at >= 70 % of the bare handler's rate.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logs  # noqa: E402
from actors.runtime import Actor  # noqa: E402
from bus import Bus  # noqa: E402
from bus.server import EmbeddedServer, free_port  # noqa: E402
from schemas.base import Event  # noqa: E402
from schemas.dsa import GroupUpdated  # noqa: E402
from settings import Settings  # noqa: E402

CURSOR = re.compile(rb'"cursor":\{"seq":(\d+)')


class Counter(Actor):
    role = "bench_counter"
    consumes: ClassVar = (GroupUpdated,)
    concurrency = 32
    deliver_new = True
    seen = 0

    async def handle(self, event: Event) -> None:
        Counter.seen += 1


async def throughput(bus: Bus, settings: Settings, n: int = 10000) -> float:
    actor = Counter(bus, settings)
    await actor.start()
    events = [GroupUpdated(group_id=f"t{i}", state="collecting", subbands_present=1) for i in range(n)]
    start = time.perf_counter()
    sem = asyncio.Semaphore(256)

    async def pub(e: GroupUpdated) -> None:
        async with sem:
            await bus.publish(e)

    await asyncio.gather(*(pub(e) for e in events))
    while Counter.seen < n:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    await actor.stop()
    return n / elapsed


async def ws_latency(bus: Bus, edge_url: str, tmp: Path, clients: int = 200, rate: int = 500,
                     seconds: float = 10.0, procs: int = 2) -> dict[str, float]:
    """Clients live in ``procs`` separate processes so that reading 200 sockets does not slow the
    publisher's clock; CLOCK_MONOTONIC is system-wide on Linux, so times compare across processes."""
    published: dict[int, float] = {}
    outs = [tmp / f"ws{i}.json" for i in range(procs)]
    per = clients // procs
    readers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "ws_clients.py"), edge_url + "/api/ws/status", str(per),
            str(seconds + 6), str(out), stdout=asyncio.subprocess.PIPE)
        for out in outs
    ]
    for proc in readers:
        assert proc.stdout is not None
        await proc.stdout.readline()  # "ready"
    await asyncio.sleep(2.0)  # snapshots delivered
    interval = 1.0 / rate
    n = int(rate * seconds)
    pending: set[asyncio.Task[None]] = set()

    async def pub(k: int) -> None:
        t = time.monotonic()
        ack = await bus.publish(GroupUpdated(group_id=f"w{k % 400}", state="pending", subbands_present=16))
        published[ack.seq] = t

    start = time.monotonic()
    for k in range(n):
        delay = start + k * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(pub(k))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    achieved = n / (time.monotonic() - start)
    for proc in readers:
        await proc.wait()

    import json

    received = [stream for out in outs for stream in json.loads(out.read_text())]
    latencies: list[float] = []
    seqs = sorted(published)
    messages = 0
    for stream in received:
        j = 0
        for cursor, at in stream:
            if at < start:
                continue
            messages += 1
            while j < len(seqs) and seqs[j] <= cursor:
                latencies.append(at - published[seqs[j]])
                j += 1
    latencies.sort()
    return {
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "delivered": len(latencies) / (len(seqs) * len(received)),
        "rate": achieved,
        "msgs_per_client_s": messages / len(received) / seconds,
        "clients": len(received),
    }


LOADGEN = r'''
import asyncio, sys, time, aiohttp
async def main(url, seconds, conns):
    count = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as s:
        async def worker():
            nonlocal count
            while time.monotonic() < stop:
                async with s.get(url) as r:
                    await r.read()
                    count += r.status == 200
        await asyncio.gather(*(worker() for _ in range(conns)))
    print(count / seconds)
asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
'''

BARE = r'''
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def h(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/api/status", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''


def requests_per_second(url: str, seconds: float = 6.0, conns: int = 32) -> float:
    out = subprocess.run([sys.executable, "-c", LOADGEN, url, str(seconds), str(conns)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip())


async def wait_url(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
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
    tmp = Path(tempfile.mkdtemp(prefix="bench-core-"))
    server = EmbeddedServer(tmp / "nats")
    server.start()
    settings = Settings(data_dir=tmp / "data", nats_url=server.url, port=0)
    bus = await Bus.connect(server.url, name="bench")
    results: dict[str, Any] = {}
    try:
        results["events_per_s"] = await throughput(bus, settings)

        edge_port = free_port()
        env = dict(os.environ, OBS_LOG_LEVEL="warning")
        edge = subprocess.Popen([sys.executable, "run.py", "edge", "--nats-url", server.url, "--data-dir",
                                 str(tmp / "edge"), "--port", str(edge_port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        edge_url = f"http://127.0.0.1:{edge_port}"
        await wait_url(edge_url + "/health")
        results["ws"] = await ws_latency(bus, edge_url, tmp)

        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as s, s.get(edge_url + "/api/status") as r:
            body = await r.read()
        body_file = tmp / "status.json"
        body_file.write_bytes(body)
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE, str(bare_port), str(body_file)])
        await wait_url(f"http://127.0.0.1:{bare_port}/api/status")
        results["status_rps"] = await asyncio.to_thread(requests_per_second, edge_url + "/api/status")
        results["bare_rps"] = await asyncio.to_thread(requests_per_second, f"http://127.0.0.1:{bare_port}/api/status")
        results["status_bytes"] = len(body)
        bare.terminate()
        edge.terminate()
        edge.wait(15)
        bare.wait(5)
    finally:
        await bus.close()
        server.stop()

    ws = results["ws"]
    ratio = results["status_rps"] / results["bare_rps"]
    mem = psutil.virtual_memory().total / 2**30
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, "
          f"Python {platform.python_version()}\n")
    print("| measure | result | goal |")
    print("|---|---|---|")
    print(f"| publish -> actor -> ack | {results['events_per_s']:,.0f} events/s | |")
    print(f"| event -> WebSocket, {ws['clients']} clients at {ws['rate']:.0f} events/s | p50 {ws['p50_ms']:.1f} ms, "
          f"p99 {ws['p99_ms']:.1f} ms (max {ws['max_ms']:.0f} ms; {ws['delivered']:.1%} of events seen by every "
          f"client; {ws['msgs_per_client_s']:.0f} msgs/s per client) | p99 <= 50 ms |")
    print(f"| GET /api/status ({results['status_bytes']} B) | {results['status_rps']:,.0f} req/s | |")
    print(f"| bare aiohttp handler, same bytes | {results['bare_rps']:,.0f} req/s | |")
    print(f"| status / bare | {ratio:.0%} | >= 70 % |")


if __name__ == "__main__":
    asyncio.run(main())
