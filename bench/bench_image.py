"""Benchmark: a full-size DSA-110 group from its Measurement Set to a calibrated, CLEANed FITS image.

96 antennas (47 E-W core, 35 N-S core, 14 outriggers from the published station coordinates),
4656 baselines with autocorrelations, 768 channels (1311.25-1498.75 MHz), 24 integrations of
12.884902 s, XX and YY.  The sky: a 20 Jy calibrator near the phase centre and 30 field sources,
all attenuated by the drift-scan Airy primary beam; per-antenna bandpasses and gains; thermal noise
from SEFD 6500 Jy; a few channels and one integration of RFI.

Phases, each in a fresh process so that peak memory is per phase (what a pool worker loads once,
astropy's IERS table, is loaded before each phase's clock starts: `warm_worker`; the numba kernels
are compiled into numba's cache first, as ``make install`` does, when they are not there yet):

    generate   write the MS (not timed against the goal)
    solve      calibrator actor: read, flag, model, StEFCal B/G, write the calibration set
    image      imager actor: read, apply the set, Stokes I, Briggs weights, peel the set's
               calibrator, ducc0 gridding, Cotton-Schwab CLEAN, restore, FITS + PNG; the
               calibrator group reads the solve's flags
    image      again on the unflagged MS: the path of a target group, which flags itself

    The goal, <= 60 s on 2 cores, applies to each group's path: solve + image for the
    calibrator group, read + flag + apply + image for a target group.

    .venv/bin/python bench/bench_image.py [--workdir DIR] [--chan-avg 4] [--max-major 2] [--peel-field 8]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATIONS = ROOT.parent / "shared" / "data" / "DSA110_Station_Coordinates.csv"
MJD0 = 60600.25
DEC0_DEG = 33.0
SEFD = 6500.0
CHAN_WIDTH = 244140.625
INTEGRATION = 12.884902


def dsa110_enu() -> tuple[np.ndarray, list[str]]:
    """ENU (m) of 96 active stations: 47 E-W, 35 N-S, 14 outriggers."""
    rows = []
    with open(STATIONS) as fh:
        for r in csv.reader(fh):
            if len(r) > 3 and r[1].startswith("DSA-") and r[2].strip() and r[3].strip():
                elev = float(r[4]) if r[4].strip() else float("nan")
                rows.append((r[1], float(r[2]), float(r[3]), elev))
    lat = np.array([r[1] for r in rows])
    lon = np.array([r[2] for r in rows])
    el = np.array([r[3] for r in rows])
    el = np.where(np.isfinite(el), el, np.nanmean(el))
    ew_lat = np.bincount(np.unique(lat, return_inverse=True)[1]).argmax()
    ew = np.nonzero(lat == np.unique(lat)[ew_lat])[0]
    ns_lon = np.bincount(np.unique(lon, return_inverse=True)[1]).argmax()
    ns = np.nonzero((lon == np.unique(lon)[ns_lon]) & (lat != np.unique(lat)[ew_lat]))[0]
    out = np.setdiff1d(np.arange(len(rows)), np.concatenate([ew, ns]))
    sel = np.concatenate([ew[:47], ns[:35], out[:14]])
    lat0, lon0, h0 = lat[sel].mean(), lon[sel].mean(), el[sel].mean()
    r_earth = 6371000.0
    e = np.deg2rad(lon[sel] - lon0) * np.cos(np.deg2rad(lat0)) * r_earth
    n = np.deg2rad(lat[sel] - lat0) * r_earth
    u = el[sel] - h0
    return np.stack([e, n, u], axis=1), [rows[i][0] for i in sel]


def generate(ms: Path) -> dict[str, float]:
    ms.parent.mkdir(parents=True, exist_ok=True)
    from astro.msio import SECONDS_PER_DAY, VisData, write_ms
    from astro.skymodel import PointSource, drift_beam_gains, point_source_vis, radec_to_lmn
    from sim.synthetic import (
        SIDEREAL_RATE,
        enu_to_itrf,
        enu_uvw,
        offset_source,
        random_gains,
        thermal_sigma,
        transit_phase_centre,
    )

    t0 = time.perf_counter()
    enu, names = dsa110_enu()
    nant, ntime, nchan, npol = len(names), 24, 768, 2
    a1, a2 = np.triu_indices(nant, 0)
    ant1, ant2 = a1.astype(np.int32), a2.astype(np.int32)
    nbl = ant1.size
    t_sec = MJD0 * SECONDS_PER_DAY + (np.arange(ntime) - (ntime - 1) / 2) * INTEGRATION
    ra0, dec0 = transit_phase_centre(MJD0, DEC0_DEG)
    uvw = enu_uvw(enu, ant1, ant2, (t_sec - t_sec.mean()) * SIDEREAL_RATE, dec0)
    freq = 1498.75e6 - CHAN_WIDTH / 2 - np.arange(nchan)[::-1] * CHAN_WIDTH  # ascending
    rng = np.random.default_rng(42)
    sources: list[PointSource] = [offset_source("CAL", ra0, dec0, 400.0, -250.0, 20.0)]
    for k in range(30):
        r = 5400.0 * np.sqrt(rng.uniform(0.0, 1.0))  # within 1.5 deg
        th = rng.uniform(0, 2 * np.pi)
        flux = float(10 ** rng.uniform(np.log10(0.05), np.log10(2.0)))
        sources.append(offset_source(f"S{k:02d}", ra0, dec0, r * np.cos(th), r * np.sin(th), flux))
    beam = drift_beam_gains(sources, t_sec / SECONDS_PER_DAY, freq, dec0, dish_diameter=4.65)
    lmn = radec_to_lmn(np.deg2rad([s.ra_deg for s in sources]), np.deg2rad([s.dec_deg for s in sources]), ra0, dec0)
    flux = np.stack([s.flux(freq) for s in sources])[:, None, :] * beam  # [nsrc, nt, nchan]
    bp, tg = random_gains(nant, nchan, ntime, npol, seed=7)
    sigma = thermal_sigma(SEFD, CHAN_WIDTH, INTEGRATION)
    vis = np.empty((ntime, nbl, nchan, npol), np.complex64)
    autos = ant1 == ant2
    for t in range(ntime):
        m = point_source_vis(uvw[t : t + 1], freq, lmn, flux[:, t : t + 1, :])[0, :, :, 0]  # [nbl, nchan]
        g = bp * tg[t][:, None, :]  # [nant, nchan, npol]
        v = m[:, :, None] * g[ant1] * np.conj(g[ant2])
        noise = rng.standard_normal((nbl, nchan, npol, 2), dtype=np.float32) * np.float32(sigma)
        v += noise[..., 0] + 1j * noise[..., 1]
        v[autos] = (np.abs(g[ant1[autos]]) ** 2 * SEFD).astype(np.complex64)
        vis[t] = v
    # RFI: three persistent channels on all baselines, one broadband burst
    for c in (100, 101, 505):
        vis[:, ~autos, c, :] += 40.0 * np.exp(1j * rng.uniform(0, 2 * np.pi, (ntime, (~autos).sum(), 1)))
    vis[17, ~autos, 300:340, :] += 15.0
    data = VisData(
        vis=vis,
        flags=np.zeros(vis.shape, bool),
        # WEIGHT counts samples, as the converter (pyuvdata's nsample) writes it
        weight=np.ones((ntime, nbl, npol), np.float32),
        uvw=uvw,
        ant1=ant1,
        ant2=ant2,
        time=t_sec,
        freq=freq,
        corr_types=[9, 12],
        phase_dir=(ra0, dec0),
        antenna_names=names,
        antenna_positions=enu_to_itrf(enu),
        interval=INTEGRATION,
        chan_width=CHAN_WIDTH,
        field_name="drift_dec+33",
    )
    t1 = time.perf_counter()
    write_ms(ms, data)
    (ms.parent / "sky.json").write_text(
        json.dumps(
            [
                {
                    "name": s.name,
                    "ra_deg": s.ra_deg,
                    "dec_deg": s.dec_deg,
                    "flux_jy": s.flux_jy,
                    "beam_mid": float(beam[k, ntime // 2, nchan // 2]),
                }
                for k, s in enumerate(sources)
            ]
        )
    )
    return {"simulate": t1 - t0, "write_ms": time.perf_counter() - t1, "sigma": sigma}


def warm_worker() -> float:
    """What a pool worker has loaded after its first group, loaded before the clock starts: the
    IERS table that astropy reads for the sidereal time (~2 s, once per process). Returns its cost.
    The numba kernels' first loads from their cache stay in the timings (conservative)."""
    from astropy.time import Time

    from astro.coordinates import meridian_ra_deg

    t0 = time.perf_counter()
    meridian_ra_deg(Time([MJD0], format="mjd"), DEC0_DEG)
    return time.perf_counter() - t0


