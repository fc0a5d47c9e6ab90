"""The DSA-110 observation simulator: real UVH5 subband files of meridian drift-scan tiles.

One *group* is a ~5-minute tile: 24 integrations of 12.884902 s, written as 16 UVH5 files
``YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`` (sb00 the highest frequency, channels descending inside each
file as the correlator writes them), XX and YY, every baseline including autocorrelations, the
real station positions. The data are *unprojected* (pyuvdata's name for drift-scan data: no
phase rotation applied); the file timestamps of one group jitter by a few seconds, while the data
of all 16 subbands share one time axis.

Visibilities, per time t, channel ν, polarisation p and baseline (a, b):

    V_ab = g_a conj(g_b) [ Σ_s S_s(ν, t) B(θ_s(t), ν) exp(2πi ν (r_b - r_a)·ŝ_s(t) / c) + RFI + N ]

* the sky is the synthetic catalogue (:mod:`astro.catalogue`, flux at the group's MJD) plus the
  shipped VLA calibrators, point sources seen through the Airy beam of a 4.65 m dish pointed at
  the meridian at the strip's declination (fixed in alt-az for the tile);
* N is thermal noise with σ = SEFD / sqrt(2 Δν τ) per real and imaginary part (autos: the real
  total power SEFD + sky with its own radiometer noise);
* g are the slowly drifting antenna gains and bandpasses of :mod:`sim.gains`;
* optional narrowband RFI: a few persistent, intermittent lines, correlated across antennas.

The sum over sources is a batched matrix product per channel (V = conj(A) Aᵀ with
A[a, s] = sqrt(S B) exp(2πi ν r_a·ŝ / c)), so a full-size group (96 antennas, 4656 baselines,
768 channels, 24 integrations) costs a few BLAS calls per integration, no Python loop over
baselines or sources. The phasor A is filled by a numba kernel that steps the phase across the
uniform channel grid.

Beside the files the simulator writes ``catalogue.json`` (the sky truth, merged across runs),
``gains_<group>.npz`` (the true gains of each group) and ``simulation.json`` (a manifest).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np
from astropy import units as u
from astropy.time import Time
from pyuvdata import Telescope, UVData

from astro import catalogue as cat
from astro.calibrators import Calibrator, calibrators_in_tile, get_calibrator, load_calibrators, nearest_calibrator
from astro.coordinates import SIDEREAL_DAY_S, enu_directions, meridian_ra_deg, pointing_enu, transit_time
from astro.instrument import (
    INTEGRATION_TIME_S,
    N_INTEGRATIONS,
    N_SUBBANDS,
    POLARIZATIONS,
    SEFD_JY,
    TELESCOPE_NAME,
    TILE_DURATION_S,
    band_frequencies_hz,
    channel_width_hz,
    subband_frequencies_hz,
)
from astro.primary_beam import C_M_S, airy_beam_fast, angular_separation
from astro.stations import Array, dsa110_array
from sim.gains import true_gains

CATALOGUE_FILE = "catalogue.json"
MANIFEST_FILE = "simulation.json"
SIDEREAL_DAY_D = SIDEREAL_DAY_S / 86400.0


class SimulationError(ValueError):
    """Bad simulator arguments."""


@dataclass(frozen=True)
class SimGroup:
    """One simulated group (tile) and where its files are."""

    group_id: str  # nominal start, 'YYYY-MM-DDTHH:MM:SS'
    files: tuple[str, ...]  # sb00..sb15 (only the written ones)
    subbands: tuple[int, ...]
    start_isot: str
    mid_mjd: float
    ra_range_deg: tuple[float, float]  # meridian RA at the first and last integration
    dec_deg: float
    calibrator: str | None
    gains_file: str
    n_sources: int


@dataclass(frozen=True)
class SimResult:
    out_dir: Path
    groups: list[SimGroup]
    catalogue_path: Path
    manifest_path: Path
    injected: dict[str, str] = field(default_factory=dict)  # source name -> 'ese' | 'sinusoid'


def file_timestamp(t: Time) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC, whole seconds)."""
    return str(Time(t, precision=0).isot)[:19]


def subband_filename(timestamp: str, subband: int) -> str:
    return f"{timestamp}_sb{subband:02d}.hdf5"


