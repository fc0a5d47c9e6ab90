"""Variability-detector benchmark: forced photometry and the light-curve statistics update.

    .venv/bin/python bench/bench_variability.py

Goals (issue 7): 10,000 positions on a 4800 × 4800 image in ≤ 2 s; a constant cost per
measurement for the statistics update whatever the light curve's length. Prints a markdown
table; figures depend on the machine and on what else is running.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from astropy.wcs import WCS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.variability.photometry import (
    FitsImage,
    RestoringBeam,
    default_box_size,
    estimate_noise,
    forced_photometry,
)
from actors.variability.stats import SourceStats, update


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_photometry(n_pix: int = 4800, n_pos: int = 10_000, repeat: int = 3) -> list[tuple[str, str]]:
    rng = np.random.default_rng(0)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [150.0, 40.0]
    w.wcs.crpix = [n_pix / 2 + 0.5, n_pix / 2 + 0.5]
    w.wcs.cdelt = [-3.0 / 3600, 3.0 / 3600]
    data = rng.standard_normal((n_pix, n_pix), dtype=np.float32) * np.float32(1e-3)
    beam = RestoringBeam(15.0 / 3600, 12.0 / 3600, 20.0)  # 5 × 4 pixels
    img = FitsImage(data, w, beam, w.to_header())
    x = rng.uniform(20, n_pix - 20, n_pos)
    y = rng.uniform(20, n_pix - 20, n_pos)
    ra, dec = (np.asarray(v) for v in w.pixel_to_world_values(x, y))
    box = default_box_size(beam.pixel_covariance(w), data.shape)

    def pb(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.exp(-4 * np.log(2) * ((r - 150.0) ** 2 * 0.587 + (d - 40.0) ** 2) / 2.7**2)

    noise = estimate_noise(data, box)
    t_noise = _best(lambda: estimate_noise(data, box), repeat)
    t_fit = _best(lambda: forced_photometry(img, ra, dec, beam=pb, noise=noise, min_pb_gain=0.0), repeat)
    t_all = _best(lambda: forced_photometry(img, ra, dec, beam=pb, min_pb_gain=0.0), repeat)
    res = forced_photometry(img, ra, dec, beam=pb, noise=noise, min_pb_gain=0.0)
    assert res.valid.all()
    label = f"{n_pos:,} positions, {n_pix} × {n_pix} image"
    return [
        (f"noise map (box {box} px), {n_pix} × {n_pix}", f"{t_noise:.3f} s"),
        (f"forced photometry, {label}, noise map given", f"{t_fit:.3f} s"),
        (f"forced photometry, {label}, incl. noise map (goal ≤ 2 s)", f"{t_all:.3f} s"),
    ]


def bench_stats(prior: tuple[int, ...] = (10, 1000, 100_000), n_updates: int = 20_000) -> list[tuple[str, str]]:
    rng = np.random.default_rng(1)
    rows = []
    for n in prior:
        s = SourceStats()
        for f in 0.1 + rng.normal(0, 1e-3, n):
            s = update(s, float(f), 1e-3)
        flux = (0.1 + rng.normal(0, 1e-3, n_updates)).tolist()

        def run(s0: SourceStats = s, fl: list[float] = flux) -> None:
            for f in fl:
                update(s0, f, 1e-3)  # each from the same n-epoch state: the cost at n prior epochs

        per = _best(run, 3) / n_updates
        rows.append((f"statistics update after {n:,} prior epochs", f"{per * 1e6:.2f} µs / measurement"))
    return rows


def main() -> None:
    rows = bench_photometry() + bench_stats()
    print("| benchmark | time |")
    print("|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
