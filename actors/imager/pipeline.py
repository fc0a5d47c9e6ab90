"""End-to-end science of the imager actor, as plain functions.

(The calibration solve is the calibrator's: `actors.calibrator.solve`.)

* `calibrate_and_image(ms, calset_dirs, out_path, params)` -> `ImageResult`: pick and interpolate
  calibration (raises `NoCalibrationError` when none is valid - before reading the data), flag,
  apply, average the parallel hands in frequency, predict the sets' calibrators that lie in the
  beam (`peel.py`), Briggs-weight, grid with ducc0, Cotton-Schwab CLEAN with phase-only
  self-calibration in its major cycles (`selfcal.py`) and, after its first minor cycle, the
  brightest field sources found in the data fitted through the drift beam and subtracted
  (`field_peel.py`), restore (the peeled sources at their exact positions), write the FITS image
  and its PNG thumbnail, count sources above 5 sigma.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from actors.imager import averaging, field_peel, peel
from actors.imager.clean import cotton_schwab
from actors.imager.fitsimage import count_sources_above, make_header, write_fits, write_thumbnail
from actors.imager.selfcal import ParallelHands, SelfCalSolution, average_parallel_hands, solve_phases
from actors.imager.weighting import expected_image_noise, imaging_weights
from astro.applycal import NoCalibrationError, apply_gains, interpolate_calibration, select_calsets
from astro.caltables import read_manifest
from astro.flagging import flag_fraction, flag_rfi
from astro.instrument import SEFD_JY, thermal_sigma_jy
from astro.msio import CORR_NAMES, SECONDS_PER_DAY, VisData, read_ms
from astro.skymodel import PointSource, itrf_to_geodetic

ARCSEC = np.pi / (180.0 * 3600.0)
SIDEREAL_DEG_PER_DAY = 360.98564736629

__all__ = [
    "ImageResult",
    "ImagingParams",
    "NoCalibrationError",
    "calibrate_and_image",
]


@dataclass
class ImagingParams:
    imsize: int = 4800
    cellsize_arcsec: float = 3.0
    niter: int = 1000
    robust: float | None = 0.0
    threshold_sigma: float = 3.0
    gain: float = 0.1
    cycle_factor: float = 1.5
    max_major: int = 3
    psf_size: int | None = None  # default: imsize // 2
    chan_avg: int = 1  # channels averaged before gridding
    epsilon: float = 1e-3  # ducc0 accuracy: 3e-4 relative error of the model visibilities, 25 % faster than 1e-4
    nthreads: int = 2
    flag: bool = True
    flag_threshold: float = 7.0
    datacolumn: str = "DATA"
    max_sep_hours: float = 12.0
    thumb_size: int = 900
    do_wgridding: bool = True
    #: phase-only self-calibration in the major cycles (selfcal.py); cells of `selfcal_solint`
    #: integrations, accepted at a median antenna SNR >= `selfcal_min_snr` when the model explains
    #: `selfcal_min_explained` of the signal power
    selfcal: bool = True
    selfcal_solint: int = 4
    selfcal_min_snr: float = 20.0
    selfcal_min_explained: float = 0.5
    #: the calibration sets' calibrators with a mean apparent flux >= `peel_min_jy` are predicted
    #: with the drift beam and subtracted, not CLEANed (peel.py)
    peel: bool = True
    peel_min_jy: float = 0.5
    #: at most `peel_field_max` field sources (0: none), found after the first minor cycle as CLEAN
    #: component clusters of >= `peel_field_min_snr` x the dirty image's noise, are predicted with
    #: the drift beam, their fluxes and spectral slopes fitted to the data, and subtracted, not
    #: CLEANed (field_peel.py)
    peel_field_max: int = 8
    peel_field_min_snr: float = 20.0
    #: system-equivalent flux density per antenna, for the thermal noise expectation (THNOISE)
    sefd_jy: float = SEFD_JY
    #: baseline-dependent averaging for the gridder (averaging.py): each baseline's integrations
    #: are averaged while their decorrelation at the primary beam's half-power radius stays within
    #: this fraction (0: grid every integration as it is)
    bda_decorrelation: float = 0.01


@dataclass
class ImageResult:
    path: str
    thumb_path: str
    mjd: float
    noise_jy: float
    beam: tuple[float, float, float]  # bmaj, bmin (arcsec), bpa (deg)
    n_sources_5sigma: int
    timings: dict[str, float]
    calsets: list[str] = field(default_factory=list)
    expected_noise_jy: float = float("nan")
    peak_jy: float = float("nan")
    flagged_fraction: float = 0.0
    n_components: int = 0
    selfcal: SelfCalSolution | None = None
    peeled: list[peel.KnownSource] = field(default_factory=list)
    converged: bool = False  # CLEAN reached its threshold
    threshold_jy: float = float("nan")


def _timed(timings: dict[str, float], key: str, t0: float) -> float:
    t = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + t - t0
    return t


def _ms_times(ms_path: str) -> npt.NDArray[np.float64]:
    import casacore.tables as ct

    with ct.table(ms_path, ack=False) as t:
        return np.unique(t.getcol("TIME"))  # type: ignore[no-any-return]


def calibrate_and_image(
    ms_path: str | os.PathLike[str],
    calset_dirs: Sequence[str | os.PathLike[str]] | None,
    out_path: str | os.PathLike[str],
    params: ImagingParams | None = None,
    *,
    apply_calibration: bool = True,
    data: VisData | None = None,
) -> ImageResult:
    """Calibrate, image and CLEAN one MS into the FITS file `out_path` (thumbnail beside it, .png).

    `apply_calibration=False` images the data as they are (for comparisons); it must be asked for
    explicitly - with it True, a missing calibration raises `NoCalibrationError`.
    """
    p = params or ImagingParams()
    ms = os.fspath(ms_path)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    chosen: list[Path] = []
    manifests: list[dict[str, Any]] = []
    if apply_calibration:
        times = data.time if data is not None else _ms_times(ms)
        mjd_mid = float(np.mean(times)) / SECONDS_PER_DAY
        chosen = select_calsets(calset_dirs or [], mjd_mid, p.max_sep_hours)
        manifests = [read_manifest(c) for c in chosen]
    t0 = _timed(timings, "select", t0)
    d = data if data is not None else read_ms(ms, p.datacolumn)
    t0 = _timed(timings, "read", t0)
    if p.flag and not d.rfi_flagged:  # a calibrator group's solve has flagged it already
        d.flags = flag_rfi(d.vis, d.flags, d.ant1, d.ant2, p.flag_threshold)
    t0 = _timed(timings, "flag", t0)
    if apply_calibration:
        pols = [CORR_NAMES.get(c, "XX") for c in d.corr_types]
        g, gf = interpolate_calibration(chosen, d.time, d.antenna_names, d.freq, pols)
        apply_gains(d.vis, d.flags, g, gf, d.ant1, d.ant2, d.corr_types)
        del g, gf
    t0 = _timed(timings, "calibrate", t0)
    fflag = flag_fraction(d.flags, d.ant1, d.ant2)
    hands = average_parallel_hands(d, p.chan_avg)
    vis, wnat = hands.stokes_i()
    uvw, freq = hands.uvw, hands.freq
    t0 = _timed(timings, "stokes_i", t0)
    known_src: list[PointSource] = []
    known_beam = np.zeros((0, d.ntime, d.nchan))
    if apply_calibration and p.peel:
        known_src, known_beam = peel.select(d, peel.calset_sources(manifests), p.peel_min_jy)
    known_vis = peel.predict(d, known_src, known_beam, p.chan_avg) if known_src else None
    t0 = _timed(timings, "peel", t0)
    phase_dir, telescope, field_name = d.phase_dir, d.telescope, d.field_name
    mjd = float(np.mean(d.mjd))
    # the RA the beam centre drifted through while the data were taken (photometry averages the
    # primary beam over it): the span of the integrations at the sidereal rate
    drift_ra = (float(np.ptp(d.mjd)) + d.interval / SECONDS_PER_DAY) * SIDEREAL_DEG_PER_DAY
    bandwidth = float(d.freq.max() - d.freq.min() + (d.chan_width or 0.0))
    freq_c = float(np.mean(d.freq))
    full_freq, ntime = d.freq.copy(), d.ntime
    geometry = field_peel.Geometry(
        hands.uvw.reshape(ntime, -1, 3),
        full_freq,
        np.asarray(d.mjd, np.float64),
        phase_dir,
        itrf_to_geodetic(d.antenna_positions)[1],
        d.dish_diameter,
        p.chan_avg,
    )
    # the MS's WEIGHT counts samples (1 for a whole channel and integration, as the converter and
    # pyuvdata write it), so a unit weight has the radiometer noise of one channel x integration
    sigma_vis = (
        thermal_sigma_jy(d.chan_width, d.interval, p.sefd_jy) if d.chan_width > 0 and d.interval > 0 else float("nan")
    )
    if data is None:
        del d  # free the visibility cube before imaging
    cell = p.cellsize_arcsec * ARCSEC
    wimg = imaging_weights(uvw, freq, wnat, p.imsize, cell, p.robust)
    enoise = expected_image_noise(wimg, wnat) * sigma_vis
    del wnat
    known = [
        peel.KnownSource(s, peel.imaged_flux(s, known_beam[k], full_freq, p.chan_avg, wimg, ntime))
        for k, s in enumerate(known_src)
    ]
    t0 = _timed(timings, "weights", t0)
    bins = (
        averaging.plan(
            uvw, freq, wimg, ntime, averaging.half_power_radius(freq, geometry.dish_diameter), p.bda_decorrelation
        )
        if p.bda_decorrelation > 0
        else None
    )
    t0 = _timed(timings, "averaging", t0)
    selfcal: list[SelfCalSolution] = []
    # a set solved on this very group has already fitted its phases: there is no drift to remove
    own = any(float(m.get("obs_mjd_start", np.inf)) <= mjd <= float(m.get("obs_mjd_end", -np.inf)) for m in manifests)
    refine = _self_calibration(hands, p, sigma_vis**2, selfcal) if apply_calibration and p.selfcal and not own else None
    if refine is None:
        del hands
    fields = (
        field_peel.FieldPeeler(
            geometry,
            p.imsize,
            cell,
            max_sources=p.peel_field_max,
            min_snr=p.peel_field_min_snr,
            avoid_radec=[(s.ra_deg, s.dec_deg) for s in known_src],
        )
        if p.peel_field_max > 0
        else None
    )
    res = cotton_schwab(
        uvw,
        freq,
        vis,
        wimg,
        p.imsize,
        cell,
        niter=p.niter,
        gain=p.gain,
        threshold_sigma=p.threshold_sigma,
        cycle_factor=p.cycle_factor,
        max_major=p.max_major,
        psf_size=p.psf_size if p.psf_size is not None else max(64, p.imsize // 2),
        epsilon=p.epsilon,
        nthreads=p.nthreads,
        do_wgridding=p.do_wgridding,
        known_vis=known_vis,
        refine=refine,
        field_model=fields,
        averaging=bins,
    )
    if fields is not None:
        known = known + fields.known
    del vis, wimg, uvw, known_vis, bins
    for k, v in res.timings.items():
        timings[f"clean_{k}"] = v
    t0 = time.perf_counter()
    peel.restore_known(res.restored, known, phase_dir, cell, res.beam)
    n5 = count_sources_above(res.restored, res.noise, 5.0)
    sc = selfcal[-1] if selfcal else None
    hdr = make_header(
        p.imsize,
        cell,
        phase_dir,
        freq_c,
        bandwidth,
        mjd,
        res.beam,
        res.noise,
        telescope=telescope,
        object_name=field_name,
        extra={
            "THNOISE": (enoise, "expected thermal noise, Jy/beam"),
            "SEFD": (p.sefd_jy, "SEFD per antenna for THNOISE, Jy"),
            "DRIFTRA": (round(drift_ra, 6), "RA the beam centre drifted over the data, deg"),
            "ROBUST": (p.robust if p.robust is not None else 99.0, "Briggs robust, 99 = natural"),
            "NITER": (res.n_components, "CLEAN components"),
            "NMAJOR": (res.n_major, "major cycles"),
            "CLEANTHR": (res.threshold, "CLEAN threshold, Jy/beam"),
            "CLEANED": (res.converged, "CLEAN reached its threshold"),
            "CALIB": (bool(apply_calibration), "calibration applied"),
            "CALSETS": ",".join(c.name for c in chosen)[:68],
            "SCSOLINT": (sc.solint if sc else 0, "self-cal integrations per solution, 0 = none"),
            "SCPHASE": (round(sc.rms_phase_deg, 3) if sc else 0.0, "self-cal rms phase correction, deg"),
            "SCEXPL": (round(sc.explained, 4) if sc else 0.0, "signal power the self-cal model explains"),
            "PEELED": (",".join(k.source.name for k in known)[:68], "sources subtracted, restored exactly"),
            "NSRC5": (n5, "islands above 5 sigma"),
        },
    )
    out = write_fits(out_path, res.restored, hdr)
    thumb = write_thumbnail(out.with_suffix(".png"), res.restored, hdr, p.thumb_size)
    _timed(timings, "write", t0)
    return ImageResult(
        path=os.fspath(out),
        thumb_path=os.fspath(thumb),
        mjd=mjd,
        noise_jy=res.noise,
        beam=res.beam.arcsec,
        n_sources_5sigma=n5,
        timings=timings,
        calsets=[os.fspath(c) for c in chosen],
        expected_noise_jy=enoise,
        peak_jy=float(np.max(res.restored)),
        flagged_fraction=fflag,
        n_components=res.n_components,
        selfcal=sc,
        peeled=known,
        converged=res.converged,
        threshold_jy=res.threshold,
    )


def _self_calibration(
    hands: ParallelHands, p: ImagingParams, noise_var: float, solutions: list[SelfCalSolution]
) -> Callable[[npt.NDArray[np.complex64]], npt.NDArray[np.complex64] | None]:
    """The `refine` step of the major cycles: solve phases against the model, return the data
    corrected with them (or None, keeping the data, when the field is too faint to self-calibrate).
    Every solution is appended to `solutions`; the last one made the image."""

    def refine(model_vis: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64] | None:
        sol = solve_phases(hands, model_vis, p.selfcal_solint, p.selfcal_min_snr, noise_var, p.selfcal_min_explained)
        if not sol.solint:
            return None
        solutions.append(sol)
        return hands.stokes_i(sol.gains)[0]

    return refine
