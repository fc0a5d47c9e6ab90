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

Steps:
    project    convert, solve the calibration set (the calibrator actor's solve), apply it
               (astro.applycal) into the column PROJECT_CORRECTED, image with the imager
               (no peeling: CASA cannot, so both CLEAN every source)
    casa       listobs(verbose=True); applycal(B + G, calwt=False) into CORRECTED_DATA; tclean
               (gridder wproject, Briggs 0, psfcutoff 0.5 = the project's half-power main-lobe
               fit, hogbom, the same size, cell, niter and threshold); exportfits
    compare    CORRECTED_DATA against PROJECT_CORRECTED on every unflagged visibility;
               positions (sub-pixel peak) and peak fluxes of every source with SNR >= 20 in both
               images; BMAJ/BMIN/BPA

    .venv/bin/python bench/bench_casa.py [--workdir DIR]
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
LAYOUT = ((0.0, 0.0), (0.7, 45.0), (0.7, 225.0), (1.1, 135.0), (1.1, 315.0),
          (1.35, 0.0), (1.35, 90.0), (1.35, 180.0), (1.35, 270.0))


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
    datapath = subprocess.run([str(py), "-c", "import casadata; print(casadata.datapath)"],
                              check=True, capture_output=True, text=True).stdout.strip()
    cfg = work / "casasiteconfig.py"
    cfg.write_text(f"measurespath = {datapath!r}\nmeasures_auto_update = False\ndata_auto_update = False\n"
                   "nologfile = True\n")
    home = work / "casahome"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "CASASITECONFIG": str(cfg)}


CASA_SCRIPT = r'''
import json, sys, time
from casatasks import applycal, exportfits, listobs, tclean
ms, btab, gtab, out, imsize, cell, niter, threshold = sys.argv[1:9]
res = {}
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
t0 = time.perf_counter()
tclean(vis=ms, imagename=out + "/casa", datacolumn="corrected", imsize=int(imsize), cell=cell,
       stokes="I", specmode="mfs", gridder="wproject", wprojplanes=-1, weighting="briggs", robust=0.0,
       deconvolver="hogbom", niter=int(niter), threshold=threshold, psfcutoff=0.5, pblimit=-0.01)
res["tclean_s"] = time.perf_counter() - t0
exportfits(imagename=out + "/casa.image", fitsimage=out + "/casa.fits", overwrite=True)
json.dump(res, open(out + "/casa.json", "w"))
'''


