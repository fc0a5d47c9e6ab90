"""Quicklook rendering at the edge (issue 12). Run by hand: ``.venv/bin/python -m bench.bench_quicklook``.

On a real embedded nats-server and an in-process edge, with full-size 4800² DSA-110 images (92 MB
of float32 each):

1. ``GET /api/images/{id}/quicklook.png`` cold (rendered) and warm (from the disk cache), and the
   thumbnail cold;
2. the event loop while renders run: ``GET /health`` latency p50/p99 with no render, side by side
   with the same while the quicklooks of two images are being rendered at once. Renders run in
   worker threads, so the loop keeps answering; a render on the loop would stall it for seconds.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logs  # noqa: E402
from actors.imager.clean import Beam  # noqa: E402
from actors.imager.fitsimage import make_header, write_fits  # noqa: E402
from bus import Bus  # noqa: E402
from bus.server import EmbeddedServer  # noqa: E402
from schemas.dsa import ImageReady  # noqa: E402
from settings import Settings  # noqa: E402
from web.app import Edge  # noqa: E402

N = 4800


def write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 1e-3, (N, N)).astype(np.float32)
    for _ in range(200):
        y, x = rng.integers(0, N, 2)
        img[y, x] += rng.uniform(0.005, 0.5)
    beam = Beam(np.deg2rad(20 / 3600), np.deg2rad(12 / 3600), np.deg2rad(30.0))
    hdr = make_header(
        N, np.deg2rad(3 / 3600), (np.deg2rad(150.0), np.deg2rad(37.0)), 1.4e9, 1.87e8, 60000.5, beam, 1e-3
    )
    write_fits(path, img, hdr)


async def timed_get(s: aiohttp.ClientSession, url: str) -> float:
    t0 = time.perf_counter()
    async with s.get(url) as r:
        await r.read()
        assert r.status == 200, (url, r.status)
    return time.perf_counter() - t0


async def health_latencies(s: aiohttp.ClientSession, base: str, seconds: float) -> list[float]:
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        out.append(await timed_get(s, base + "/health"))
        await asyncio.sleep(0.01)
    return out


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1e3


async def main() -> dict[str, Any]:
    logs.configure("warning")
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "nats")
        server.start()
        settings = Settings(data_dir=Path(tmp) / "data", nats_url=server.url, port=0)
        bus = await Bus.connect(server.url, name="bench")
        edge_bus = await Bus.connect(server.url, name="bench-edge")
        edge = Edge(settings, edge_bus)
        base = await edge.start(host="127.0.0.1", port=0)
        paths = [settings.image_dir / f"g{i}.fits" for i in range(2)]
        for i, p in enumerate(paths):
            await asyncio.to_thread(write_image, p, i)
            await bus.publish(
                ImageReady(
                    path=str(p), group_id=f"g{i}", mjd=60000.5 + i, noise_jy=1e-3, bmaj_deg=20 / 3600,
                    bmin_deg=12 / 3600, bpa_deg=30.0, n_sources_5sigma=200,
                )
            )  # fmt: skip
        res: dict[str, Any] = {}
        async with aiohttp.ClientSession() as s:
            while True:
                async with s.get(base + "/api/images") as r:
                    body = await r.json()
                if body["total"] == 2:
                    break
                await asyncio.sleep(0.1)
            ids = [i["id"] for i in body["images"]]
            idle = await health_latencies(s, base, 3.0)
            renders = asyncio.gather(*(timed_get(s, f"{base}/api/images/{i}/quicklook.png") for i in ids))
            busy_task = asyncio.create_task(health_latencies(s, base, 3.0))
            cold = await renders
            busy = await busy_task
            warm = [await timed_get(s, f"{base}/api/images/{ids[0]}/quicklook.png") for _ in range(20)]
            thumb = await timed_get(s, f"{base}/api/images/{ids[0]}/thumbnail.png")
            res = {
                "quicklook_cold_s (2 at once)": [round(c, 2) for c in cold],
                "quicklook_warm_ms_p50": round(statistics.median(warm) * 1e3, 2),
                "thumbnail_cold_s": round(thumb, 2),
                "health_idle_ms p50/p99": (round(pct(idle, 0.5), 2), round(pct(idle, 0.99), 2)),
                "health_during_renders_ms p50/p99": (round(pct(busy, 0.5), 2), round(pct(busy, 0.99), 2)),
                "health_during_renders_max_ms": round(max(busy) * 1e3, 1),
            }
        await edge.stop()
        await edge_bus.close()
        await bus.close()
        server.stop()
    return res


if __name__ == "__main__":
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()}")
    for k, v in asyncio.run(main()).items():
        print(f"{k}: {v}")
