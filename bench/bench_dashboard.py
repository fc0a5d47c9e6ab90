"""The dashboard in a real browser (issue 12). Run by hand: ``.venv/bin/python -m bench.bench_dashboard``.

A real embedded nats-server, the edge in its own process (``run.py edge``) over a projection of
``--sources`` sources (30 epochs each) and ``--candidates`` ESE candidates, and Debian's Chromium
driven by Playwright (the same launch as ``tests/browser``). Three measures:

1. **First load** (``--loads`` fresh browser contexts, so a cold cache each time): from navigation
   to the first render of the pipeline's data (HTML, CSS, JS modules, uPlot, the session check and
   the first live status), as the page itself records it (``performance.now()`` at that render);
   bytes transferred, from the Resource Timing entries (HTML + every asset + first API answers).
   Goal: ≤ 300 ms and ≤ 500 kB.
2. **Live**: ``--rate`` GroupUpdated events per second published on the bus for ``--minutes``
   while the Pipeline view is open. Every 10 s: a forced garbage collection, then Chromium's
   ``Performance.getMetrics`` (JSHeapUsedSize, Nodes, JSEventListeners) and the page's own render
   counter. Goal: renders ≥ 1 Hz, no JS heap growth (first sample after a 30 s warm-up vs the last).
3. **Scale**: the Sources table paged (next page, a sort, a filter) and the ESE candidates paged,
   each timed in the page from the click to the new rows on screen. Paging happens on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_sources import build  # noqa: E402
from bus import Bus  # noqa: E402
from bus.server import EmbeddedServer  # noqa: E402
from schemas.dsa import GroupUpdated  # noqa: E402
from settings import Settings  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATES = ("collecting", "pending", "in_progress", "completed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_candidates(db_path: Path, n: int) -> None:
    db = sqlite3.connect(db_path)
    names = [r[0] for r in db.execute("SELECT source_id FROM sources ORDER BY sid LIMIT ?", (n,))]
    rows = [
        (
            k + 1,
            name,
            150.0,
            40.0,
            f"2025-10-{1 + k % 28:02d}T{k % 24:02d}:00:00Z",
            f"2025-10-{1 + k % 28:02d}T{k % 24:02d}:30:00Z",
            5.0 + (k % 50) / 5,
            0.05,
            0.015,
            ("active", "resolved", "false_positive")[k % 3],
            None,
        )
        for k, name in enumerate(names)
    ]
    db.executemany("INSERT INTO ese_candidates VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


async def wait_up(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url + "/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("edge did not start")
            await asyncio.sleep(0.2)


FIRST_LOAD_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const by = {};
  for (const r of res) { const k = r.initiatorType; by[k] = (by[k] || 0) + r.transferSize; }
  return {first_data_ms: window.__dashboard.stats.firstData, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
          html_bytes: nav.transferSize, bytes: nav.transferSize + res.reduce((a, r) => a + r.transferSize, 0),
          requests: res.length + 1, by_type: by};
}"""

TIME_CLICK_JS = """async ([button, rows, key]) => {
  const first = () => { const r = document.querySelector(rows); return r ? r.dataset[key] : null; };
  const before = first();
  const t0 = performance.now();
  document.querySelector(button).click();
  while (first() === before) await new Promise((r) => requestAnimationFrame(r));
  return performance.now() - t0;
}"""


async def first_loads(browser: Any, url: str, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        context = await browser.new_context(viewport={"width": 1440, "height": 900})
        page = await context.new_page()
        await page.goto(url + "/#pipeline")
        await page.wait_for_function("window.__dashboard && window.__dashboard.stats.firstData > 0", timeout=30_000)
        await page.wait_for_load_state("networkidle")
        out.append(await page.evaluate(FIRST_LOAD_JS))
        await context.close()
    return out


async def publisher(bus: Bus, rate: int, stop: asyncio.Event, counter: list[int]) -> None:
    """``rate`` events per second, in 20 ms batches; 50 groups cycling through their states."""
    k = 0
    per_tick = max(1, rate // 50)
    next_t = time.monotonic()
    while not stop.is_set():
        batch = []
        for _ in range(per_tick):
            g = k % 50
            state = STATES[(k // 50) % len(STATES)]
            batch.append(bus.publish(GroupUpdated(group_id=f"bench-{g:02d}", state=state, subbands_present=16)))
            k += 1
        await asyncio.gather(*batch)
        counter[0] = k
        next_t += 0.02
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))


async def live(browser: Any, bus: Bus, url: str, rate: int, seconds: float) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await page.goto(url + "/#pipeline")
    await page.wait_for_function("window.__dashboard.stats.firstData > 0")
    cdp = await context.new_cdp_session(page)
    await cdp.send("Performance.enable")
    stop = asyncio.Event()
    counter = [0]
    pub = asyncio.create_task(publisher(bus, rate, stop, counter))
    samples = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(10.0)
            await cdp.send("HeapProfiler.collectGarbage")
            metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
            stats = await page.evaluate("({...window.__dashboard.stats})")
            samples.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "events": counter[0],
                    "renders": stats["renders"],
                    "messages": stats["messages"],
                    "heap_mb": metrics["JSHeapUsedSize"] / 1e6,
                    "nodes": int(metrics["Nodes"]),
                    "listeners": int(metrics["JSEventListeners"]),
                }
            )
            s = samples[-1]
            print(f"  t={s['t']:6.1f}s events={s['events']} renders={s['renders']} heap={s['heap_mb']:.2f} MB "
                  f"nodes={s['nodes']} listeners={s['listeners']}", flush=True)  # fmt: skip
    finally:
        stop.set()
        await pub
    await context.close()
    elapsed = samples[-1]["t"] - samples[0]["t"]
    warm = next((s for s in samples if s["t"] >= 30), samples[0])
    return {
        "samples": samples,
        "event_rate": (samples[-1]["events"] - samples[0]["events"]) / elapsed,
        "render_hz": (samples[-1]["renders"] - samples[0]["renders"]) / elapsed,
        "message_hz": (samples[-1]["messages"] - samples[0]["messages"]) / elapsed,
        "min_window_render_hz": min((b["renders"] - a["renders"]) / (b["t"] - a["t"]) for a, b in itertools.pairwise(samples)),
        "heap_warm_mb": warm["heap_mb"],
        "heap_end_mb": samples[-1]["heap_mb"],
        "heap_max_mb": max(s["heap_mb"] for s in samples),
        "nodes_warm": warm["nodes"],
        "nodes_end": samples[-1]["nodes"],
    }  # fmt: skip