def project(work: Path) -> dict[str, Any]:
    from astropy import units as u
    from astropy.time import Time

    from actors.calibrator import work as calwork
    from actors.imager.pipeline import ImagingParams, calibrate_and_image
    from actors.watcher.convert import convert_group
    from astro.applycal import apply_gains, interpolate_calibration
    from astro.calibrators import get_calibrator
    from astro.catalogue import Catalogue, Source, nvss_name
    from astro.coordinates import tile_phase_center
    from astro.instrument import TILE_DURATION_S
    from astro.msio import CORR_NAMES, read_ms, write_column
    from astro.skymodel import lm_to_radec
    from sim.observation import simulate

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    cal = get_calibrator("3C286")
    # where the calibrator's tile will be: simulate once without a sky to learn its start
    probe = simulate(work / "probe", 1, "2025-10-24T00:00:00", None, n_ants=4, core_only=True, n_channels=2,
                     seed=11, calibrator="3C286", noise=False, gains=False, catalogue=Catalogue(()), run_check=False)
    start = Time(probe.groups[0].start_isot)
    shutil.rmtree(work / "probe")
    ra0, dec0 = tile_phase_center(start + (TILE_DURATION_S / 2) * u.s, cal.dec_deg)
    sources = []
    for r, pa in LAYOUT[1:]:  # the centre is 3C286 itself
        lval, mval = math.radians(r) * math.sin(math.radians(pa)), math.radians(r) * math.cos(math.radians(pa))
        ra, dec = lm_to_radec(lval, mval, math.radians(ra0), math.radians(dec0))
        sources.append(Source(nvss_name(math.degrees(float(ra)), math.degrees(float(dec))),
                              math.degrees(float(ra)), math.degrees(float(dec)), 1.0, -0.7))
    sky = Catalogue(tuple(sources), dec_deg=dec0)
    res = simulate(work / "raw", 1, start, cal.dec_deg, n_ants=24, core_only=True, n_channels=4, seed=11,
                   calibrator="3C286", jitter_s=3, catalogue=sky, run_check=False)
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ms = convert_group(res.groups[0].files, work / "ms").path
    timings["convert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    solved = calwork.solve_group(str(ms), str(work / "calsets"), ms.stem)
    assert solved is not None
    timings["solve"] = time.perf_counter() - t0
    calset = Path(solved["path"])
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
    t0 = time.perf_counter()
    params = ImagingParams(imsize=IMSIZE, cellsize_arcsec=CELL_ARCSEC, niter=NITER, max_major=30, peel=False,
                           selfcal=False)
    image = calibrate_and_image(ms, [calset], work / "project.fits", params)
    timings["image"] = time.perf_counter() - t0
    truth = [(cal.name, cal.ra_deg, cal.dec_deg)] + [(s.name, s.ra_deg, s.dec_deg) for s in sources]
    return {"ms": str(ms), "calset": str(calset), "image": image.path, "threshold_jy": image.threshold_jy,
            "noise_jy": image.noise_jy, "timings": timings, "truth": truth}


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


def compare(work: Path, proj: dict[str, Any]) -> dict[str, Any]:
    import casacore.tables as ct
    from astropy.io import fits
    from astropy.wcs import WCS

    from actors.variability.photometry import estimate_noise

    out: dict[str, Any] = {}
    with ct.table(proj["ms"], ack=False) as t:
        ours = t.getcol("PROJECT_CORRECTED")
        casa = t.getcol("CORRECTED_DATA")
        flag = t.getcol("FLAG")
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
    good = ~flag & (a1 != a2)[:, None, None] & (ours != 0)
    rel = np.abs(casa[good] - ours[good]) / np.maximum(np.abs(ours[good]), 1e-12)
    out["applycal"] = {"compared": int(good.sum()), "max_rel_diff": float(rel.max()),
                       "median_rel_diff": float(np.median(rel)), "flag_fraction": float(flag.mean())}
    images = {}
    for name, path in (("project", proj["image"]), ("casa", str(work / "casa.fits"))):
        h = fits.getheader(path)
        img = np.asarray(fits.getdata(path), np.float64).squeeze()
        images[name] = (img, WCS(h).celestial, h)
        out[f"beam_{name}"] = [h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"]]
    out["beam_ratio"] = [out["beam_project"][k] / out["beam_casa"][k] for k in (0, 1)]
    rows = []
    for name, ra, dec in proj["truth"]:
        row: dict[str, Any] = {"name": name}
        for which, (img, wcs, _h) in images.items():
            x, y = wcs.world_to_pixel_values(ra, dec)
            px, py, peak = _peak(img, float(x), float(y))
            ra_m, dec_m = wcs.pixel_to_world_values(px, py)
            noise = estimate_noise(img, 64).at(np.array([px]), np.array([py]))[1][0]
            row[which] = {"dra_arcsec": (float(ra_m) - ra) * math.cos(math.radians(dec)) * 3600,
                          "ddec_arcsec": (float(dec_m) - dec) * 3600, "peak_jy": peak, "snr": peak / noise}
        bmin = min(out["beam_project"][1], out["beam_casa"][1])
        p, c = row["project"], row["casa"]
        row["sep_beam"] = math.hypot(p["dra_arcsec"] - c["dra_arcsec"], p["ddec_arcsec"] - c["ddec_arcsec"]) / bmin
        row["peak_ratio"] = p["peak_jy"] / c["peak_jy"]
        rows.append(row)
    out["sources"] = rows
    bright = [r for r in rows if r["project"]["snr"] >= 20 and r["casa"]["snr"] >= 20]
    out["max_sep_beam"] = max(r["sep_beam"] for r in bright)
    out["max_peak_dev"] = max(abs(r["peak_ratio"] - 1) for r in bright)
    out["n_compared"] = len(bright)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/tmp/bench_casa")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = os.getloadavg()
    t0 = time.perf_counter()
    py = ensure_casa()
    t_install = time.perf_counter() - t0
    proj = project(work)
    (work / "project.json").write_text(json.dumps(proj, indent=2))
    ms = proj["ms"]
    script = work / "casa_steps.py"
    script.write_text(CASA_SCRIPT)
    t0 = time.perf_counter()
    subprocess.run([str(py), str(script), ms, str(Path(proj["calset"]) / "bandpass.B"),
                    str(Path(proj["calset"]) / "gains.G"), str(work), str(IMSIZE), f"{CELL_ARCSEC}arcsec",
                    str(NITER), f"{proj['threshold_jy'] * 1e3:.4f}mJy"], check=True, env=casa_env(work), cwd=work)
    casa = json.loads((work / "casa.json").read_text())
    casa["total_s"] = time.perf_counter() - t0
    result = {"load_avg": load, "casa_install_s": t_install, "project": proj["timings"], "casa": casa,
              **compare(work, proj)}
    (work / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "sources"}, indent=2))
    for r in result["sources"]:
        p, c = r["project"], r["casa"]
        print(f"{r['name']:28s} project ({p['dra_arcsec']:+6.1f}\",{p['ddec_arcsec']:+6.1f}\") {p['peak_jy']:7.4f} Jy "
              f"SNR {p['snr']:5.0f} | CASA ({c['dra_arcsec']:+6.1f}\",{c['ddec_arcsec']:+6.1f}\") {c['peak_jy']:7.4f} Jy "
              f"SNR {c['snr']:5.0f} | sep {r['sep_beam']:.3f} beam, peak ratio {r['peak_ratio']:.3f}")


if __name__ == "__main__":
    main()
