"""Benchmark: one full-size DSA-110 group simulated, checked and converted to a Measurement Set.

96 antennas, 4656 baselines with autocorrelations, 16 subbands x 48 channels, 24 integrations of
12.884902 s, XX and YY; the NVSS-like synthetic sky through the Airy beam (sources down to 2 mJy
apparent), gains, bandpasses and thermal noise. Each phase runs in a fresh process so that its
peak memory (ru_maxrss) is its own:

    simulate   sim.observation.simulate: 16 UVH5 files
    check      actors.watcher.checks.check_subband_file on the 16 files (header + one row)
    convert    actors.watcher.convert.convert_group: one MS   <- the goal: <= 30 s on 2 cores

    .venv/bin/python bench/bench_convert.py [--workdir DIR] [--antennas 96] [--channels 48]

Prints a markdown table. The machine is shared; figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SIM = """
import json, sys, time
from sim.observation import simulate
t = time.perf_counter()
r = simulate(sys.argv[1], 1, "2025-10-24T14:00:00", 54.0, n_ants=int(sys.argv[2]), n_channels=int(sys.argv[3]),
             seed=1, rfi=True)
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "files": list(r.groups[0].files),
                  "sources": r.groups[0].n_sources, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CHECK = """
import json, sys, time
from actors.watcher.checks import check_subband_file
files = json.loads(sys.argv[1])
t = time.perf_counter()
infos = [check_subband_file(f) for f in files]
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "n_blts": infos[0].n_blts,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONVERT = """
import json, sys, time
from actors.watcher.convert import convert_group
files = json.loads(sys.argv[1])
t = time.perf_counter()
info = convert_group(files, sys.argv[2])
import resource
print(json.dumps({"seconds": time.perf_counter() - t, "rows": info.n_rows, "channels": info.n_channels,
                  "path": str(info.path), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str) -> tuple[dict, float, float]:
    """Run ``code`` in a fresh interpreter; (its JSON line, wall seconds, its peak RSS MB)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return res, wall, float(res["rss_mb"])


def du_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "convert"))
    ap.add_argument("--antennas", type=int, default=96)
    ap.add_argument("--channels", type=int, default=48)
    ap.add_argument("--keep", action="store_true", help="keep the files afterwards")
    a = ap.parse_args()
    work = Path(a.workdir)
    shutil.rmtree(work, ignore_errors=True)
    (work / "incoming").mkdir(parents=True)
    rows = []
    sim, wall, rss = run(SIM, str(work / "incoming"), str(a.antennas), str(a.channels))
    files = sim["files"]
    rows.append(("simulate (16 UVH5 files)", sim["seconds"], wall, rss,
                 f"{sum(du_mb(Path(f)) for f in files):.0f} MB written, {sim['sources']} sources"))
    chk, wall, rss = run(CHECK, json.dumps(files))
    rows.append(("check 16 files", chk["seconds"], wall, rss, f"{chk['n_blts']} blts per file"))
    conv, wall, rss = run(CONVERT, json.dumps(files), str(work / "ms"))
    rows.append(("convert to MS", conv["seconds"], wall, rss,
                 f"{conv['rows']} rows x {conv['channels']} chans, {du_mb(Path(conv['path'])):.0f} MB"))
    nbl = a.antennas * (a.antennas + 1) // 2
    print(f"\nDSA-110 group: {a.antennas} antennas ({nbl} baselines incl. autos), 16 x {a.channels} channels, "
          "24 integrations, 2 pols\n")
    print("| phase | seconds (in-process) | wall s (incl. start-up) | peak RSS MB | notes |")
    print("|---|---:|---:|---:|---|")
    for name, s, w, r, note in rows:
        print(f"| {name} | {s:.1f} | {w:.1f} | {r:.0f} | {note} |")
    print(f"\nconversion goal <= 30 s: {'met' if conv['seconds'] <= 30 else 'NOT met'}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
