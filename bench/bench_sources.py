"""Source search over a large projection (issue 7). Run by hand: ``.venv/bin/python -m bench.bench_sources``.

1. Builds the edge's projection (the real DDL of ``web/projections/science.py``) with
   ``--sources`` sources (default 1,000,000) and ``--epochs`` epochs (default 100) for the first
   ``--timeseries-sources`` of them (default: all), written directly with ``executemany`` (the
   indexes are dropped during the load and rebuilt after, as a bulk load should).
2. Starts a real edge on it (with an embedded nats-server) and times ``POST /api/sources/search``
   over HTTP for representative queries (sequential requests on one keep-alive connection, after
   a warm-up), and ``GET /api/sources/{id}`` (a 100-epoch light curve). Prints p50/p99 per query,
   and the edge's start time and the size of its in-memory source index (loaded at start).

Goal: the search answers in ≤ 100 ms over 1 M sources with 100 epochs each.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import logs  # noqa: E402
from bus import Bus  # noqa: E402
from bus.server import EmbeddedServer  # noqa: E402
from settings import Settings  # noqa: E402
from web.projections.source_index import index_for  # noqa: E402
from web.projections.store import ProjectionStore  # noqa: E402

QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("no filter, sort sigma_deviation desc", {}),
    ("variability_min 3", {"filters": {"variability_min": 3.0}}),
    ("dec 40-45 + flux >= 10 mJy", {"filters": {"dec_min": 40.0, "dec_max": 45.0, "flux_min_mjy": 10.0}}),
    (
        "seed example (name prefix + all filters)",
        {
            "query": "NVSS J12",
            "filters": {"variability_min": 3.0, "dec_min": 40.0, "dec_max": 45.0, "flux_min_mjy": 10.0},
            "sort": {"field": "sigma_deviation", "order": "desc"},
            "limit": 100,
        },
    ),
    ("name prefix 'NVSS J1234'", {"query": "NVSS J1234", "sort": {"field": "source_id", "order": "asc"}}),
    ("sort chi2_nu desc", {"sort": {"field": "chi2_nu", "order": "desc"}}),
    (
        "dec 20-60, sort nvss_flux desc, offset 1000",
        {"filters": {"dec_min": 20.0, "dec_max": 60.0}, "sort": {"field": "nvss_flux_mjy"}, "offset": 1000},
    ),
    ("variability_min 0.5 + dec >= 0 (broad)", {"filters": {"variability_min": 0.5, "dec_min": 0.0}}),
    ("name prefix 'nvss j' (all), sort source_id desc", {"query": "nvss j", "sort": {"field": "source_id"}}),
    ("sort n_obs desc (all tied), offset 5000", {"sort": {"field": "n_obs"}, "offset": 5000}),
    (
        "dec >= -30 (all), sort ra asc, offset 100k, limit 1000",
        {"filters": {"dec_min": -30.0}, "sort": {"field": "ra_deg", "order": "asc"}, "offset": 100_000, "limit": 1000},
    ),
]


def names_for(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """NVSS-style names, made unique with a suffix where two positions round to one name."""
    out, seen = [], set()
    for r, d in zip(ra.tolist(), dec.tolist(), strict=True):
        h = r / 15.0
        hh, mm = int(h), int((h - int(h)) * 60)
        ss = math.floor(((h - hh) * 60 - mm) * 600) / 10
        sign = "+" if d >= 0 else "-"
        a = abs(d)
        dd, dm = int(a), int((a - int(a)) * 60)
        ds = min(59, int(((a - dd) * 60 - dm) * 60))
        name = f"NVSS J{hh:02d}{mm:02d}{min(ss, 59.9):04.1f}{sign}{dd:02d}{dm:02d}{ds:02d}"
        while name in seen:
            name += "b"
        seen.add(name)
        out.append(name)
    return out


def build(path: Path, n_sources: int, n_ts_sources: int, epochs: int, seed: int = 7) -> dict[str, float]:
    t0 = time.perf_counter()
    store = ProjectionStore(path)
    asyncio.run(_open_close(store))
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='sources' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        db.execute(f"DROP INDEX {name}")
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n_sources)
    dec = np.degrees(np.arcsin(rng.uniform(math.sin(math.radians(-30)), 1.0, n_sources)))
    nvss = 5.0 * (1 - rng.uniform(size=n_sources)) ** (-1 / 1.1)  # mJy, power law above 5 mJy
    mean = nvss * rng.normal(1.0, 0.05, n_sources)
    std = np.abs(mean * 0.05 * rng.normal(1.0, 0.2, n_sources))
    chi2 = rng.chisquare(epochs - 1, n_sources) / (epochs - 1)
    sig = np.abs(rng.normal(0, 1.3, n_sources))
    var = rng.uniform(size=n_sources) < 0.005
    sig[var] = rng.uniform(5, 20, var.sum())
    chi2[var] *= rng.uniform(3, 30, var.sum())
    names = names_for(ra, dec)
    last_mjd = 60238.5 + epochs
    last_at = "2025-10-24T14:30:00Z"
    db.executemany(
        "INSERT INTO sources VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            (
                k + 1,
                names[k],
                float(ra[k]),
                float(dec[k]),
                float(nvss[k]),
                -0.7,
                epochs,
                float(mean[k]),
                float(std[k]),
                float(chi2[k]),
                float(chi2[k]),
                float(std[k] / mean[k]),
                float(sig[k]),
                last_mjd,
                last_at,
            )
            for k in range(n_sources)
        ),
    )
    db.commit()
    t_sources = time.perf_counter() - t0
    db.executemany(
        "INSERT INTO timeseries_images VALUES (?, ?)",
        ((e + 1, f"/stage/dsa110-contimg/images/2025-10-24T{e:05d}.fits") for e in range(epochs)),
    )
    mjds = [60238.5 + e for e in range(epochs)]

    def rows() -> Any:
        for sid in range(1, n_ts_sources + 1):
            m = float(mean[sid - 1]) * 1e-3
            noise = rng.normal(0.0, m * 0.05 + 1e-4, epochs).tolist()
            for e in range(epochs):
                f = m + noise[e]
                yield (sid, mjds[e], f, m * 0.05 + 1e-4, f / (m * 0.05 + 1e-4), e + 1)

    t1 = time.perf_counter()
    db.executemany("INSERT INTO source_timeseries VALUES (?,?,?,?,?,?)", rows())
    db.commit()
    t_ts = time.perf_counter() - t1
    t2 = time.perf_counter()
    for _, sql in indexes:
        db.execute(sql)
    db.execute("ANALYZE")
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return {"sources_s": t_sources, "timeseries_s": t_ts, "indexes_s": time.perf_counter() - t2}


async def _open_close(store: ProjectionStore) -> None:
    await store.open()
    await store.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def measure(path: Path, repeat: int, n_ts_sources: int) -> list[tuple[str, float, float, int]]:
    from web.app import Edge

    server = EmbeddedServer(path.parent.parent / "nats")
    server.start()
    settings = Settings(data_dir=path.parent.parent, nats_url=server.url, port=0, edge_name=path.stem)
    bus = await Bus.connect(server.url, name="bench")
    edge = Edge(settings, bus)
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    await edge.start(host="127.0.0.1", port=0)
    ix = index_for(edge.store)
    print(
        f"edge start {time.perf_counter() - t0:.1f} s, of which loading the source index {ix.load_seconds:.1f} s "
        f"({ix.n:,} sources, {ix.memory_bytes() / 1e6:.0f} MB of arrays; process RSS +{_rss_mb() - rss0:.0f} MB)"
    )
    out = []
    try:
        async with aiohttp.ClientSession() as session:
            for label, body in QUERIES:
                times: list[float] = []
                total = 0
                for i in range(repeat + 3):
                    t = time.perf_counter()
                    async with session.post(edge.url + "/api/sources/search", json=body) as r:
                        data = await r.json()
                        assert r.status == 200, data
                    if i >= 3:
                        times.append((time.perf_counter() - t) * 1000)
                    total = data["total"]
                out.append((label, statistics.median(times), pct(times, 99), total))
            rows = await edge.store.fetchall(
                "SELECT source_id FROM sources WHERE sid <= ? ORDER BY sid", [n_ts_sources]
            )
            ids = [r[0] for r in rows[:: max(1, len(rows) // 50)]]
            times = []
            for i in range(repeat + 3):
                sid = ids[i % len(ids)]
                t = time.perf_counter()
                async with session.get(edge.url + "/api/sources/" + quote(sid)) as r:
                    data = await r.json()
                    assert r.status == 200, data
                if i >= 3:
                    times.append((time.perf_counter() - t) * 1000)
            out.append(
                (
                    f"GET /api/sources/{{id}} ({len(data['timeseries'])} epochs)",
                    statistics.median(times),
                    pct(times, 99),
                    1,
                )
            )
    finally:
        await edge.stop()
        await bus.close()
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--timeseries-sources", type=int, default=None, help="sources with a light curve (default all)")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--dir", type=Path, default=None, help="keep the database here (default: a temporary dir)")
    ap.add_argument("--reuse", action="store_true", help="reuse an existing database in --dir")
    args = ap.parse_args()
    logs.configure("warning", json=True)
    n_ts = args.sources if args.timeseries_sources is None else min(args.timeseries_sources, args.sources)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base = args.dir if args.dir and args.reuse else Path(tmp)
        path = base / "edge" / "bench.sqlite"
        print(f"uptime: {os.popen('uptime').read().strip()}")
        if not (args.reuse and path.exists()):
            t = build(path, args.sources, n_ts, args.epochs)
            size = sum(p.stat().st_size for p in path.parent.glob("bench.sqlite*")) / 1e9
            print(
                f"built {args.sources:,} sources ({t['sources_s']:.0f} s), {n_ts * args.epochs:,} epochs "
                f"({t['timeseries_s']:.0f} s), indexes {t['indexes_s']:.0f} s; file {size:.1f} GB"
            )
        results = asyncio.run(measure(path, args.repeat, n_ts))
        print(f"{'query':<56} {'p50 ms':>8} {'p99 ms':>8} {'total':>10}")
        for label, p50, p99, total in results:
            print(f"{label:<56} {p50:8.1f} {p99:8.1f} {total:10,}")
        print(f"uptime: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
