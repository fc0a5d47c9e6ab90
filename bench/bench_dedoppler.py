"""Benchmark: our de-Doppler searcher against turboSETI 2.3.2 on the same files, in the same run.

Run by hand:  .venv/bin/python bench/bench_dedoppler.py [--sizes 20,24] [--repeat 5] [--ts-repeat 2]
              [--skip-turboseti-large] [--whole]

``--whole`` times the whole command lines instead (see :func:`whole_process`): ``run.py search`` with
turboSETI's flags against turboSETI's own ``turboSETI`` command, on the same files.

* Files (SIGPROC .fil, float32, Breakthrough Listen high-resolution header: Δf = −2.79 Hz,
  t_samp = 18.25 s, 16 steps) with Gaussian noise and drifting tones at SNR 20–60 and drifts within
  ±3.7 Hz/s (turboSETI's blocks stop short of 4 Hz/s), written to bench/out/dedoppler/ once and reused.
  ±4 Hz/s at this resolution (0.0102 Hz/s) is drift index ±392: 27 tree blocks per sign.
* turboSETI runs in its own venv, bench/.venv-turboseti, created here on first use with
  ``pip install turbo_seti==2.3.2 'numpy<2' 'astropy<7' 'pandas<2.3' 'scipy<1.15'``.
* Each search runs in a fresh subprocess, with the file read once just before (page cache warm for
  both tools: a 1 GB file evicted by other work would otherwise time the disk).  Timing, the same method for both tools: *search* = wall
  time of the search of the file alone inside the child (``search_file`` for us, ``FindDoppler(...) +
  .search()`` for turboSETI, which includes its .fil → .h5 conversion; imports excluded, file reading
  included), after a warm-up search of a small file in the same process, so that neither tool's numba
  code generation is counted (ours loads from numba's on-disk cache; turboSETI's kernels are JIT-
  compiled on first use).  The warm-up is reported separately.  *process* = wall time of the whole
  child, imports and warm-up included.  The 2^20 file is searched ``--repeat`` times (turboSETI
  ``--ts-repeat`` times), each in a fresh process, and the best and the median are reported: other work
  shares the two cores, so the load average is printed before and after.  Speed-up = turboSETI search
  / ours, best against best and median against median.
* Peak memory: the child's own ``ru_maxrss``.
* Agreement: each of turboSETI's top-10 hits (by SNR) is matched to one of ours within 2 channels and
  one drift bin.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.searcher.synth import Tone, make_filterbank  # noqa: E402

OUT = ROOT / "bench" / "out" / "dedoppler"
TS_VENV = ROOT / "bench" / ".venv-turboseti"
TS_PY = TS_VENV / "bin" / "python"
FCH1 = 1500.0
FOFF = -2.7939677238464355e-06
TSAMP = 18.253611008
DRIFTS = [-3.7, -2.2, -0.9, -0.31, -0.05, 0.05, 0.31, 0.9, 2.2, 3.7]


def ensure_turboseti() -> None:
    if TS_PY.exists():
        r = subprocess.run([str(TS_PY), "-c", "import turbo_seti"], capture_output=True)
        if r.returncode == 0:
            return
    print("creating", TS_VENV, "(turbo_seti 2.3.2)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(TS_VENV)], check=True)
    subprocess.run(
        [
            str(TS_PY),
            "-m",
            "pip",
            "install",
            "-q",
            "turbo_seti==2.3.2",
            "numpy<2",
            "astropy<7",
            "pandas<2.3",
            "scipy<1.15",
        ],
        check=True,
    )


def make_file(log2n: int) -> Path:
    nchans = 1 << log2n
    path = OUT / f"synth_2e{log2n}x16.fil"
    if path.exists() and path.stat().st_size > nchans * 16 * 4:
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    ncoarse = max(1, nchans >> 20)
    tones = []
    for k in range(ncoarse):
        for j, d in enumerate(DRIFTS):
            chan = (k << 20) + 40_000 + j * 100_000
            tones.append(Tone(FCH1 + FOFF * chan, d, 20 + 4 * j))
    t = time.perf_counter()
    make_filterbank(
        path,
        nchans=nchans,
        ntime=16,
        fch1=FCH1,
        foff=FOFF,
        tsamp=TSAMP,
        tones=tones,
        seed=log2n,
        source_name=f"synth_2e{log2n}",
        dc_spike=30.0,
    )
    print(f"wrote {path.name} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def cache_file(path: Path) -> None:
    """Read the file once so that the timed run finds it in the page cache (both tools alike)."""
    with path.open("rb", buffering=0) as fh:
        while fh.read(16 << 20):
            pass


def run(cmd: list[str], path: Path | None = None) -> tuple[dict, float]:
    if path is not None:
        cache_file(path)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{cmd[:2]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1]), wall


def agree(ours: list[dict], theirs: list[dict], res: float, top: int = 10) -> str:
    df = abs(FOFF)
    t_top = sorted(theirs, key=lambda h: -h["snr"])[:top]
    n = sum(
        any(
            abs(o["frequency_mhz"] - t["frequency_mhz"]) <= 2 * df + 1e-9
            and abs(o["drift_rate"] - t["drift_rate"]) <= res * 1.0001
            for o in ours
        )
        for t in t_top
    )
    return f"{n}/{len(t_top)}"


def load() -> str:
    """The 1, 5 and 15 minute load averages (2 cores: 2.0 means both busy)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def timed(cmd: list[str], path: Path) -> float:
    """Wall time of one whole command (a fresh process), the file in the page cache."""
    cache_file(path)
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{r.stderr[-3000:]}")
    return wall