# ----------------------------------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _fill_phasors(
    f0: float, df: float, tau: np.ndarray, amp: np.ndarray, out: np.ndarray, out_conj: np.ndarray
) -> None:  # pragma: no cover - compiled
    """out[f, a, s] = A, out_conj = conj(A), with A = amp[f, s] exp(2πi (f0 + f df) tau[a, s]).

    The phase is stepped across the uniform channel grid (one complex multiply per channel);
    writes are contiguous.
    """
    nf, na, ns = out.shape
    z = np.empty((na, ns), dtype=np.complex128)
    dz = np.empty((na, ns), dtype=np.complex128)
    for a in range(na):
        for s in range(ns):
            t = tau[a, s]
            ph0 = 2.0 * np.pi * ((f0 * t) % 1.0)
            dph = 2.0 * np.pi * ((df * t) % 1.0)
            z[a, s] = complex(np.cos(ph0), np.sin(ph0))
            dz[a, s] = complex(np.cos(dph), np.sin(dph))
    for f in range(nf):
        for a in range(na):
            for s in range(ns):
                v = amp[f, s] * z[a, s]
                out[f, a, s] = v
                out_conj[f, a, s] = v.conjugate()
                z[a, s] = z[a, s] * dz[a, s]


@numba.njit(cache=True)
def _corrupt(
    v: np.ndarray,
    noise: np.ndarray,
    sigma: float,
    gains: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    sefd: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """out[bl, f, p] = g1 conj(g2) (v + σ n); autos are real: (P + σ√2 n (P / SEFD)) |g|².

    v (Nbl, Nf) sky+RFI, autos without the system power; noise (2, Nbl, Nf) complex64 standard
    normal per real/imag part (or all zeros); gains (Na, Nf, 2).
    """
    nbl, nf = v.shape
    for b in range(nbl):
        i, j = ant1[b], ant2[b]
        for p in range(2):
            for f in range(nf):
                g = gains[i, f, p] * gains[j, f, p].conjugate()
                if i == j:
                    tot = v[b, f].real + sefd
                    val = tot + noise[p, b, f].real * sigma * np.sqrt(2.0) * (tot / sefd)
                    out[b, f, p] = val * g.real
                else:
                    out[b, f, p] = g * (v[b, f] + sigma * noise[p, b, f])


def sky_visibilities(
    enu_ants: np.ndarray,
    src_enu: np.ndarray,
    weights: np.ndarray,
    freqs_hz: np.ndarray,
    ant1: np.ndarray,
    ant2: np.ndarray,
    chunk: int = 256,
) -> np.ndarray:
    """Point-source visibilities for one integration, shape (Nbl, Nf), complex64.

    ``enu_ants`` (Na, 3) metres; ``src_enu`` (Ns, 3) unit vectors; ``weights`` (Nf, Ns) the
    apparent flux S·B (≥ 0); ``freqs_hz`` a uniform ascending grid; ``ant1``/``ant2`` index the
    rows of ``enu_ants``. V(a, b) = Σ_s w_s exp(2πi ν (r_b - r_a)·ŝ / c) (pyuvdata's convention),
    computed as conj(A) Aᵀ per channel, in chunks of ``chunk`` channels to stay cache-friendly.
    """
    nf = freqs_hz.size
    na = enu_ants.shape[0]
    ns = src_enu.shape[0]
    out = np.zeros((ant1.size, nf), dtype=np.complex64)
    if ns == 0:
        return out
    tau = np.ascontiguousarray((enu_ants @ src_enu.T) / C_M_S)  # (Na, Ns) seconds
    df = float(freqs_hz[1] - freqs_hz[0]) if nf > 1 else 0.0
    amp = np.sqrt(np.maximum(weights, 0.0)).astype(np.float32)
    for c0 in range(0, nf, chunk):
        c1 = min(nf, c0 + chunk)
        at = np.empty((c1 - c0, na, ns), dtype=np.complex64)
        ac = np.empty((c1 - c0, na, ns), dtype=np.complex64)
        _fill_phasors(float(freqs_hz[c0]), df, tau, np.ascontiguousarray(amp[c0:c1]), at, ac)
        m = np.matmul(ac, at.transpose(0, 2, 1))  # (nc, Na, Na): Σ_s conj(A_as) A_bs
        out[:, c0:c1] = m[:, ant1, ant2].T
    return out


# ------------------------------------------------------------------------------------ the sky


@dataclass(frozen=True)
class _SkySource:
    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: np.ndarray  # per channel (ascending band)


def _sky_for_group(
    catalogue: cat.Catalogue,
    calibrators: Sequence[Calibrator],
    mid_mjd: float,
    ra_mid: float,
    dec_deg: float,
    freqs: np.ndarray,
) -> list[_SkySource]:
    """Candidate sources near the tile (generous box; the beam cut comes later)."""
    half_dec = 8.0
    half_ra = min(180.0, (8.0 + 2.0) / max(math.cos(math.radians(min(abs(dec_deg) + half_dec, 89.0))), 0.02))
    out: list[_SkySource] = []

    def near(ra: float, dec: float) -> bool:
        dra = (ra - ra_mid + 180.0) % 360.0 - 180.0
        return abs(dec - dec_deg) <= half_dec and abs(dra) <= half_ra

    for s in catalogue.sources:
        if near(s.ra_deg, s.dec_deg):
            out.append(_SkySource(s.name, s.ra_deg, s.dec_deg, cat.flux_at(s, mid_mjd, freqs)))
    for c in calibrators:
        if near(c.ra_deg, c.dec_deg):
            out.append(_SkySource(c.name, c.ra_deg, c.dec_deg, c.flux_at(freqs)))
    return out


# --------------------------------------------------------------------------------- the writer


def _telescope(array: Array) -> Telescope:
    return Telescope.new(
        name=TELESCOPE_NAME,
        location=array.site,
        antenna_positions=array.relative_ecef(),
        antenna_names=array.names,
        antenna_numbers=array.antenna_numbers,
        instrument=TELESCOPE_NAME,
        x_orientation="east",
        feeds=["x", "y"],
        antenna_diameters=np.full(array.n_ants, 4.65),
        mount_type="fixed",
        update_from_known=False,
    )


def _write_subband(
    path: Path,
    telescope: Telescope,
    times_jd: np.ndarray,
    antpairs: np.ndarray,
    freqs_file_order: np.ndarray,
    chan_width: float,
    data: np.ndarray,
    extra: dict[str, object],
    vis_units: str,
    run_check: bool,
) -> None:
    nblts = data.shape[0]
    uvd = UVData.new(
        freq_array=freqs_file_order,
        polarization_array=list(POLARIZATIONS),
        times=times_jd,
        telescope=telescope,
        antpairs=antpairs,
        do_blt_outer=True,
        time_axis_faster_than_bls=False,
        integration_time=INTEGRATION_TIME_S,
        channel_width=chan_width,
        data_array=data,
        flag_array=np.zeros(data.shape, dtype=bool),
        nsample_array=np.ones(data.shape, dtype=np.float32),
        vis_units=vis_units,
        history="simulated by sim.observation (DSA-110 drift-scan tile)",
        check_kw=None if run_check else {"check_extra": False, "run_check_acceptability": False, "check_autos": False},
    )
    assert uvd.Nblts == nblts
    uvd.extra_keywords = dict(extra)
    tmp = path.with_name("." + path.name + ".partial")
    uvd.write_uvh5(str(tmp), clobber=True, run_check=run_check, data_write_dtype="c8")
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ the simulation


@dataclass(frozen=True)
class GroupPlan:
    start: Time
    dec_deg: float
    calibrator: str | None = None


def plan_groups(
    n_groups: int,
    start: Time,
    dec_deg: float | None,
    *,
    calibrator: str | bool | None = None,
    epochs: int = 1,
    epoch_spacing_days: float = SIDEREAL_DAY_D,
) -> tuple[list[GroupPlan], float]:
    """Start times of every group (and the strip dec).

    With a calibrator (a name, or True for the brightest one near ``dec_deg``), the first group of
    every epoch is centred on the calibrator's transit and ``dec_deg`` defaults to its declination.
    """
    if n_groups < 1 or epochs < 1:
        raise SimulationError("groups and epochs must be >= 1")
    cal: Calibrator | None = None
    if calibrator:
        if isinstance(calibrator, str):
            cal = get_calibrator(calibrator)
        else:
            if dec_deg is None:
                raise SimulationError("--with-calibrator needs --dec (or name one with --calibrator)")
            cal = nearest_calibrator(dec_deg)
        if dec_deg is None:
            dec_deg = cal.dec_deg
        tr = transit_time(cal.ra_deg, start, dec_deg)
        start = tr - (TILE_DURATION_S / 2.0) * u.s
    if dec_deg is None:
        raise SimulationError("a declination (--dec) is required")
    if not -90.0 < dec_deg < 90.0:
        raise SimulationError(f"declination {dec_deg} out of range")
    plans = []
    for e in range(epochs):
        t_e = start + e * epoch_spacing_days * u.day
        for g in range(n_groups):
            t = t_e + g * TILE_DURATION_S * u.s
            plans.append(GroupPlan(Time(t, precision=0), float(dec_deg), cal.name if (cal and g == 0) else None))
    return plans, float(dec_deg)


def _group_times(start: Time) -> np.ndarray:
    return np.asarray(start.jd + (np.arange(N_INTEGRATIONS) + 0.5) * INTEGRATION_TIME_S / 86400.0)


def simulate(
    out_dir: Path | str,
    n_groups: int = 1,
    start: Time | str | None = None,
    dec_deg: float | None = None,
    *,
    n_ants: int = 96,
    core_only: bool = False,
    n_channels: int = 48,
    seed: int = 0,
    rfi: bool = False,
    calibrator: str | bool | None = None,
    noise: bool = True,
    gains: bool = True,
    jitter_s: float = 5.0,
    epochs: int = 1,
    epoch_spacing_days: float = SIDEREAL_DAY_D,
    n_ese: int = 0,
    n_variable: int = 0,
    ese_start_mjd: float | None = None,
    ese_duration_days: float | None = None,
    min_apparent_jy: float = 2e-3,
    subbands: Sequence[int] | None = None,
    catalogue: cat.Catalogue | None = None,
    include_calibrators: bool = True,
    run_check: bool | None = None,
) -> SimResult:
    """Write ``n_groups`` consecutive tiles (times ``epochs`` nights) of UVH5 files into ``out_dir``.

    ``calibrator``: a calibrator name, or True for the brightest calibrator near ``dec_deg``; the
    first group of each epoch is then centred on its transit. ``n_ese``/``n_variable``: give the
    brightest catalogue sources inside the first group's beam an ESE-like dip (starting at
    ``ese_start_mjd``, lasting ``ese_duration_days``; by default, over several epochs, the middle
    third of the epochs are in the dip and the epochs before are quiescent (the one just before
    catches the edge brightening); within one night the dip covers the night) or a sinusoidal
    modulation (25 %). ``subbands``: write only these subbands (to simulate missing files).
    ``catalogue``: use this sky instead of the synthetic NVSS-like one. ``core_only``: the
    ``n_ants`` antennas from the core arms only (no outriggers; a ~1.5' beam, for small images). ``run_check``: let
    pyuvdata check each object (default: only for small arrays).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = Time(start) if start is not None else Time.now()
    plans, dec = plan_groups(
        n_groups, t_start, dec_deg, calibrator=calibrator, epochs=epochs, epoch_spacing_days=epoch_spacing_days
    )
    sbs = tuple(range(N_SUBBANDS)) if subbands is None else tuple(sorted(set(subbands)))
    if not sbs or any(not 0 <= s < N_SUBBANDS for s in sbs):
        raise SimulationError(f"subbands must be within 0..{N_SUBBANDS - 1}")
    if n_channels < 2:
        raise SimulationError("n_channels must be >= 2")
    array = dsa110_array(n_ants, core_only=core_only)
    check = run_check if run_check is not None else array.n_ants <= 16
    telescope = _telescope(array)
    ant1_idx, ant2_idx = np.triu_indices(array.n_ants)  # autos included, ant1 <= ant2
    antpairs = np.stack([array.antenna_numbers[ant1_idx], array.antenna_numbers[ant2_idx]], axis=1)
    freqs = band_frequencies_hz(n_channels)  # ascending, uniform
    chan_w = channel_width_hz(n_channels)
    rng_noise = np.random.default_rng([seed & 0xFFFFFFFF, 1])

    # ---- the sky: synthetic catalogue over the RA range of all groups, merged with any saved one
    mids = [p.start + (TILE_DURATION_S / 2.0) * u.s for p in plans]
    ra_mids = meridian_ra_deg(Time(mids), dec)
    cat_path = out / CATALOGUE_FILE
    injected: dict[str, str] = {}
    if catalogue is None:
        margin = min(180.0, 10.0 / max(math.cos(math.radians(min(abs(dec) + 8.0, 89.0))), 0.02))
        span = _ra_span(ra_mids)
        ra_range = (span[0] - margin, span[1] + margin) if span[1] - span[0] + 2 * margin < 360 else (0.0, 360.0)
        sky = cat.make_catalogue(dec, (ra_range[0] % 360.0, ra_range[1] % 360.0), seed=seed)
        if cat_path.exists():
            sky = cat.merge(cat.load_catalogue(cat_path), sky)
    else:
        sky = catalogue
    if n_ese or n_variable:
        sky, injected = _inject(sky, plans, mids, float(ra_mids[0]), dec, n_ese, n_variable, ese_start_mjd, ese_duration_days)
    if catalogue is None or injected:
        cat.save_catalogue(sky, cat_path)
    elif not cat_path.exists():
        cat.save_catalogue(sky, cat_path)
    cals = load_calibrators() if include_calibrators else []

    groups: list[SimGroup] = []
    for plan, mid, ra_mid in zip(plans, mids, ra_mids, strict=True):
        times = _group_times(plan.start)
        t_obj = Time(times, format="jd", scale="utc")
        mid_mjd = float(Time(mid).mjd)
        ra_edges = meridian_ra_deg(Time([times[0], times[-1]], format="jd"), dec)
        ra_range = (float(ra_edges[0]), float(ra_edges[1]))
        # sky through the beam
        srcs = _sky_for_group(sky, cals, mid_mjd, float(ra_mid), dec, freqs)
        point = pointing_enu(mid, dec)
        s_enu, flux = np.zeros((times.size, 0, 3)), np.zeros((0, freqs.size))
        if srcs:
            s_enu = enu_directions(np.array([s.ra_deg for s in srcs]), np.array([s.dec_deg for s in srcs]), t_obj)
            flux = np.stack([s.flux_jy for s in srcs], axis=0)  # (Ns, Nf)
            # keep sources whose apparent flux reaches min_apparent_jy at some time and channel
            # (tested on a coarse grid of channels; sources below the horizon are dropped)
            sin_t = _sin_offset(s_enu, point)  # (Nt, Ns)
            probe = np.linspace(0, freqs.size - 1, 9).astype(int)
            b_probe = airy_beam_fast(np.arcsin(sin_t)[:, None, :], freqs[probe][None, :, None])
            app = b_probe * flux[:, probe].T[None] * (s_enu[:, None, :, 2] > 0)
            keep = app.max(axis=(0, 1)) >= min_apparent_jy
            s_enu, flux = s_enu[:, keep, :], flux[keep]
        n_src = int(s_enu.shape[1])
        g = true_gains(seed, array.antenna_numbers, times, freqs)
        gfull = g.full().astype(np.complex64) if gains else np.ones((times.size, array.n_ants, freqs.size, 2), np.complex64)
        rfi_lines = _rfi_lines(seed, freqs.size) if rfi else None
        nbl = ant1_idx.size
        data = np.empty((times.size, nbl, freqs.size, 2), dtype=np.complex64)
        sigma = SEFD_JY / math.sqrt(2.0 * chan_w * INTEGRATION_TIME_S)
        zeros = np.zeros((2, nbl, freqs.size), dtype=np.complex64) if not noise else None
        for ti in range(times.size):
            sin_t = _sin_offset(s_enu[ti][None], point)[0]
            weights = airy_beam_fast(np.arcsin(sin_t)[None, :], freqs[:, None]) * flux.T  # (Nf, Ns)
            v = sky_visibilities(array.enu, s_enu[ti], weights, freqs, ant1_idx, ant2_idx)
            if rfi_lines is not None:
                v += _rfi_vis(seed, times[ti], rfi_lines, array.n_ants, ant1_idx, ant2_idx, freqs.size)
            if zeros is None:
                nz = rng_noise.standard_normal((2, nbl, freqs.size, 2), dtype=np.float32).view(np.complex64)[..., 0]
            else:
                nz = zeros
            _corrupt(v, nz, sigma, np.ascontiguousarray(gfull[ti]), ant1_idx, ant2_idx, SEFD_JY, data[ti])
        # ---- write the subband files
        files = []
        jit = np.random.default_rng([seed & 0xFFFFFFFF, 2, round(plan.start.jd * 86400)])
        offsets = np.round(jit.uniform(-jitter_s, jitter_s, N_SUBBANDS)).astype(int) if jitter_s > 0 else np.zeros(N_SUBBANDS, int)
        group_id = file_timestamp(plan.start)
        extra: dict[str, object] = {
            "dsa_group": group_id,
            "phase_center_dec": math.radians(dec),
            "pointing_dec_deg": dec,
            "sim_seed": int(seed),
            "sim_n_sources": n_src,
        }
        for sb in sbs:
            f_sb = subband_frequencies_hz(sb, n_channels)  # descending
            idx = np.searchsorted(freqs, f_sb)
            lo, hi = int(idx.min()), int(idx.max()) + 1
            block = data[:, :, lo:hi, :][:, :, ::-1, :].reshape(times.size * nbl, n_channels, 2)
            ts = file_timestamp(plan.start + int(offsets[sb]) * u.s)
            path = out / subband_filename(ts, sb)
            _write_subband(
                path,
                telescope,
                times,
                antpairs,
                f_sb,
                chan_w,
                np.ascontiguousarray(block),
                {**extra, "subband": sb},
                "uncalib" if gains else "Jy",
                check,
            )
            files.append(str(path))
        gains_path = out / f"gains_{group_id}.npz"
        g.save(gains_path)
        cal_here = calibrators_in_tile(ra_range, dec)
        groups.append(
            SimGroup(
                group_id=group_id,
                files=tuple(files),
                subbands=sbs,
                start_isot=str(plan.start.isot),
                mid_mjd=mid_mjd,
                ra_range_deg=ra_range,
                dec_deg=dec,
                calibrator=cal_here[0].name if cal_here else None,
                gains_file=str(gains_path),
                n_sources=n_src,
            )
        )
    manifest = _write_manifest(out, groups, seed, n_ants, n_channels, injected)
    return SimResult(out, groups, cat_path, manifest, injected)


def _sin_offset(s_enu: np.ndarray, point: np.ndarray) -> np.ndarray:
    """sin of the angle between directions (..., 3) and the pointing; 1 behind the dish."""
    cos_t = np.clip(s_enu @ point, -1.0, 1.0)
    return np.where(cos_t > 0, np.sqrt(1.0 - cos_t**2), 1.0)


def _ra_span(ras: np.ndarray) -> tuple[float, float]:
    """Smallest [lo, hi] (hi may exceed 360) covering the RAs in order of time."""
    r = np.unwrap(np.radians(np.asarray(ras, dtype=float)))
    d = np.degrees(r)
    return float(d.min()), float(d.max())


def _inject(
    sky: cat.Catalogue,
    plans: list[GroupPlan],
    mids: list[Time],
    ra_first: float,
    dec: float,
    n_ese: int,
    n_variable: int,
    ese_start_mjd: float | None,
    ese_duration_days: float | None,
) -> tuple[cat.Catalogue, dict[str, str]]:
    """Give the brightest sources in the first group's beam (≤ 1.2° from centre) variability."""
    sep_limit = math.radians(1.2)
    ra, de, flux, _ = sky.arrays()
    sep = angular_separation(np.radians(ra), np.radians(de), math.radians(ra_first), math.radians(dec))
    order = [i for i in np.argsort(-flux) if sep[i] <= sep_limit and flux[i] >= 0.02]
    if len(order) < n_ese + n_variable:
        raise SimulationError(
            f"only {len(order)} sources above 20 mJy within 1.2 deg of the first tile's centre; "
            f"cannot inject {n_ese} ESEs and {n_variable} variables"
        )
    mjds = [float(Time(m).mjd) for m in mids]
    t0, t1 = min(mjds), max(mjds)
    span = t1 - t0
    n_ep = len({round(m - t0) for m in mjds})  # epochs (nights)
    if n_ep > 1:
        # the first epochs are quiescent; the dip starts half an epoch-spacing before epoch k1
        # and ends half a spacing after epoch k2 (k1 = N // 3 or 1, k2 = N - 1 - N // 3)
        step = span / (n_ep - 1)
        k1 = max(1, n_ep // 3)
        k2 = max(k1, n_ep - 1 - n_ep // 3)
        default_start = t0 + (k1 - 0.5) * step
        default_dur = (k2 - k1 + 1) * step
    else:
        default_dur = 1.0
        default_start = t0 + span / 2.0 - default_dur / 2.0
    dur = ese_duration_days if ese_duration_days is not None else default_dur
    start = ese_start_mjd if ese_start_mjd is not None else default_start
    curves: dict[str, cat.LightCurve] = {}
    injected: dict[str, str] = {}
    for k, i in enumerate(order[: n_ese + n_variable]):
        name = sky.sources[i].name
        if k < n_ese:
            curves[name] = cat.ese_lightcurve(start, dur)
            injected[name] = "ese"
        else:
            curves[name] = cat.sinusoid_lightcurve(t0, 0.25, max(span / 2.0, 1.0))
            injected[name] = "sinusoid"
    del plans
    return cat.with_lightcurves(sky, curves), injected


def _rfi_lines(seed: int, nf: int) -> list[tuple[int, float]]:
    """Persistent narrowband transmitters: (channel, amplitude Jy), ~1 % of the channels."""
    r = np.random.default_rng([seed & 0xFFFFFFFF, 3])
    n = max(1, nf // 100)
    chans = r.choice(nf, size=n, replace=False)
    amps = r.uniform(50.0, 500.0, n)
    return [(int(c), float(a)) for c, a in zip(chans, amps, strict=True)]


def _rfi_vis(
    seed: int,
    t_jd: float,
    lines: list[tuple[int, float]],
    na: int,
    ant1: np.ndarray,
    ant2: np.ndarray,
    nf: int,
) -> np.ndarray:
    """An RFI contribution: each line on ~70 % of integrations, random per-antenna phases."""
    r = np.random.default_rng([seed & 0xFFFFFFFF, 4, round(t_jd * 86400)])
    out = np.zeros((ant1.size, nf), dtype=np.complex64)
    for ch, amp in lines:
        if r.random() > 0.7:
            continue
        ph = np.exp(1j * r.uniform(0, 2 * np.pi, na))
        out[:, ch] += (amp * ph[ant1].conj() * ph[ant2]).astype(np.complex64)
    return out


def _write_manifest(
    out: Path, groups: list[SimGroup], seed: int, n_ants: int, n_channels: int, injected: dict[str, str]
) -> Path:
    path = out / MANIFEST_FILE
    doc: dict[str, object] = {"groups": {}}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = {"groups": {}}
    gdoc = doc.setdefault("groups", {})
    assert isinstance(gdoc, dict)
    for g in groups:
        d = asdict(g)
        d["files"] = [Path(f).name for f in g.files]
        d["gains_file"] = Path(g.gains_file).name
        gdoc[g.group_id] = d
    doc.update({"seed": seed, "n_ants": n_ants, "n_channels": n_channels, "catalogue": CATALOGUE_FILE})
    inj = doc.setdefault("injected", {})
    assert isinstance(inj, dict)
    inj.update(injected)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return path


def load_manifest(out_dir: Path | str) -> dict[str, object]:
    """The ``simulation.json`` manifest of a simulation directory."""
    return dict(json.loads((Path(out_dir) / MANIFEST_FILE).read_text()))


__all__ = [
    "SimGroup",
    "SimResult",
    "SimulationError",
    "file_timestamp",
    "load_manifest",
    "plan_groups",
    "simulate",
    "sky_visibilities",
    "subband_filename",
]

