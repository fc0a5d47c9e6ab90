"""Benchmark: the project's calibration and imaging against CASA's on the same Measurement Set.

An independent imaging package run on the project's MS and calibration tables must agree with the
project (issue 11): positions within 1/10 of the beam, peak fluxes within 3 %, restoring beams
within 10 %; CASA's applycal with the project's tables must give the project's own corrected data
on every integration (to 1e-5); verbose listobs must work.

CASA (casatools + casatasks from PyPI, with casadata for its data repository, so nothing is
downloaded at run time) lives in its own virtual environment, ``bench/.venv-casa`` (created by this
script when missing; gitignored as ``bench/.venv-*``): it pins its own numpy and cannot share the
project's. The CASA steps run there as a subprocess; everything else runs in the project's venv.

The data: one simulated calibrator group (3C286 at transit, its tile's other calibrators in the
beam) with nine 1 Jy sources from the centre out to the half-power radius (1.35 deg), per-antenna
gains and bandpasses, thermal noise; 24 antennas of the core arms (a ~1.5' beam, so both imagers
cover the whole primary beam on 640 x 20" pixels) and 4 channels per subband.

Why the field sources are compared on peeled data: 3C286 (~14 Jy) drifts through the primary
beam during the group, so its apparent flux changes with time and frequency. Neither CLEAN can
model that (both assume a constant sky), and the part left over spreads sidelobes over the field
(the image noise is 4.4 mJy unpeeled, 3.6 mJy peeled, 1.2 mJy thermal). Each CLEAN leaves that confusion
differently, so without peeling the faint sources' peaks compare two ways of failing on the same
sidelobes, not two imagers. The project predicts the calibrator with its drift beam
(`actors.imager.peel`) and subtracts it before imaging; CASA cannot compute that model, but it can
subtract a model it is given. So the project's own prediction (the same selection and the same
`peel.predict`, at full channel resolution) is written into MODEL_DATA and CASA's `uvsub` takes it
out of CORRECTED_DATA before its second tclean: both imagers then grid and CLEAN the same peeled
data, and the comparison tests the imaging. The calibrator itself is compared on the unpeeled
images (both CLEAN it from the data; in the peeled project image it is only the model put back).
There CASA's CLEAN can diverge on the unmodellable drift (its log says so: `tclean_diverged`,
printed with the result); the calibrator's comparison then measures where CASA's CLEAN stopped.

Steps:
    project    convert, solve the calibration set (the calibrator actor's solve), apply it
               (astro.applycal) into the column PROJECT_CORRECTED; image with the imager twice:
               unpeeled (peel=False) and peeled (the default peel of the calibration set's
               calibrators); write the peeled sources' model into MODEL_DATA
    casa       listobs(verbose=True); applycal(B + G, calwt=False) into CORRECTED_DATA; tclean
               (gridder wproject, Briggs 0, psfcutoff 0.5 = the project's half-power main-lobe
               fit, hogbom, the same size, cell, niter and threshold as the project's image of
               the same data; cyclefactor 2, not CASA's 1: with 1 its CLEAN diverged on the
               unpeeled data's drifting calibrator, image noise 8x the project's); exportfits; then uvsub (CORRECTED_DATA -= MODEL_DATA) and tclean
               again with the peeled image's threshold
    compare    CORRECTED_DATA against PROJECT_CORRECTED on every unflagged visibility (before
               uvsub); positions (sub-pixel peak) and peak fluxes: the calibrator on the unpeeled
               pair, the field sources on the peeled pair (and, for the record, on the unpeeled
               pair); every source with SNR >= 20 in both images counts; BMAJ/BMIN/BPA

`--cal-model calibrators` (the default) is production: the calibrator actor's solve, which models
the tile's calibrators and its catalogue sources (here the simulated sky is the catalogue).
`--cal-model full` solves against the calibrators and the whole simulated sky directly
(`solve_full_sky`, written before the actor modelled its field: a calibrator-only solve suppresses
field sources due north or south of the calibrator on the east-west arm's baselines, east or west
of it on the north-south arm's, in the data both imagers get); `--threshold-sigma` sets both
imagers' CLEAN depth.

    .venv/bin/python bench/bench_casa.py [--workdir DIR] [--cal-model calibrators|full] [--threshold-sigma 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASA_VENV = ROOT / "bench" / ".venv-casa"
CASA_PACKAGES = ("casatools==6.7.0.31", "casatasks==6.7.0.31", "casadata", "six")  # casatasks imports six, undeclared
DEC_DEG = 30.5
IMSIZE, CELL_ARCSEC, NITER = 640, 20.0, 20000
LAYOUT = (
    (0.0, 0.0),
    (0.7, 45.0),
    (0.7, 225.0),
    (1.1, 135.0),
    (1.1, 315.0),
    (1.35, 0.0),
    (1.35, 90.0),
    (1.35, 180.0),
    (1.35, 270.0),
)


def ensure_casa() -> Path:
    """The CASA venv's python, installing casatools/casatasks/casadata from PyPI when missing."""
    py = CASA_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run(["python3.11", "-m", "venv", str(CASA_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *CASA_PACKAGES], check=True)
    return py


def casa_env(work: Path) -> dict[str, str]:
    """CASA reads its data from casadata's copy and never tries to update it (no network here)."""
    py = CASA_VENV / "bin" / "python"
    datapath = subprocess.run(
        [str(py), "-c", "import casadata; print(casadata.datapath)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    cfg = work / "casasiteconfig.py"
    cfg.write_text(
        f"measurespath = {datapath!r}\nmeasures_auto_update = False\ndata_auto_update = False\nnologfile = True\n"
    )
    home = work / "casahome"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "CASASITECONFIG": str(cfg)}


CASA_SCRIPT = r"""
import json, sys, time
from casatasks import applycal, exportfits, listobs, tclean, uvsub
stage, ms, out, imsize, cell, niter, threshold = sys.argv[1:8]
res = {}


def image(name):
    t0 = time.perf_counter()
    tclean(vis=ms, imagename=out + "/" + name, datacolumn="corrected", imsize=int(imsize), cell=cell,
           stokes="I", specmode="mfs", gridder="wproject", wprojplanes=-1, weighting="briggs", robust=0.0,
           deconvolver="hogbom", niter=int(niter), threshold=threshold, psfcutoff=0.5, pblimit=-0.01,
           cyclefactor=2.0)
    res["tclean_s"] = time.perf_counter() - t0
    exportfits(imagename=out + "/" + name + ".image", fitsimage=out + "/" + name + ".fits", overwrite=True)


if stage == "unpeeled":
    btab, gtab = sys.argv[8:10]
    t0 = time.perf_counter()
    try:
        summary = listobs(vis=ms, verbose=True, listfile=out + "/listobs.txt", overwrite=True)
        res["listobs_ok"] = bool(summary)
        res["listobs_telescope"] = open(out + "/listobs.txt").read().count("OVRO_MMA") > 0
    except Exception as exc:  # noqa: BLE001 - report it
        res["listobs_ok"] = False
        res["listobs_error"] = repr(exc)
    res["listobs_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    applycal(vis=ms, gaintable=[btab, gtab], interp=["nearest", "linear"], calwt=False, flagbackup=False)
    res["applycal_s"] = time.perf_counter() - t0
    image("casa_unpeeled")
else:  # peeled: the project's model of the peeled sources is in MODEL_DATA
    t0 = time.perf_counter()
    uvsub(vis=ms)
    res["uvsub_s"] = time.perf_counter() - t0
    image("casa_peeled")
json.dump(res, open(out + "/casa_" + stage + ".json", "w"))
"""


def project(work: Path, threshold_sigma: float = 3.0, cal_model: str = "calibrators") -> dict[str, Any]:
    from astropy import units as u
    from astropy.time import Time

    from actors.calibrator import work as calwork
    from actors.imager.pipeline import ImagingParams, calibrate_and_image
    from actors.watcher.convert import convert_group
    from astro.applycal import apply_gains, interpolate_calibration
    from astro.calibrators import get_calibrator
    from astro.catalogue import Catalogue, Source, nvss_name, save_catalogue
    from astro.coordinates import tile_phase_center
    from astro.instrument import TILE_DURATION_S
    from astro.msio import CORR_NAMES, read_ms, write_column
    from astro.skymodel import lm_to_radec
    from sim.observation import simulate

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cal = get_calibrator("3C286")
    # where the calibrator's tile will be: simulate once without a sky to learn its start
    probe = simulate(
        work / "probe",
        1,
        "2025-10-24T00:00:00",
        None,
        n_ants=4,
        core_only=True,
        n_channels=2,
        seed=11,
        calibrator="3C286",
        noise=False,
        gains=False,
        catalogue=Catalogue(()),
        run_check=False,
    )
    start = Time(probe.groups[0].start_isot)
    shutil.rmtree(work / "probe")
    ra0, dec0 = tile_phase_center(start + (TILE_DURATION_S / 2) * u.s, cal.dec_deg)
    sources = []
    for r, pa in LAYOUT[1:]:  # the centre is 3C286 itself
        lval, mval = math.radians(r) * math.sin(math.radians(pa)), math.radians(r) * math.cos(math.radians(pa))
        ra, dec = lm_to_radec(lval, mval, math.radians(ra0), math.radians(dec0))
        sources.append(
            Source(
                nvss_name(math.degrees(float(ra)), math.degrees(float(dec))),
                math.degrees(float(ra)),
                math.degrees(float(dec)),
                1.0,
                -0.7,
            )
        )
    sky = Catalogue(tuple(sources), dec_deg=dec0)
    res = simulate(
        work / "raw",
        1,
        start,
        cal.dec_deg,
        n_ants=24,
        core_only=True,
        n_channels=4,
        seed=11,
        calibrator="3C286",
        jitter_s=3,
        catalogue=sky,
        run_check=False,
    )
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ms = convert_group(res.groups[0].files, work / "ms").path
    timings["convert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cal_model == "calibrators":
        # production: the calibrator actor's solve, which models the tile's catalogue sources too
        # (actors/calibrator/field.py); the catalogue here is the simulated sky itself
        catalogue = save_catalogue(sky, work / "catalogue.json")
        solved = calwork.solve_group(str(ms), str(work / "calsets"), ms.stem, catalogue_path=catalogue)
        assert solved is not None
        calset = Path(solved["path"])
    else:
        calset = solve_full_sky(ms, work / "calsets", sources)
    timings["solve"] = time.perf_counter() - t0
    # the project's corrected data, beside the MS's DATA, for CASA's applycal to be compared with
    t0 = time.perf_counter()
    d = read_ms(ms)
    pols = [CORR_NAMES.get(c, "XX") for c in d.corr_types]
    g, gf = interpolate_calibration([calset], d.time, d.antenna_names, d.freq, pols)
    vis = d.vis.copy()
    flags = d.flags.copy()
    apply_gains(vis, flags, g, gf, d.ant1, d.ant2, d.corr_types)
    vis[flags] = 0
    write_column(ms, d, vis, "PROJECT_CORRECTED", write_flags=False)
    timings["apply"] = time.perf_counter() - t0
    images: dict[str, Any] = {}
    for name, peel_on in (("unpeeled", False), ("peeled", True)):
        t0 = time.perf_counter()
        params = ImagingParams(
            imsize=IMSIZE,
            cellsize_arcsec=CELL_ARCSEC,
            niter=NITER,
            max_major=30,
            peel=peel_on,
            selfcal=False,
            threshold_sigma=threshold_sigma,
        )
        image = calibrate_and_image(ms, [calset], work / f"project_{name}.fits", params)
        timings[f"image_{name}"] = time.perf_counter() - t0
        images[name] = {
            "path": image.path,
            "threshold_jy": image.threshold_jy,
            "noise_jy": image.noise_jy,
            "n_components": image.n_components,
            "converged": image.converged,
            "peeled": [(k.source.name, k.apparent_jy) for k in image.peeled],
        }
    t0 = time.perf_counter()
    modelled = write_peel_model(ms, d, calset)
    timings["model"] = time.perf_counter() - t0
    if sorted(modelled) != sorted(n for n, _ in images["peeled"]["peeled"]):
        raise RuntimeError(f"MODEL_DATA holds {modelled}, the project peeled {images['peeled']['peeled']}")
    truth = [(cal.name, cal.ra_deg, cal.dec_deg)] + [(s.name, s.ra_deg, s.dec_deg) for s in sources]
    return {"ms": str(ms), "calset": str(calset), "images": images, "timings": timings, "truth": truth}


def solve_full_sky(ms: Path, root: Path, field: list[Any]) -> Path:
    """The calibration set solved against the whole simulated sky (the tile's calibrators and the
    nine field sources, through the drift beam), its manifest's sky model cut back to the
    calibrators (what the imager peels).

    Why: solved against the calibrators alone (production), per-integration gains and per-channel
    bandpasses of 24 core antennas on two arms absorb the unmodelled field sources where they are
    degenerate with the calibrator - a source due north or south has a constant phase on every
    east-west baseline - and the corrected data lose them on those baselines only: 3C286's field
    sources at 1.35 deg came out at 40 % (N/S) and 65 % (E/W) of their apparent flux in both
    imagers, and not as point sources (their visibilities are missing on a subset of baselines),
    which each CLEAN deconvolves differently.
    """
    import json as _json

    from actors.calibrator.solve import solve_calibration
    from actors.calibrator.work import tile_calibrators
    from astro.caltables import MANIFEST
    from astro.skymodel import PointSource

    cals = tile_calibrators(ms)
    sky = cals + [PointSource(s.name, s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index, 1.4e9) for s in field]
    info = solve_calibration(ms, sky, root, cal_group_id=ms.stem)
    path = Path(info.path)
    manifest = _json.loads((path / MANIFEST).read_text())
    names = {c.name for c in cals}
    manifest["sources"] = [s for s in manifest["sources"] if s["name"] in names]
    (path / MANIFEST).write_text(_json.dumps(manifest, indent=2))
    return path


def write_peel_model(ms: Path, d: Any, calset: Path) -> list[str]:
    """Write the sources the imager peels, as it predicts them, into the MS's MODEL_DATA.

    The same selection as `calibrate_and_image` (the calibration set's sky model, the default
    `peel_min_jy`) and the same `peel.predict` with the drift beam, at full channel resolution:
    Stokes I in both parallel hands of every cross-correlation, zero elsewhere. Returns the names.
    """
    from actors.imager import peel
    from actors.imager.pipeline import ImagingParams
    from astro.caltables import read_manifest
    from astro.msio import write_column

    chosen, beam = peel.select(d, peel.calset_sources([read_manifest(calset)]), ImagingParams().peel_min_jy)
    model = np.zeros_like(d.vis)
    if chosen:
        cross = np.nonzero(d.ant1 != d.ant2)[0]
        m = peel.predict(d, chosen, beam, 1).reshape(d.ntime, cross.size, d.nchan)
        hands = np.zeros(d.npol, np.complex64)
        hands[d.parallel_hand_indices()] = 1
        model[:, cross] = m[..., None] * hands
    write_column(ms, d, model, "MODEL_DATA", write_flags=False)
    return [s.name for s in chosen]


def _peak(img: np.ndarray, x: float, y: float) -> tuple[float, float, float]:
    xi, yi = round(x), round(y)
    sub = img[yi - 3 : yi + 4, xi - 3 : xi + 4]
    j = np.unravel_index(int(np.argmax(sub)), sub.shape)
    py, px = yi - 3 + int(j[0]), xi - 3 + int(j[1])

    def vertex(a: float, b: float, c: float) -> tuple[float, float]:
        den = a - 2 * b + c
        off = 0.5 * (a - c) / den
        return off, b - 0.25 * (a - c) * off

    ox, vx = vertex(img[py, px - 1], img[py, px], img[py, px + 1])
    oy, vy = vertex(img[py - 1, px], img[py, px], img[py + 1, px])
    return px + ox, py + oy, vx + vy - img[py, px]


def expected_peaks(ms: str, truth: list[tuple[str, float, float]]) -> dict[str, float]:
    """Each simulated source's flux as an image of these data should show it: the apparent flux
    (drift beam x spectrum, per integration and channel) averaged with the project's imaging
    weights (`peel.imaged_flux`, what the imager restores a peeled source with). The simulator
    draws the same catalogue through the same beam model, so this is the truth the two imagers'
    peaks scatter about; it tells which imager a disagreement comes from."""
    from actors.imager import peel
    from actors.imager.selfcal import average_parallel_hands
    from actors.imager.weighting import imaging_weights
    from astro.calibrators import get_calibrator
    from astro.msio import read_ms
    from astro.skymodel import PointSource

    d = read_ms(ms)
    hands = average_parallel_hands(d, 1)
    _, wnat = hands.stokes_i()
    wimg = imaging_weights(hands.uvw, hands.freq, wnat, IMSIZE, CELL_ARCSEC * math.pi / 648000, 0.0)
    cal = get_calibrator("3C286")
    sources = [
        PointSource(cal.name, cal.ra_deg, cal.dec_deg, cal.flux_jy, cal.spectral_index, 1.4e9)
        if name == cal.name
        else PointSource(name, ra, dec, 1.0, -0.7, 1.4e9)
        for name, ra, dec in truth
    ]
    beam = peel.drift_beam(d, sources)
    return {s.name: peel.imaged_flux(s, beam[k], d.freq, 1, wimg, d.ntime) for k, s in enumerate(sources)}


def compare_applycal(ms: str) -> dict[str, Any]:
    """CASA's CORRECTED_DATA (applycal) against the project's PROJECT_CORRECTED, every unflagged
    cross-correlation (run before uvsub changes CORRECTED_DATA)."""
    import casacore.tables as ct

    with ct.table(ms, ack=False) as t:
        ours = t.getcol("PROJECT_CORRECTED")
        casa = t.getcol("CORRECTED_DATA")
        flag = t.getcol("FLAG")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    good = ~flag & (a1 != a2)[:, None, None] & (ours != 0)
    rel = np.abs(casa[good] - ours[good]) / np.maximum(np.abs(ours[good]), 1e-12)
    return {
        "compared": int(good.sum()),
        "max_rel_diff": float(rel.max()),
        "median_rel_diff": float(np.median(rel)),
        "flag_fraction": float(flag.mean()),
    }


def compare_images(
    project_fits: str, casa_fits: str, truth: list[tuple[str, float, float]], expected: dict[str, float]
) -> dict[str, Any]:
    """Beams, and per source: position offsets from the truth, sub-pixel peak, SNR against the
    local rms (64-pixel boxes) and against the image's own robust noise, in both images."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from astro.noise_map import estimate_noise

    out: dict[str, Any] = {}
    images = {}
    for name, path in (("project", project_fits), ("casa", casa_fits)):
        h = fits.getheader(path)
        img = np.asarray(fits.getdata(path), np.float64).squeeze()
        mad = float(np.median(np.abs(img - np.median(img)))) * 1.4826
        images[name] = (img, WCS(h).celestial, estimate_noise(img, 64), mad)
        out[f"beam_{name}"] = [h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"]]
        out[f"image_mad_{name}"] = mad
    out["beam_ratio"] = [out["beam_project"][k] / out["beam_casa"][k] for k in (0, 1)]
    bmin = min(out["beam_project"][1], out["beam_casa"][1])
    rows = []
    for name, ra, dec in truth:
        row: dict[str, Any] = {"name": name}
        for which, (img, wcs, nmap, mad) in images.items():
            x, y = wcs.world_to_pixel_values(ra, dec)
            px, py, peak = _peak(img, float(x), float(y))
            ra_m, dec_m = wcs.pixel_to_world_values(px, py)
            noise = float(nmap.at(np.array([px]), np.array([py]))[1][0])
            row[which] = {
                "dra_arcsec": (float(ra_m) - ra) * math.cos(math.radians(dec)) * 3600,
                "ddec_arcsec": (float(dec_m) - dec) * 3600,
                "peak_jy": peak,
                "local_rms_jy": noise,
                "snr": peak / noise,
                "snr_image": peak / mad,
            }
        p, c = row["project"], row["casa"]
        row["sep_beam"] = math.hypot(p["dra_arcsec"] - c["dra_arcsec"], p["ddec_arcsec"] - c["ddec_arcsec"]) / bmin
        row["peak_ratio"] = p["peak_jy"] / c["peak_jy"]
        row["expected_jy"] = expected[name]
        row["project_vs_expected"] = p["peak_jy"] / expected[name]
        row["casa_vs_expected"] = c["peak_jy"] / expected[name]
        rows.append(row)
    out["sources"] = rows
    return out


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The goal's figures over the sources with SNR >= 20 (local rms) in both images."""
    bright = [r for r in rows if r["project"]["snr"] >= 20 and r["casa"]["snr"] >= 20]
    return {
        "n_compared": len(bright),
        "max_sep_beam": max(r["sep_beam"] for r in bright),
        "max_peak_dev": max(abs(r["peak_ratio"] - 1) for r in bright),
    }


def _print_rows(title: str, rows: list[dict[str, Any]]) -> None:
    print(title)
    for r in rows:
        p, c = r["project"], r["casa"]
        print(
            f'  {r["name"]:26s} project ({p["dra_arcsec"]:+6.1f}",{p["ddec_arcsec"]:+6.1f}") {p["peak_jy"]:8.4f} Jy '
            f'SNR {p["snr"]:6.0f} ({p["snr_image"]:6.0f}) | CASA ({c["dra_arcsec"]:+6.1f}",{c["ddec_arcsec"]:+6.1f}") '
            f"{c['peak_jy']:8.4f} Jy SNR {c['snr']:6.0f} ({c['snr_image']:6.0f}) | sep {r['sep_beam']:.3f} beam, "
            f"peak ratio {r['peak_ratio']:.4f}; expected {r['expected_jy']:.4f} Jy: project "
            f"{r['project_vs_expected']:.4f}, CASA {r['casa_vs_expected']:.4f}"
        )


def run_casa(py: Path, work: Path, stage: str, ms: str, threshold_jy: float, *extra: str) -> dict[str, Any]:
    """One stage of CASA_SCRIPT; its figures, and whether tclean's log reports a diverging CLEAN."""
    logs_before = set(work.glob("casa-*.log"))
    script = work / "casa_steps.py"
    script.write_text(CASA_SCRIPT)
    t0 = time.perf_counter()
    subprocess.run(
        [
            str(py),
            str(script),
            stage,
            ms,
            str(work),
            str(IMSIZE),
            f"{CELL_ARCSEC}arcsec",
            str(NITER),
            f"{threshold_jy * 1e3:.4f}mJy",
            *extra,
        ],
        check=True,
        env=casa_env(work),
        cwd=work,
    )
    res: dict[str, Any] = json.loads((work / f"casa_{stage}.json").read_text())
    res["total_s"] = time.perf_counter() - t0
    log = "".join(f.read_text(errors="replace") for f in sorted(set(work.glob("casa-*.log")) - logs_before))
    res["tclean_diverged"] = "divergence" in log or "peak residual increased" in log
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/bench_casa")
    ap.add_argument(
        "--threshold-sigma",
        type=float,
        default=3.0,
        help="CLEAN depth of both imagers, in the project's residual noise (default: the imager's 3)",
    )
    ap.add_argument(
        "--cal-model",
        choices=("calibrators", "full"),
        default="calibrators",
        help="sky model of the calibration solve: production (the calibrators and the catalogue's field sources) or the whole simulated sky",
    )
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = os.getloadavg()
    t0 = time.perf_counter()
    py = ensure_casa()
    t_install = time.perf_counter() - t0
    proj = project(work, args.threshold_sigma, args.cal_model)
    (work / "project.json").write_text(json.dumps(proj, indent=2))
    ms, calset, imgs = proj["ms"], Path(proj["calset"]), proj["images"]
    casa = {
        "unpeeled": run_casa(
            py,
            work,
            "unpeeled",
            ms,
            imgs["unpeeled"]["threshold_jy"],
            str(calset / "bandpass.B"),
            str(calset / "gains.G"),
        )
    }
    applycal = compare_applycal(ms)
    casa["peeled"] = run_casa(py, work, "peeled", ms, imgs["peeled"]["threshold_jy"])
    expected = expected_peaks(ms, proj["truth"])
    unpeeled = compare_images(imgs["unpeeled"]["path"], str(work / "casa_unpeeled.fits"), proj["truth"], expected)
    peeled = compare_images(imgs["peeled"]["path"], str(work / "casa_peeled.fits"), proj["truth"], expected)
    # the calibrator as both imagers CLEAN it (unpeeled); the field sources on the peeled data
    judged = unpeeled["sources"][:1] + peeled["sources"][1:]
    result = {
        "threshold_sigma": args.threshold_sigma,
        "cal_model": args.cal_model,
        "load_avg_start": load,
        "load_avg_end": os.getloadavg(),
        "casa_install_s": t_install,
        "project": {k: v for k, v in proj.items() if k != "truth"},
        "casa": casa,
        "applycal": applycal,
        "peeled": peeled,
        "unpeeled": unpeeled,
        "judged": summarise(judged),
    }
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("peeled", "unpeeled")}, indent=2))
    for name, part in (("peeled", peeled), ("unpeeled", unpeeled)):
        print(
            f"{name}: beams project {part['beam_project']} CASA {part['beam_casa']} ratio {part['beam_ratio']}; "
            f"image MAD project {part['image_mad_project'] * 1e3:.3f} mJy, CASA {part['image_mad_casa'] * 1e3:.3f} mJy"
        )
        _print_rows(f"{name} images (SNR: local rms, box 64; in brackets: image MAD):", part["sources"])
        print(f"  {name}, all sources with SNR >= 20: {summarise(part['sources'])}")
    print(f"judged (3C286 unpeeled, field sources peeled): {result['judged']}")


if __name__ == "__main__":
    main()
