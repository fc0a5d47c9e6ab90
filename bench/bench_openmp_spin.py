"""Benchmark: CLEAN's minor cycle alone and beside a second one, by how long OpenMP threads spin.

Why: numba's parallel kernels run on libgomp, whose threads spin (300,000 iterations by default)
at the end of every parallel region before they sleep. The process pool runs one worker per core
and each kernel one thread per core, so two jobs at once put four threads on two cores; the minor
cycle is thousands of short parallel regions, and each process's threads wait out the other's
spinners. `actors.runtime.GOMP_SPINCOUNT` bounds the spin; this measures the settings side by side
in one run: libgomp's default, the bounded spin, and never spinning (OMP_WAIT_POLICY=PASSIVE).

    .venv/bin/python bench/bench_openmp_spin.py [--repeats 3] [--iterations 1500]

Each measurement is a fresh process (libgomp reads its environment once, when it loads), timing
`_minor_cycle` on 200,000 active pixels and a 512² PSF after a warm-up call; "beside" runs two
such processes at once and reports both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNEL = r"""
import sys, time
import numpy as np
from actors.imager.clean import _minor_cycle

rng = np.random.default_rng(0)
n, half = 200_000, 256
ay = rng.integers(0, 2400, n).astype(np.int64)
ax = rng.integers(0, 2400, n).astype(np.int64)
vals = rng.standard_normal(n).astype(np.float32)
y, x = np.mgrid[-half:half, -half:half]
psf = np.exp(-(x**2 + y**2) / 50.0).astype(np.float32)
model = np.zeros((2400, 2400), np.float32)
_minor_cycle(ay, ax, vals.copy(), psf, 0.1, 0.0, 10, model)
t0 = time.perf_counter()
_minor_cycle(ay, ax, vals.copy(), psf, 0.1, 0.0, int(sys.argv[1]), model)
print(time.perf_counter() - t0)
"""

SETTINGS = {
    "libgomp default (spin 300,000)": {},
    "bounded spin (GOMP_SPINCOUNT=3000, the runtime's)": {"GOMP_SPINCOUNT": "3000"},
    "never spin (OMP_WAIT_POLICY=PASSIVE)": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def run(env_extra: dict[str, str], iterations: int, together: int) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(env_extra)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", KERNEL, str(iterations)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(together)
    ]
    return [float(p.communicate()[0].strip()) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=1500)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("\n| setting | alone (s, median) | beside a second one (s, median of both) |\n|---|---:|---:|")
    for name, extra in SETTINGS.items():
        alone = [run(extra, args.iterations, 1)[0] for _ in range(args.repeats)]
        pair = [t for _ in range(args.repeats) for t in run(extra, args.iterations, 2)]
        print(
            f"| {name} | {statistics.median(alone):.2f} ({min(alone):.2f}-{max(alone):.2f}) |"
            f" {statistics.median(pair):.2f} ({min(pair):.2f}-{max(pair):.2f}) |"
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
