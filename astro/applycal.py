"""Choosing calibration sets for a group, interpolating them, and applying them to visibilities.

Selection: a set is *valid* for time t when t lies inside its validity window [mjd_start, mjd_end]
(the calibrator observation +- 12 h by default) and |t - mjd_mid| <= max_sep_hours.  Among the
valid sets the nearest one at or before t and the nearest one at or after t are chosen.  With
both, gains are interpolated linearly in time between the two sets' mid-times, amplitude and phase
separately (phase along the shorter arc); with one, it is used alone; with none,
`NoCalibrationError` is raised - a group is never imaged uncalibrated silently.

A set's gain at time t is its bandpass times its time gain: the G table interpolated in time inside
the set's own observation, and the vector mean of the G table outside it.

Applying: V_ij <- V_ij / (g_i conj(g_j)) per polarisation (X gains for XX, Y gains for YY, and
the cross-hands with the matching pair); visibilities touching a flagged or zero gain are flagged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numba
import numpy as np
import numpy.typing as npt

from astro.caltables import CalSet, CalTableError, read_calset, read_manifest
from astro.msio import CORR_NAMES, SECONDS_PER_DAY, VisData

#: a data time this close to the first or last solution is inside the table (times written and read
#: back through float64 columns, or a solution time that is the mean of its integrations)
TIME_TOLERANCE_S = 0.01


class NoCalibrationError(ValueError):
    """No valid calibration set exists for the data's time."""