def whole_process(sizes: list[int], repeat: int, ts_repeat: int, skip_turboseti: bool) -> None:
    """The whole command line, as a user runs it, side by side: ``run.py search FILE -M 4 -s 10 -o DIR``
    with ``--formats dat`` (what turboSETI writes) and with every export, against ``turboSETI FILE -M 4
    -s 10 -o DIR -n N`` (which also writes its .h5 conversion and a .log).  Median of ``repeat`` runs for
    ours, ``ts_repeat`` for turboSETI (once above 2^20: it is slow)."""
    ts_cli = TS_VENV / "bin" / "turboSETI"
    print(f"\nwhole process; load average before: {load()}", flush=True)
    lines = []
    for log2n in sizes:
        path = make_file(log2n)
        out = OUT / f"whole_2e{log2n}"
        ours_dat = [
            timed([sys.executable, str(ROOT / "run.py"), "search", str(path), "-M", "4", "-s", "10", "-o",
                   str(out / "dat"), "--formats", "dat", "--quiet"], path)
            for _ in range(repeat)
        ]
        ours_all = [
            timed([sys.executable, str(ROOT / "run.py"), "search", str(path), "-M", "4", "-s", "10", "-o",
                   str(out / "all"), "--quiet"], path)
            for _ in range(max(1, repeat // 2))
        ]
        ts: list[float] = []
        if not skip_turboseti:
            for _ in range(ts_repeat if log2n <= 20 else 1):
                d = out / "turboseti"
                subprocess.run(["rm", "-rf", str(d)], check=True)
                d.mkdir(parents=True)
                ts.append(timed([str(ts_cli), str(path), "-M", "4", "-s", "10", "-o", str(d), "-n",
                                 str(max(1, (1 << log2n) >> 20))], path))
        line = (
            f"| 2^{log2n} × 16 | {med(ours_dat):.2f} ({len(ours_dat)}) | {med(ours_all):.2f} ({len(ours_all)}) | "
            + (f"{med(ts):.1f} ({len(ts)}) | {med(ts) / med(ours_dat):.1f}× | {med(ts) / med(ours_all):.1f}× |"
               if ts else "– | – | – |")
        )
        print(line, flush=True)
        lines.append(line)
    print(f"load average after: {load()}")
    print("\n| file | ours, --formats dat: s (n) | ours, every export: s (n) | turboSETI s (n) "
          "| speed-up, dat | speed-up, every export |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="20,24")
    ap.add_argument("--max-drift", type=float, default=4.0)
    ap.add_argument("--min-snr", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=5, help="our searches of files up to 2^20 channels")
    ap.add_argument("--ts-repeat", type=int, default=2, help="turboSETI searches of files up to 2^20 channels")
    ap.add_argument("--skip-turboseti", action="store_true")
    ap.add_argument("--skip-turboseti-large", action="store_true", help="no turboSETI on the 2^24 file")
    ap.add_argument("--whole", action="store_true", help="only the whole-process comparison of the command lines")
    args = ap.parse_args()
    if not args.skip_turboseti:
        ensure_turboseti()
    if args.whole:
        whole_process([int(s) for s in args.sizes.split(",")], args.repeat, args.ts_repeat, args.skip_turboseti)
        return
    small = OUT / "warm.fil"
    if not small.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        make_filterbank(small, nchans=1 << 14, ntime=16)
    # fill numba's on-disk cache once (a cold cache compiles here, not in any timed run)
    run([sys.executable, str(ROOT / "bench" / "dedoppler_run_ours.py"), str(small), "4", "10"])
    print(f"load average before: {load()}", flush=True)
    rows = []
    for log2n in [int(s) for s in args.sizes.split(",")]:
        path = make_file(log2n)
        size_mb = path.stat().st_size / 2**20
        reps = args.repeat if log2n <= 20 else 1
        ours_runs = [
            run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "dedoppler_run_ours.py"),
                    str(path),
                    str(args.max_drift),
                    str(args.min_snr),
                    str(small),
                ],
                path,
            )
            for _ in range(reps)
        ]
        ours = min(ours_runs, key=lambda r: r[0]["search_seconds"])[0]
        res = ours["drift_rate_resolution"]
        o_s = [r[0]["search_seconds"] for r in ours_runs]
        row: dict = {
            "file": f"2^{log2n} × 16 ({size_mb:.0f} MiB)",
            "ours": ours,
            "ours_search": o_s,
            "ours_wall": med([r[1] for r in ours_runs]),
            "ours_peak": max(r[0]["peak_rss_mb"] for r in ours_runs),
        }
        if not args.skip_turboseti and not (args.skip_turboseti_large and log2n > 20):
            ts_reps = args.ts_repeat if log2n <= 20 else 1
            ts_runs = [
                run(
                    [
                        str(TS_PY),
                        str(ROOT / "bench" / "dedoppler_run_turboseti.py"),
                        str(path),
                        str(args.max_drift),
                        str(args.min_snr),
                        str(OUT / f"ts_{log2n}"),
                        str(max(1, (1 << log2n) >> 20)),
                        str(small),
                    ],
                    path,
                )
                for _ in range(ts_reps)
            ]
            ts = min(ts_runs, key=lambda r: r[0]["search_seconds"])[0]
            row.update(
                {
                    "ts": ts,
                    "ts_search": [r[0]["search_seconds"] for r in ts_runs],
                    "ts_wall": med([r[1] for r in ts_runs]),
                    "ts_peak": max(r[0]["peak_rss_mb"] for r in ts_runs),
                    "agree": agree(ours["hits"], ts["hits"], res),
                }
            )
        rows.append(row)
        print(
            json.dumps(
                {
                    k: (v if k not in ("ours", "ts") else {kk: vv for kk, vv in v.items() if kk != "hits"})
                    for k, v in row.items()
                }
            ),
            flush=True,
        )
    print(f"load average after: {load()}", flush=True)

    print()
    print(
        "| file | ours search s, best / median (n) | ours warm-up s | ours process s | ours peak MiB "
        "| turboSETI search s, best / median (n) | turboSETI warm-up s | turboSETI peak MiB "
        "| speed-up best / median | hits ours / turboSETI | top-10 agree |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["ours"]
        os_ = r["ours_search"]
        ours_cols = (
            f"{min(os_):.3f} / {med(os_):.3f} ({len(os_)}) | {o['warmup_seconds']:.2f} | {r['ours_wall']:.2f} | "
            f"{r['ours_peak']:.0f}"
        )
        if "ts" in r:
            t = r["ts"]
            ts_ = r["ts_search"]
            print(
                f"| {r['file']} | {ours_cols} | {min(ts_):.2f} / {med(ts_):.2f} ({len(ts_)}) | "
                f"{t['warmup_seconds']:.2f} | {r['ts_peak']:.0f} | "
                f"{min(ts_) / min(os_):.0f}× / {med(ts_) / med(os_):.0f}× | {len(o['hits'])} / {len(t['hits'])} | "
                f"{r['agree']} |"
            )
        else:
            print(f"| {r['file']} | {ours_cols} | – | – | – | – | {len(o['hits'])} / – | – |")
    # our .dat through turboSETI's own reader
    if not args.skip_turboseti and rows:
        from actors.searcher.pipeline import search_file, write_exports

        p = make_file(int(args.sizes.split(",")[0]))
        paths = write_exports(search_file(p), p, OUT / "ours_exports")
        code = (
            "import sys; from turbo_seti.find_event.find_event import read_dat; "
            "df = read_dat(sys.argv[1]); print(len(df), list(df.columns)[:6])"
        )
        cp = subprocess.run([str(TS_PY), "-c", code, str(paths["dat"])], capture_output=True, text=True)
        print(f"\nour .dat read by turbo_seti.find_event.read_dat: {cp.stdout.strip() or cp.stderr[-500:]}")
        theirs = OUT / f"ts_{args.sizes.split(',')[0]}" / (p.stem + ".dat")
        if theirs.exists():
            a, b = full_number_of_hits(paths["dat"]), full_number_of_hits(theirs)
            same = sum(1 for k in b if a.get(k) == b[k])
            worst = max((abs(a.get(k, 0) - b[k]) for k in b), default=0)
            print(
                f"Full_number_of_hits per coarse channel: the same in {same} of {len(b)}, "
                f"largest difference {worst} (ours {sum(a.values())}, turboSETI {sum(b.values())} in all)"
            )


def full_number_of_hits(dat: Path) -> dict[int, int]:
    """Coarse channel -> the .dat's Full_number_of_hits column (the same on every row of a coarse channel)."""
    out: dict[int, int] = {}
    for line in dat.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            cols = line.split("\t")
            out[int(cols[10])] = int(cols[11])
    return out


if __name__ == "__main__":
    main()