async def paging(browser: Any, url: str) -> dict[str, list[float]]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    await page.goto(url + "/#sources")
    await page.wait_for_selector("#sources tbody tr[data-source]")
    await page.wait_for_selector("#candidates tbody tr[data-candidate]")
    out: dict[str, list[float]] = {"sources next page": [], "sources sort": [], "candidates next page": []}
    src = "#sources tbody tr"
    for _ in range(20):
        out["sources next page"].append(await page.evaluate(TIME_CLICK_JS, ["#src-next", src, "source"]))
    for col in ("ra_deg", "dec_deg", "nvss_flux_mjy", "n_obs", "source_id"):
        out["sources sort"].append(
            await page.evaluate(TIME_CLICK_JS, [f'#sources th[data-sort="{col}"]', src, "source"])
        )
    await page.select_option("#cand-status", "")
    await page.wait_for_function("document.querySelector('#cand-total').textContent.includes('in all')")
    for _ in range(20):
        out["candidates next page"].append(
            await page.evaluate(TIME_CLICK_JS, ["#cand-next", "#candidates tbody tr", "candidate"])
        )
    total = await page.text_content("#cand-total")
    await context.close()
    print(f"  candidates: {total}")
    return out


def summary(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.0f} ms, max {max(xs):.0f} ms (n={len(xs)})"


async def run(args: argparse.Namespace, tmp: Path, data: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    server = EmbeddedServer(tmp / "nats")
    server.start()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    edge = subprocess.Popen(
        [sys.executable, "run.py", "edge", "--nats-url", server.url, "--data-dir", str(data), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    bus = await Bus.connect(server.url, name="bench-dashboard")
    try:
        await wait_up(url)
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            print("first load:", flush=True)
            loads = await first_loads(browser, url, args.loads)
            for r in loads:
                print(
                    f"  first data {r['first_data_ms']:.0f} ms, {r['bytes'] / 1000:.1f} kB in {r['requests']} requests"
                )
            print("paging:", flush=True)
            pages = await paging(browser, url)
            for k, v in pages.items():
                print(f"  {k}: {summary(v)}")
            lv: dict[str, Any] = {}
            if args.minutes > 0:
                print(f"live: {args.rate} events/s for {args.minutes} min", flush=True)
                lv = await live(browser, bus, url, args.rate, args.minutes * 60)
            await browser.close()
    finally:
        await bus.close()
        edge.terminate()
        edge.wait(15)
        server.stop()
    return {"first_load": loads, "paging": pages, "live": lv}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=1_000)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=10.0, help="live phase length; 0 skips it")
    ap.add_argument("--json", type=Path, help="write every figure here too")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    data = tmp / "data"
    settings = Settings(data_dir=data)
    settings.projection_db.parent.mkdir(parents=True, exist_ok=True)
    build(settings.projection_db, args.sources, args.sources, 30)
    add_candidates(settings.projection_db, args.candidates)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load before: {os.getloadavg()}", flush=True)  # fmt: skip
    result = asyncio.run(run(args, tmp, data))
    loads = result["first_load"]
    lv = result["live"]
    print("\nsummary")
    fd = [r["first_data_ms"] for r in loads]
    print(f"  first load to first data: median {statistics.median(fd):.0f} ms, max {max(fd):.0f} ms (goal ≤ 300 ms)")
    print(f"  transferred: {max(r['bytes'] for r in loads) / 1000:.1f} kB (goal ≤ 500 kB); {loads[0]['by_type']}")
    if lv:
        print(f"  live: {lv['event_rate']:.0f} events/s, {lv['message_hz']:.1f} messages/s, renders {lv['render_hz']:.2f} Hz "
              f"(slowest 10 s window {lv['min_window_render_hz']:.2f} Hz; goal ≥ 1 Hz)")  # fmt: skip
        print(f"  JS heap after warm-up {lv['heap_warm_mb']:.2f} MB, at end {lv['heap_end_mb']:.2f} MB, max "
              f"{lv['heap_max_mb']:.2f} MB; DOM nodes {lv['nodes_warm']} -> {lv['nodes_end']}")  # fmt: skip
    for k, v in result["paging"].items():
        print(f"  {k}: {summary(v)}")
    print(f"  load after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