def find_calsets(roots: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Calibration set directories: each root is either a set itself or a directory of sets."""
    out: list[Path] = []
    for r in roots:
        p = Path(r)
        if (p / "calset.json").is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(sorted(q.parent for q in p.glob("*/calset.json")))
    return out


def select_calsets(
    calset_dirs: Iterable[str | os.PathLike[str]], mjd: float, max_sep_hours: float = 12.0
) -> list[Path]:
    """The one or two set directories to use for time `mjd` (nearest before and/or after)."""
    before: tuple[float, Path] | None = None
    after: tuple[float, Path] | None = None
    for d in find_calsets(calset_dirs):
        try:
            m = read_manifest(d)
        except CalTableError:
            continue
        mid = float(m["mjd_mid"])
        if not (float(m["mjd_start"]) <= mjd <= float(m["mjd_end"])):
            continue
        if abs(mid - mjd) > max_sep_hours / 24.0:
            continue
        if mid <= mjd and (before is None or mid > before[0]):
            before = (mid, d)
        if mid >= mjd and (after is None or mid < after[0]):
            after = (mid, d)
    chosen = [x[1] for x in (before, after) if x is not None]
    if not chosen:
        raise NoCalibrationError(f"no valid calibration set within {max_sep_hours:g} h of MJD {mjd:.5f}")
    if len(chosen) == 2 and chosen[0] == chosen[1]:
        chosen = chosen[:1]
    return chosen


def choose_calsets(calset_root: str, mjd: float, max_sep_hours: float) -> list[str]:
    """The one or two sets to apply at `mjd` (nearest valid before and/or after); [] when none.

    Shared by the calibrator (which assigns sets to waiting groups) and the imager (which needs them
    for a job): the same rule in both.
    """
    try:
        return [os.fspath(p) for p in select_calsets([calset_root], mjd, max_sep_hours)]
    except NoCalibrationError:
        return []


def _interp_complex(
    g1: npt.NDArray[np.complex128], g2: npt.NDArray[np.complex128], x: npt.NDArray[np.float64] | float
) -> npt.NDArray[np.complex128]:
    """Linear interpolation in amplitude and phase (shorter arc), x=0 -> g1, x=1 -> g2."""
    a = (1 - x) * np.abs(g1) + x * np.abs(g2)
    dphi = np.angle(g2 * np.conj(g1))
    return np.asarray(a * np.exp(1j * (np.angle(g1) + x * dphi)), np.complex128)


def _set_time_gain(cs: CalSet, t_sec: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.bool_]]:
    """G of one set at times t_sec: [nt, nant, npol]."""
    gt, g, gf = cs.gain_times, cs.gains, cs.gain_flags
    gz = np.where(gf, 0, g)
    cnt = np.maximum((~gf).sum(axis=0), 1)
    mean = gz.sum(axis=0) / cnt
    mean_flag = np.all(gf, axis=0)
    out = np.empty((t_sec.size, *g.shape[1:]), np.complex128)
    fl = np.empty((t_sec.size, *g.shape[1:]), bool)
    for k, t in enumerate(t_sec):
        if gt.size >= 2 and gt[0] - TIME_TOLERANCE_S <= t <= gt[-1] + TIME_TOLERANCE_S:
            i = int(np.clip(np.searchsorted(gt, t) - 1, 0, gt.size - 2))
            x = float(np.clip((t - gt[i]) / max(gt[i + 1] - gt[i], 1e-9), 0.0, 1.0))
            out[k] = _interp_complex(g[i], g[i + 1], x)
            fl[k] = gf[i] | gf[i + 1]
        else:
            out[k] = mean
            fl[k] = mean_flag
    return out, fl


def _match_axes(
    cs: CalSet, antenna_names: Sequence[str], freq: npt.NDArray[np.float64], pols: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.complex128], npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Map a set onto the data's antennas, channels and polarisations.

    Returns (antenna index in the set or -1 [nant], bandpass on the data channels [nant_set, nchan,
    npol_set], its flags, set pol index per data feed [2]).
    """
    idx = {n: i for i, n in enumerate(cs.antenna_names)}
    amap = np.array([idx.get(n, -1) for n in antenna_names], np.int64)
    bp, bf = cs.bandpass, cs.bandpass_flags
    if cs.freq.size == freq.size and np.allclose(cs.freq, freq, rtol=0, atol=1.0):
        b, f = bp, bf
    else:
        # per-antenna linear interpolation in amplitude and unwrapped phase; outside -> flagged
        lo, hi = cs.freq.min(), cs.freq.max()
        half = float(np.median(np.abs(np.diff(cs.freq)))) / 2 if cs.freq.size > 1 else 1.0
        b = np.empty((bp.shape[0], freq.size, bp.shape[2]), np.complex128)
        f = np.empty((bp.shape[0], freq.size, bp.shape[2]), bool)
        order = np.argsort(cs.freq)
        fs = cs.freq[order]
        for a in range(bp.shape[0]):
            for p in range(bp.shape[2]):
                ok = ~bf[a, order, p]
                if ok.sum() < 2:
                    b[a, :, p] = 1
                    f[a, :, p] = True
                    continue
                amp = np.interp(freq, fs[ok], np.abs(bp[a, order, p][ok]))
                ph = np.interp(freq, fs[ok], np.unwrap(np.angle(bp[a, order, p][ok])))
                b[a, :, p] = amp * np.exp(1j * ph)
                f[a, :, p] = (freq < lo - half) | (freq > hi + half)
    set_pols = [str(p) for p in cs.manifest.get("pols", ["XX", "YY"])]
    feeds: list[int] = []
    for hand in (0, 1):
        want = [p for p in pols if len(p) == 2 and p[0] == p[1]]
        name = want[min(hand, len(want) - 1)] if want else "XX"
        feeds.append(set_pols.index(name) if name in set_pols else min(hand, len(set_pols) - 1))
    return amap, b, f, np.array(feeds, np.int64)


def interpolate_calibration(
    calset_dirs: Sequence[str | os.PathLike[str]] | Sequence[CalSet],
    time_sec: npt.NDArray[np.float64],
    antenna_names: Sequence[str],
    freq: npt.NDArray[np.float64],
    pols: Sequence[str] = ("XX", "YY"),
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.bool_]]:
    """Per-feed gains [ntime, nant, nchan, 2] (feed 0 = X/R, feed 1 = Y/L) and flags for the data.

    `calset_dirs` are the (one or two) chosen sets, e.g. from `select_calsets`.
    """
    sets = [c if isinstance(c, CalSet) else read_calset(c) for c in calset_dirs]
    if not sets:
        raise NoCalibrationError("no calibration set given")
    sets.sort(key=lambda c: c.mjd_mid)
    nt, nant, nchan = time_sec.size, len(antenna_names), freq.size
    per_set = []
    for cs in sets:
        amap, bp, bf, feeds = _match_axes(cs, antenna_names, freq, pols)
        gt, gtf = _set_time_gain(cs, time_sec)  # [nt, nant_set, npol_set]
        g = np.ones((nt, nant, nchan, 2), np.complex128)
        f = np.ones((nt, nant, nchan, 2), bool)
        ok = amap >= 0
        src = amap[ok]
        for h in (0, 1):
            p = feeds[h]
            gh = g[..., h]  # views [nt, nant, nchan]
            fh = f[..., h]
            gh[:, ok, :] = bp[src][None, :, :, p] * gt[:, src, p][:, :, None]
            fh[:, ok, :] = bf[src][None, :, :, p] | gtf[:, src, p][:, :, None]
        per_set.append((cs.mjd_mid * SECONDS_PER_DAY, g, f))
    if len(per_set) == 1:
        return per_set[0][1], per_set[0][2]
    (t1, g1, f1), (t2, g2, f2) = per_set[0], per_set[-1]
    x = np.clip((time_sec - t1) / max(t2 - t1, 1e-9), 0.0, 1.0)[:, None, None, None]
    return _interp_complex(g1, g2, x), f1 | f2


