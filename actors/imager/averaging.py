"""Baseline-dependent averaging: fewer visibilities for the gridder, the same smearing budget.

Why: ducc0's gridding time is mostly proportional to the number of rows it is given (at full
size a call is 3.4 s, 2.3 s with half the rows; the rest is the FFTs and w-screens of the grid),
and CLEAN calls it eight times. DSA-110's baselines are mostly short (median ~220 m against
2.6 km for the longest), and a short baseline's (u, v) moves slowly as the Earth turns: averaging
k of its integrations smears a source at angle θ from the phase centre by the fringe phase of
the track it covers, k·|Δuvw|·sinθ·ν/c cycles, as one integration of the longest baseline does.
So each baseline's consecutive integrations are averaged together, as many as keep the bin's
decorrelation, 1 − sinc(k·|Δuvw|·sinθ·ν_max/c), at the primary beam's half-power radius within
a budget (default 1 %). At full size that leaves ~45 % of the rows; the longest baselines keep
every integration.

Time, not frequency: the gridder is fastest on whole rows of channels (one (u, v, w) scaled by
each channel's frequency); averaging channels instead, into rows of their own or by masking the
others, saved little or nothing (3.4 s a call every channel, 3.7 s as single-channel rows,
2.9 s masked, against 2.3 s for half the rows).

The bins are fixed for an image: the imaging weights do not change between CLEAN's cycles. A
bin's visibility in each channel is the weighted mean of its integrations, its weight their sum,
and its (u, v, w) the weighted mean of theirs, which is where the gridder puts it: the dirty
image and PSF of the bins are those of the integrations gridded at the bin centre. The gridder's
inverse, degridding, predicts one row per bin, which `expand` gives every integration of the bin
(`average(expand(x)) == x`): residuals made from them and averaged again are exactly the residuals
of the averaged data, so CLEAN's major cycle stays consistent, and self-calibration, peeling and
field peeling keep working on the [time × baseline, channel] rows they know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from astro.primary_beam import C_M_S, fwhm_rad


def max_integrations(
    step_m: npt.NDArray[np.float64], radius_rad: float, freq_max_hz: float, budget: float
) -> npt.NDArray[np.int64]:
    """The most consecutive integrations each baseline may average (>= 1), given how far its
    (u, v, w) moves in one integration (`step_m`, metres), with the decorrelation of the bin,
    1 - sinc(k step sin(r) ν/c), at `radius_rad` and the highest frequency at most `budget`."""
    if budget <= 0 or radius_rad <= 0:
        return np.ones(step_m.shape, np.int64)
    # the fringe spread in cycles where 1 - sinc(x) = budget (sinc falls monotonically to x = 1)
    x_max = brentq(lambda x: 1.0 - np.sinc(x) - budget, 0.0, 1.0) if budget < 1.0 else 1.0
    per_integration = np.maximum(step_m, 1e-12) * np.sin(radius_rad) * freq_max_hz / C_M_S
    return np.maximum(np.floor(x_max / per_integration), 1).astype(np.int64)


@dataclass(frozen=True)
class BaselineAveraging:
    """Bins of consecutive integrations per baseline of [time × baseline, channel] rows (see the
    module docstring).

    Bin `o` averages the rows ``members[start[o]:start[o + 1]]``; row `r` is in bin `bin_of[r]`.
    `uvw` [nbin, 3] (metres) and `weight` [nbin, nchan] are the bins' centres and summed imaging
    weights: grid them with the channels' own frequencies.
    """

    bin_of: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    members: npt.NDArray[np.int64]
    uvw: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float32]
    #: the per-row imaging weights the bins were made with (what `average` weights by)
    row_weight: npt.NDArray[np.float32]

    @property
    def nbin(self) -> int:
        return int(self.start.size - 1)

    @property
    def fraction(self) -> float:
        """Bins per original row."""
        return self.nbin / max(self.bin_of.size, 1)

    def average(self, vis: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """[nbin, nchan]: each bin's weighted mean of `vis` [row, channel] (0 where it has no weight)."""
        out = np.empty(self.weight.shape, np.complex64)
        _average(np.ascontiguousarray(vis, np.complex64), self.row_weight, self.start, self.members, self.weight, out)
        return out

    def expand(self, binned: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """[row, channel]: every row takes its bin's values from `binned` [nbin, nchan]."""
        out = np.empty(self.row_weight.shape, np.complex64)
        _expand(np.ascontiguousarray(binned, np.complex64), self.bin_of, out)
        return out


def plan(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: npt.NDArray[np.float64],
    wgt: npt.NDArray[np.float32],
    ntime: int,
    radius_rad: float,
    budget: float,
) -> BaselineAveraging:
    """Bins for visibilities at `uvw_m` [ntime × nbl, 3] (metres, time-major) and `freq_hz`
    [channel] with imaging weights `wgt` [row, channel], decorrelating at most `budget` at
    `radius_rad`."""
    nrow = uvw_m.shape[0]
    if ntime < 1 or nrow % ntime:
        raise ValueError(f"{nrow} rows are not {ntime} integrations of the same baselines")
    nbl = nrow // ntime
    tracks = np.asarray(uvw_m, np.float64).reshape(ntime, nbl, 3)
    if ntime > 1:
        step = np.linalg.norm(np.diff(tracks, axis=0), axis=2).mean(axis=0)
    else:
        step = np.full(nbl, np.inf)
    factor = np.minimum(max_integrations(step, radius_rad, float(np.max(freq_hz)), budget), ntime)
    # bins of each baseline: integrations [g·k, (g+1)·k); numbered baseline by baseline
    per_bl = -(-ntime // factor)
    first = np.zeros(nbl + 1, np.int64)
    np.cumsum(per_bl, out=first[1:])
    t = np.repeat(np.arange(ntime), nbl)
    bl = np.tile(np.arange(nbl), ntime)
    bin_of = first[bl] + t // factor[bl]
    members = np.argsort(bin_of, kind="stable").astype(np.int64)
    start = np.zeros(int(first[-1]) + 1, np.int64)
    np.cumsum(np.bincount(bin_of, minlength=int(first[-1])), out=start[1:])
    w = np.ascontiguousarray(wgt, np.float32)
    uvw = np.empty((int(first[-1]), 3), np.float64)
    weight = np.empty((int(first[-1]), w.shape[1]), np.float32)
    _centres(np.ascontiguousarray(uvw_m, np.float64), w, start, members, uvw, weight)
    return BaselineAveraging(bin_of, start, members, uvw, weight, w)


def half_power_radius(freq_hz: npt.NDArray[np.float64], dish_diameter_m: float) -> float:
    """The primary beam's half-power radius at the lowest frequency (where it is widest), radians."""
    return float(fwhm_rad(float(np.min(freq_hz)), dish_diameter_m)) / 2.0


@numba.njit(parallel=True, cache=True)
def _centres(uvw_m, wgt, start, members, out_uvw, out_w):  # type: ignore[no-untyped-def]
    nchan = wgt.shape[1]
    for o in numba.prange(start.size - 1):
        for c in range(nchan):
            out_w[o, c] = 0.0
        su = 0.0
        sv = 0.0
        sw_ = 0.0
        total = 0.0
        for i in range(start[o], start[o + 1]):
            r = members[i]
            rw = 0.0
            for c in range(nchan):
                out_w[o, c] += wgt[r, c]
                rw += wgt[r, c]
            su += rw * uvw_m[r, 0]
            sv += rw * uvw_m[r, 1]
            sw_ += rw * uvw_m[r, 2]
            total += rw
        if total > 0.0:
            out_uvw[o, 0] = su / total
            out_uvw[o, 1] = sv / total
            out_uvw[o, 2] = sw_ / total
        else:
            n = start[o + 1] - start[o]
            for a in range(3):
                acc = 0.0
                for i in range(start[o], start[o + 1]):
                    acc += uvw_m[members[i], a]
                out_uvw[o, a] = acc / n


@numba.njit(parallel=True, cache=True)
def _average(vis, wgt, start, members, bin_w, out):  # type: ignore[no-untyped-def]
    nchan = wgt.shape[1]
    for o in numba.prange(start.size - 1):
        for c in range(nchan):
            out[o, c] = 0.0
        for i in range(start[o], start[o + 1]):  # whole rows: contiguous channels
            r = members[i]
            for c in range(nchan):
                out[o, c] += wgt[r, c] * vis[r, c]
        for c in range(nchan):
            sw = bin_w[o, c]
            if sw > 0.0:
                out[o, c] /= sw
            else:
                out[o, c] = 0.0


@numba.njit(parallel=True, cache=True)
def _expand(binned, bin_of, out):  # type: ignore[no-untyped-def]
    nrow, nchan = out.shape
    for r in numba.prange(nrow):
        o = bin_of[r]
        for c in range(nchan):
            out[r, c] = binned[o, c]