def phase_solve(ms: Path, calsets: Path, cal_field: bool = True) -> dict[str, float]:
    from actors.calibrator.solve import SolveParams, solve_calibration
    from astro.skymodel import PointSource

    sky = json.loads((ms.parent / "sky.json").read_text())
    c = sky[0]
    cal = PointSource(c["name"], c["ra_deg"], c["dec_deg"], c["flux_jy"])
    # the field sources in the model, as the calibrator actor takes them from the catalogue
    # (actors/calibrator/field.py): here the simulated sky itself, a catalogue without errors
    field = [PointSource(s["name"], s["ra_deg"], s["dec_deg"], s["flux_jy"]) for s in sky[1:]] if cal_field else []
    warm = warm_worker()
    t0 = time.perf_counter()
    info = solve_calibration(ms, cal, calsets, SolveParams(beam="drift"), field=field)
    out = {f"solve.{k}": v for k, v in info.timings.items()}
    out["solve.total"] = time.perf_counter() - t0
    out["num_targets"] = info.num_targets
    out["median_snr"] = info.median_snr
    out["flagged_fraction"] = info.flagged_fraction
    out["field_modelled"] = len(info.manifest.get("field_sources", []))
    out["warm_up_s"] = warm
    return out


def phase_image(ms: Path, calsets: Path, fits_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from actors.imager.pipeline import ImagingParams, calibrate_and_image

    params = ImagingParams(
        imsize=4800,
        cellsize_arcsec=3.0,
        niter=args.niter,
        robust=0.0,
        threshold_sigma=3.0,
        max_major=args.max_major,
        chan_avg=args.chan_avg,
        nthreads=2,
        epsilon=args.epsilon,
        psf_size=2400,
        peel_field_max=args.peel_field,
        bda_decorrelation=args.bda,
    )
    warm = warm_worker()
    t0 = time.perf_counter()
    res = calibrate_and_image(ms, [calsets], fits_path, params)
    out: dict[str, Any] = {f"image.{k}": v for k, v in res.timings.items()}
    out["image.total"] = time.perf_counter() - t0
    out["noise_jy"] = res.noise_jy
    out["expected_noise_jy"] = res.expected_noise_jy
    out["n_sources_5sigma"] = res.n_sources_5sigma
    out["n_components"] = res.n_components
    out["bmaj_arcsec"], out["bmin_arcsec"], out["bpa_deg"] = res.beam
    out["peak_jy"] = res.peak_jy
    out["converged"] = res.converged
    out["threshold_jy"] = res.threshold_jy
    out["selfcal_solint"] = res.selfcal.solint if res.selfcal else 0
    out["selfcal_rms_phase_deg"] = res.selfcal.rms_phase_deg if res.selfcal else 0.0
    out["peeled"] = ",".join(f"{k.source.name} {k.apparent_jy:.3f} Jy" for k in res.peeled)
    out["warm_up_s"] = warm
    return out


def reset_flags(ms: Path) -> None:
    """The MS as the watcher wrote it: no flags, not marked RFI-flagged (runs reuse one MS)."""
    import casacore.tables as ct

    from astro.msio import RFI_KEYWORD

    with ct.table(str(ms), readonly=False, ack=False) as t:
        t.putcol("FLAG", np.zeros((t.nrows(), *t.getcell("FLAG", 0).shape), bool))
        if RFI_KEYWORD in t.keywordnames():
            t.removekeyword(RFI_KEYWORD)


def read_through(ms: Path) -> float:
    """Read the MS's files once, as the watcher's conversion leaves them: in the page cache (the MS
    was written long before the run, and this machine reclaims cold page cache). Returns the
    seconds this read took, printed with the results. It is 0.4-0.6 s when they were cached
    anyway; the solve's own first read still takes ~4.5-5 s against 1.3-1.7 s in the image phase:
    that is the fresh process faulting in 1.4 GB of new memory (this VM: ~0.7 s per GB the first
    time, 0.2 s once reused), not the disk."""
    t0 = time.perf_counter()
    for f in sorted(ms.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    return time.perf_counter() - t0


def print_bda_comparison(wd: Path, image: dict[str, Any], every: dict[str, Any]) -> None:
    """The calibrator group's image with baseline-dependent averaging against every channel
    gridded: times, noise, beam, and the two images' values at the simulated sources."""
    from astropy.io import fits
    from astropy.wcs import WCS

    sky = json.loads((wd / "sky.json").read_text())
    with fits.open(wd / "image.fits") as a, fits.open(wd / "image_every_channel.fits") as b:
        img_a, img_b = a[0].data.squeeze(), b[0].data.squeeze()
        wcs = WCS(a[0].header).celestial
        noise = float(a[0].header["NOISE"])
    rows = []
    for s in sky:
        x, y = wcs.all_world2pix(s["ra_deg"], s["dec_deg"], 0)
        ix, iy = round(float(x)), round(float(y))
        if not (0 <= ix < img_a.shape[1] and 0 <= iy < img_a.shape[0]):
            continue
        va, vb = float(img_a[iy, ix]), float(img_b[iy, ix])
        if vb > 20 * noise:
            sep = float(np.hypot(x - img_a.shape[1] / 2, y - img_a.shape[0] / 2)) * 3.0 / 3600.0
            rows.append((s["name"], sep, vb, va / vb))
    print("\n| calibrator group image | every channel | baseline-dependent averaging |\n|---|---:|---:|")
    for key, label in (
        ("image.clean_dirty", "dirty image"),
        ("image.clean_psf", "PSF"),
        ("image.clean_major", "major cycles"),
        ("image.total", "image total"),
    ):
        print(f"| {label} (s) | {every[key]:.2f} | {image[key]:.2f} |")
    print(f"| noise (mJy/beam) | {every['noise_jy'] * 1e3:.3f} | {image['noise_jy'] * 1e3:.3f} |")
    print(
        f'| beam | {every["bmaj_arcsec"]:.1f}" x {every["bmin_arcsec"]:.1f}" | '
        f'{image["bmaj_arcsec"]:.1f}" x {image["bmin_arcsec"]:.1f}" |'
    )
    print(f"| sources > 5 sigma | {every['n_sources_5sigma']} | {image['n_sources_5sigma']} |")
    if rows:
        ratios = np.array([r[3] for r in rows])
        print(
            f"| sources at SNR > 20 | {len(rows)} | value ratio median {np.median(ratios):.4f},"
            f" min {ratios.min():.4f}, max {ratios.max():.4f} |"
        )
        for name, sep, vb, q in sorted(rows, key=lambda r: r[1]):
            print(f"|   {name} at {sep:.2f} deg | {vb * 1e3:.1f} mJy/beam | x {q:.4f} |")


def run_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--workdir",
        str(args.workdir),
        "--chan-avg",
        str(args.chan_avg),
        "--max-major",
        str(args.max_major),
        "--niter",
        str(args.niter),
        "--epsilon",
        str(args.epsilon),
        "--peel-field",
        str(args.peel_field),
        "--bda",
        str(args.bda),
        *([] if args.cal_field else ["--no-cal-field"]),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"phase {name} failed")
    return json.loads(p.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench_image")
    ap.add_argument("--phase", choices=["generate", "solve", "image"], default=None)
    ap.add_argument("--chan-avg", type=int, default=4)
    ap.add_argument("--max-major", type=int, default=3)
    ap.add_argument("--niter", type=int, default=20000)
    ap.add_argument("--epsilon", type=float, default=1e-3)
    ap.add_argument(
        "--peel-field",
        type=int,
        default=8,
        help="most field sources peeled (found in the data, fluxes fitted); 0: CLEAN them all",
    )
    ap.add_argument(
        "--bda",
        type=float,
        default=0.01,
        help="baseline-dependent averaging's decorrelation budget at the half-power radius; 0: none",
    )
    ap.add_argument(
        "--no-cal-field",
        dest="cal_field",
        action="store_false",
        help="solve against the calibrator alone (before issue 11 the calibrator actor did; now it models the field)",
    )
    ap.add_argument("--regenerate", action="store_true")
    args = ap.parse_args()
    wd: Path = args.workdir
    ms, calsets, fits_path = wd / "group.ms", wd / "calsets", wd / "image.fits"

    if args.phase is not None:
        if args.phase == "generate":
            out = generate(ms)
        elif args.phase == "solve":
            out = phase_solve(ms, calsets, args.cal_field)
        else:
            out = phase_image(ms, calsets, fits_path if args.bda > 0 else wd / "image_every_channel.fits", args)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return

    wd.mkdir(parents=True, exist_ok=True)
    from actors.precompile import kernels_cached

    if not kernels_cached():
        # a pool worker of an installed system loads its kernels from numba's cache (make install
        # compiles them): a fresh checkout's first run would time numba's compiler instead
        # (86.6 s on the calibrator path, against ~65 s cached)
        subprocess.run([sys.executable, "-m", "actors.precompile"], cwd=ROOT, check=True)
    if args.regenerate or not (ms / "table.dat").exists():
        import shutil

        shutil.rmtree(ms, ignore_errors=True)
        gen = run_phase("generate", args)
        print(f"generated {ms} in {gen['simulate'] + gen['write_ms']:.1f} s (sigma {gen['sigma']:.2f} Jy)")
    import shutil

    shutil.rmtree(calsets, ignore_errors=True)
    reset_flags(ms)
    cold = read_through(ms)
    solve = run_phase("solve", args)  # flags the group and writes the flags into the MS
    image = run_phase("image", args)  # the calibrator group: its imager reads those flags
    # the reference: the same group with every channel gridded (no baseline-dependent averaging)
    every = run_phase("image", argparse.Namespace(**{**vars(args), "bda": 0.0})) if args.bda > 0 else None
    reset_flags(ms)
    target = run_phase("image", args)  # the same MS as a target group would come: it flags itself

    if every is not None:
        print_bda_comparison(wd, image, every)
    print("\n| step | seconds |\n|---|---:|")
    for k, v in solve.items():
        if k.startswith("solve."):
            print(f"| {k} | {v:.2f} |")
    for k, v in image.items():
        if k.startswith("image."):
            print(f"| {k} | {v:.2f} |")
    print(
        f"\n| figure | value |\n|---|---:|\n| solve peak RSS | {solve['peak_rss_mb']:.0f} MB |"
        f"\n| image peak RSS | {image['peak_rss_mb']:.0f} MB |"
        f"\n| field sources in the calibration model | {solve['field_modelled']:.0f} |"
        f"\n| not timed: the IERS table, loaded once per worker (solve, image) | {solve['warm_up_s']:.1f} s,"
        f" {image['warm_up_s']:.1f} s |"
        f"\n| not timed: the MS read into the page cache before the solve (the converter leaves it there) |"
        f" {cold:.1f} s |"
        f"\n| antennas with solutions | {solve['num_targets']:.0f} |"
        f"\n| bandpass median SNR | {solve['median_snr']:.0f} |"
        f"\n| flagged fraction | {solve['flagged_fraction']:.4f} |"
        f"\n| image noise | {image['noise_jy'] * 1e3:.3f} mJy/beam |"
        f"\n| thermal expectation | {image['expected_noise_jy'] * 1e3:.3f} mJy/beam |"
        f"\n| noise / thermal | {image['noise_jy'] / image['expected_noise_jy']:.2f} (target path"
        f" {target['noise_jy'] / target['expected_noise_jy']:.2f}) |"
        f'\n| beam | {image["bmaj_arcsec"]:.1f}" x {image["bmin_arcsec"]:.1f}" PA {image["bpa_deg"]:.0f} |'
        f"\n| sources > 5 sigma | {image['n_sources_5sigma']:.0f} |"
        f"\n| CLEAN components | {image['n_components']:.0f} |"
        f"\n| CLEAN reached 3 sigma | {image['converged']} (threshold {image['threshold_jy'] * 1e3:.3f} mJy/beam) |"
        f"\n| peeled | {image['peeled']} |"
        f"\n| self-calibration | solint {image['selfcal_solint']}, rms phase {image['selfcal_rms_phase_deg']:.2f} deg |"
        f"\n| calibrator group: solve + image (goal <= 60 s) | {solve['solve.total'] + image['image.total']:.1f} s |"
        f"\n| target group: read, flag, apply, image (goal <= 60 s) | {target['image.total']:.1f} s"
        f" (flag {target['image.flag']:.1f} s, peak RSS {target['peak_rss_mb']:.0f} MB) |"
    )


if __name__ == "__main__":
    main()