@numba.njit(parallel=True, cache=True)
def _apply_kernel(
    vis: npt.NDArray[np.complex64],
    flags: npt.NDArray[np.bool_],
    gains: npt.NDArray[np.complex128],
    gflags: npt.NDArray[np.bool_],
    ant1: npt.NDArray[np.int32],
    ant2: npt.NDArray[np.int32],
    feed1: npt.NDArray[np.int64],
    feed2: npt.NDArray[np.int64],
) -> None:  # pragma: no cover - compiled
    ntime, nbl, nchan, npol = vis.shape
    for tb in numba.prange(ntime * nbl):
        t = tb // nbl
        b = tb % nbl
        tg = t if gains.shape[0] > 1 else 0
        i = ant1[b]
        j = ant2[b]
        for c in range(nchan):
            for p in range(npol):
                gi = gains[tg, i, c, feed1[p]]
                gj = gains[tg, j, c, feed2[p]]
                den = gi * np.conj(gj)
                a2 = den.real * den.real + den.imag * den.imag
                if gflags[tg, i, c, feed1[p]] or gflags[tg, j, c, feed2[p]] or a2 == 0.0:
                    flags[t, b, c, p] = True
                    vis[t, b, c, p] = 0
                else:
                    vis[t, b, c, p] = np.complex64(vis[t, b, c, p] * np.conj(den) / a2)


def feed_indices(corr_types: Sequence[int]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each correlation, the feed index (0 or 1) of its first and second antenna."""
    f1, f2 = [], []
    for c in corr_types:
        name = CORR_NAMES.get(int(c), "XX")
        f1.append(0 if name[0] in "XR" else 1)
        f2.append(0 if name[1] in "XR" else 1)
    return np.array(f1, np.int64), np.array(f2, np.int64)


def apply_gains(
    vis: npt.NDArray[np.complex64],
    flags: npt.NDArray[np.bool_],
    gains: npt.NDArray[np.complex128],
    gain_flags: npt.NDArray[np.bool_],
    ant1: npt.NDArray[np.integer],
    ant2: npt.NDArray[np.integer],
    corr_types: Sequence[int] = (9, 12),
) -> None:
    """In place: V_ij /= g_i conj(g_j). gains/gain_flags are [ntime or 1, nant, nchan, 2 feeds]."""
    f1, f2 = feed_indices(corr_types)
    _apply_kernel(
        vis, flags, np.ascontiguousarray(gains, np.complex128), np.ascontiguousarray(gain_flags, bool),
        np.ascontiguousarray(ant1, np.int32), np.ascontiguousarray(ant2, np.int32), f1, f2,
    )


def calibrate(
    data: VisData, calset_dirs: Sequence[str | os.PathLike[str]], max_sep_hours: float = 12.0
) -> list[Path]:
    """Choose, interpolate and apply calibration to `data` in place; returns the sets used.

    Raises `NoCalibrationError` when no set is valid for the data's mid-time.
    """
    mjd_mid = float(np.mean(data.time)) / SECONDS_PER_DAY
    chosen = select_calsets(calset_dirs, mjd_mid, max_sep_hours)
    pols = [CORR_NAMES.get(c, "XX") for c in data.corr_types]
    g, gf = interpolate_calibration(chosen, data.time, data.antenna_names, data.freq, pols)
    apply_gains(data.vis, data.flags, g, gf, data.ant1, data.ant2, data.corr_types)
    return chosen
