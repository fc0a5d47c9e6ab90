"""The calibrator's science: solve a calibration set from a calibrator group's MS.

`solve_calibration(ms, calibrator, out_root, field=...)` -> `CalSetInfo`: flag (once per group -
the flags are written back so the group's imager does not flag again), model the calibrator(s) and
the field's catalogue sources (``field.py`` says why they must be in it) attenuated by the
drifting primary beam, solve bandpass and gains with StEFCal (B, G, then B and G again with
each other's solution as prior), write a calibration set directory (`astro.caltables`).

It lives beside the calibrator actor, which is its only production caller; the imager only reads
the sets (`astro.applycal`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astro.caltables import mjd_to_iso, write_calset
from astro.flagging import flag_fraction, flag_rfi
from astro.msio import CORR_NAMES, VisData, read_ms, write_flags
from astro.skymodel import PointSource, drift_beam_gains, itrf_to_geodetic, source_model_vis
from astro.stefcal import choose_refant, solve_bandpass, solve_gains

__all__ = ["CalSetInfo", "SolveParams", "solve_calibration"]


def _timed(timings: dict[str, float], key: str, t0: float) -> float:
    t = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + t - t0
    return t


@dataclass
class SolveParams:
    flag: bool = True
    flag_threshold: float = 7.0
    beam: str = "drift"  # "drift" (transit: beam centre at LST, phase-centre dec), "fixed", "none"
    refant: int | str | None = None  # index or name; default: the antenna with most data
    solint: int = 1  # integrations per gain solution
    rounds: int = 2  # B/G alternations
    min_snr: float = 3.0
    validity_hours: float = 12.0
    datacolumn: str = "DATA"
    # field sources (``field.py``) join the model when their mean apparent flux (beam x spectrum,
    # over the tile and band) reaches this: the catalogue's own floor, so every source the
    # light curves measure is modelled
    field_min_apparent_jy: float = 0.005


@dataclass
class CalSetInfo:
    path: str
    cal_group_id: str
    created_at: str
    mjd_start: float
    mjd_end: float
    mjd_mid: float
    num_targets: int
    calibrator: str
    timings: dict[str, float]
    flagged_fraction: float
    median_snr: float
    manifest: dict[str, Any] = field(default_factory=dict)


def _source_doc(s: PointSource) -> dict[str, Any]:
    return {"name": s.name, "ra_deg": s.ra_deg, "dec_deg": s.dec_deg, "flux_jy": s.flux_jy,
            "spectral_index": s.spectral_index, "ref_freq_hz": s.ref_freq_hz}  # fmt: skip


def _keep_bright(
    sources: list[PointSource],
    n_cals: int,
    beam: np.ndarray | None,
    freq: np.ndarray,
    min_apparent_jy: float,
) -> tuple[list[PointSource], np.ndarray | None]:
    """The calibrators and the field sources whose mean apparent flux reaches `min_apparent_jy`."""
    keep = list(range(n_cals))
    for k in range(n_cals, len(sources)):
        flux = sources[k].flux(freq)[None, :]
        apparent = float(np.mean(flux * beam[k])) if beam is not None else float(np.mean(flux))
        if apparent >= min_apparent_jy:
            keep.append(k)
    return [sources[k] for k in keep], (beam[keep] if beam is not None else None)


def solve_calibration(
    ms_path: str | os.PathLike[str],
    calibrator: PointSource | Sequence[PointSource],
    out_root: str | os.PathLike[str],
    params: SolveParams | None = None,
    cal_group_id: str | None = None,
    data: VisData | None = None,
    field: Sequence[PointSource] = (),
) -> CalSetInfo:
    """Solve a calibration set from a calibrator group's MS and write it under `out_root`.

    `field`: the tile's other known sources (``field.field_sources``), modelled with the
    calibrators but not recorded as the set's ``sources`` (the imager peels those): without them
    the gains absorb the flux of field sources the array cannot tell from the calibrator.
    """
    p = params or SolveParams()
    cals = [calibrator] if isinstance(calibrator, PointSource) else list(calibrator)
    if not cals:
        raise ValueError("no calibrator model given")
    sources = cals + list(field)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    d = data if data is not None else read_ms(ms_path, p.datacolumn)
    t0 = _timed(timings, "read", t0)
    flags = d.flags
    if p.flag and not d.rfi_flagged:
        flags = flag_rfi(d.vis, d.flags, d.ant1, d.ant2, p.flag_threshold)
        t0 = _timed(timings, "flag", t0)
        if data is None:
            # flag once per group: the imager of this group reads these flags instead of flagging again
            write_flags(ms_path, d, flags, f"SumThreshold chi1={p.flag_threshold:g}")
            t0 = _timed(timings, "write_flags", t0)
    beam = None
    if p.beam != "none":
        _, lon, _ = itrf_to_geodetic(d.antenna_positions)
        beam = drift_beam_gains(
            sources,
            d.mjd,
            d.freq,
            d.phase_dir[1],
            lon,
            d.dish_diameter,
            pointing_ra=None if p.beam == "drift" else d.phase_dir[0],
        )
    if len(sources) > len(cals):
        sources, beam = _keep_bright(sources, len(cals), beam, d.freq, p.field_min_apparent_jy)
    model = source_model_vis(d.uvw, d.freq, sources, d.phase_dir, beam)
    t0 = _timed(timings, "model", t0)
    nant = d.nant
    if isinstance(p.refant, str):
        refant = d.antenna_names.index(p.refant)
    elif p.refant is None:
        refant = choose_refant(flags, d.ant1, d.ant2, nant)
    else:
        refant = int(p.refant)
    kw: dict[str, Any] = {"min_snr": p.min_snr}
    bp = solve_bandpass(d.vis, flags, model, d.ant1, d.ant2, nant, d.weight, refant, **kw)
    g = solve_gains(d.vis, flags, model, d.ant1, d.ant2, nant, d.weight, bp.gains, p.solint, refant, **kw)
    for _ in range(max(0, p.rounds - 1)):
        tg = g.gains  # [ntb, nant, 1, npol]
        if p.solint > 1:
            tg = np.repeat(tg, p.solint, axis=0)[: d.ntime]
        bp = solve_bandpass(d.vis, flags, model, d.ant1, d.ant2, nant, d.weight, refant, time_gains=tg, **kw)
        g = solve_gains(d.vis, flags, model, d.ant1, d.ant2, nant, d.weight, bp.gains, p.solint, refant, **kw)
    t0 = _timed(timings, "solve", t0)

    ntb = g.gains.shape[0]
    gtimes = np.array([d.time[k * p.solint : (k + 1) * p.solint].mean() for k in range(ntb)])
    cid = cal_group_id or mjd_to_iso(float(d.mjd[0]))
    pols = [CORR_NAMES.get(c, str(c)) for c in d.corr_types]
    s0 = cals[0]
    modelled_field = sources[len(cals) :]
    manifest = write_calset(
        Path(out_root) / cid,
        cal_group_id=cid,
        calibrator={
            "name": s0.name,
            "ra_deg": s0.ra_deg,
            "dec_deg": s0.dec_deg,
            "flux_jy": s0.flux_jy,
            "n_components": len(cals),
            "beam_model": p.beam,
        },
        antenna_names=d.antenna_names,
        antenna_positions=d.antenna_positions,
        freq=d.freq,
        bandpass=bp.gains[0],
        bandpass_flags=bp.flags[0],
        bandpass_snr=bp.snr[0],
        bandpass_err=bp.err[0],
        gain_times=gtimes,
        gains=g.gains[:, :, 0, :],
        gain_flags=g.flags[:, :, 0, :],
        gain_snr=g.snr[:, :, 0, :],
        gain_err=g.err[:, :, 0, :],
        refant=refant,
        interval=d.interval * p.solint,
        pols=pols,
        source_ms=os.fspath(ms_path),
        field_dir=d.phase_dir,
        validity_hours=p.validity_hours,
        chan_width=d.chan_width,
        extra={
            "data_flagged_fraction": flag_fraction(flags, d.ant1, d.ant2),
            # the calibrators solved against: the imager subtracts them (peel.py)
            "sources": [_source_doc(s) for s in cals],
            # the field sources also in the model; imaged and measured, never peeled
            "field_sources": [_source_doc(s) for s in modelled_field],
            "beam_model": p.beam,
        },
    )
    _timed(timings, "write", t0)
    good = ~bp.flags
    return CalSetInfo(
        path=os.fspath(Path(out_root) / cid),
        cal_group_id=cid,
        created_at=manifest["created_at"],
        mjd_start=manifest["mjd_start"],
        mjd_end=manifest["mjd_end"],
        mjd_mid=manifest["mjd_mid"],
        num_targets=manifest["num_targets"],
        calibrator=s0.name,
        timings=timings,
        flagged_fraction=manifest["data_flagged_fraction"],
        median_snr=float(np.median(bp.snr[good])) if good.any() else 0.0,
        manifest=manifest,
    )
