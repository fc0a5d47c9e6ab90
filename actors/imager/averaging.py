"""Baseline-dependent averaging: fewer visibilities for the gridder, the same smearing budget.

Why: ducc0's gridding time is mostly proportional to the number of visibilities (1.8 s of a
3.0 s call at full size; the rest is the FFTs and w-screens of the grid), and CLEAN calls it
eight times. DSA-110's baselines are mostly short (median ~220 m against 2.6 km for the longest),
and a short baseline's fringe changes slowly across the band: averaging k of its channels
smears a source at angle θ from the phase centre by the same fringe phase, b·θ·kΔν/c cycles,
as the longest baseline's single channel does. So each baseline's channels are averaged
together in bins, as many as keep the bin's bandwidth decorrelation, 1 − sinc(b·θ·kΔν/c), at
the primary beam's half-power radius within a budget (default 1 %). At full size that is ~40 %
of the visibilities, and the channels the longest baselines already have are never widened.

The bins are fixed for an image: the imaging weights do not change between CLEAN's cycles. A
bin's visibility is the weighted mean of its channels, its weight their sum, and its (u, v, w)
in wavelengths at the weighted mean frequency, which is where the gridder puts it: the
dirty image and PSF of the bins are those of the channels gridded at the bin centre. The
gridder's inverse, degridding, predicts one value per bin, which `expand` gives every channel
of the bin (`average(expand(x)) == x`): residuals made from them and averaged again are
exactly the residuals of the averaged data, so CLEAN's major cycle stays consistent.

Only frequency is averaged: 24 integrations of a 5-minute tile leave little to gain in time,
and the rows (time × baseline) keep their layout, which self-calibration and field peeling use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from astro.primary_beam import C_M_S, fwhm_rad

#: the frequency to hand the gridder with (u, v, w) already in wavelengths: uvw·f/c = uvw
UNIT_FREQ = np.array([C_M_S], np.float64)


def max_channels(
    baseline_m: npt.NDArray[np.float64], radius_rad: float, chan_width_hz: float, budget: float
) -> npt.NDArray[np.int64]:
    """The most channels of width `chan_width_hz` each baseline may average (>= 1) with its
    bandwidth decorrelation, 1 - sinc(b sin(r) kΔν / c), at `radius_rad` at most `budget`."""
    if budget <= 0 or radius_rad <= 0 or chan_width_hz <= 0:
        return np.ones(baseline_m.shape, np.int64)
    # the fringe spread in cycles where 1 - sinc(x) = budget (sinc falls monotonically to x = 1)
    x_max = brentq(lambda x: 1.0 - np.sinc(x) - budget, 0.0, 1.0) if budget < 1.0 else 1.0
    per_channel = np.maximum(baseline_m, 1e-9) * np.sin(radius_rad) * chan_width_hz / C_M_S
    return np.maximum(np.floor(x_max / per_channel), 1).astype(np.int64)


@dataclass(frozen=True)
class BaselineAveraging:
    """Channel bins per row of a [row, channel] visibility set (see the module docstring).

    `factor[r]` channels make one bin of row r (its last bin may hold fewer); row r's bins are
    `offset[r]:offset[r + 1]`. `uvw` [nbin, 3] is each bin's centre in wavelengths, `weight`
    [nbin, 1] its summed imaging weight; grid them with ``freq=UNIT_FREQ``.
    """

    factor: npt.NDArray[np.int64]
    offset: npt.NDArray[np.int64]
    uvw: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float32]
    #: the per-channel imaging weights the bins were made with (what `average` weights by)
    channel_weight: npt.NDArray[np.float32]

    @property
    def nbin(self) -> int:
        return int(self.offset[-1])

    @property
    def fraction(self) -> float:
        """Bins per original visibility."""
        return self.nbin / max(self.channel_weight.size, 1)

    def average(self, vis: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """[nbin, 1]: each bin's weighted mean of `vis` [row, channel] (0 where the bin has no weight)."""
        out = np.empty((self.nbin, 1), np.complex64)
        _average(
            np.ascontiguousarray(vis, np.complex64), self.channel_weight, self.factor, self.offset, self.weight, out
        )
        return out

    def expand(self, binned: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
        """[row, channel]: every channel takes its bin's value from `binned` [nbin, 1]."""
        out = np.empty(self.channel_weight.shape, np.complex64)
        _expand(np.ascontiguousarray(binned, np.complex64), self.factor, self.offset, out)
        return out


def plan(
    uvw_m: npt.NDArray[np.float64],
    freq_hz: npt.NDArray[np.float64],
    wgt: npt.NDArray[np.float32],
    radius_rad: float,
    budget: float,
) -> BaselineAveraging:
    """Bins for visibilities at `uvw_m` [row, 3] (metres) and `freq_hz` [channel] (evenly spaced)
    with imaging weights `wgt` [row, channel], decorrelating at most `budget` at `radius_rad`."""
    nrow, nchan = wgt.shape
    width = float(np.median(np.abs(np.diff(freq_hz)))) if nchan > 1 else 0.0
    factor = np.minimum(max_channels(np.linalg.norm(uvw_m, axis=1), radius_rad, width, budget), nchan)
    per_row = -(-nchan // factor)
    offset = np.zeros(nrow + 1, np.int64)
    np.cumsum(per_row, out=offset[1:])
    w = np.ascontiguousarray(wgt, np.float32)
    uvw = np.empty((int(offset[-1]), 3), np.float64)
    weight = np.empty((int(offset[-1]), 1), np.float32)
    _centres(
        np.ascontiguousarray(uvw_m, np.float64),
        np.ascontiguousarray(freq_hz, np.float64),
        w,
        factor,
        offset,
        uvw,
        weight,
    )
    return BaselineAveraging(factor, offset, uvw, weight, w)


def half_power_radius(freq_hz: npt.NDArray[np.float64], dish_diameter_m: float) -> float:
    """The primary beam's half-power radius at the lowest frequency (where it is widest), radians."""
    return float(fwhm_rad(float(np.min(freq_hz)), dish_diameter_m)) / 2.0


@numba.njit(parallel=True, cache=True)
def _centres(uvw_m, freq, wgt, factor, offset, out_uvw, out_w):  # type: ignore[no-untyped-def]
    nrow, nchan = wgt.shape
    for r in numba.prange(nrow):
        k = factor[r]
        for j in range(offset[r + 1] - offset[r]):
            c0 = j * k
            c1 = min(c0 + k, nchan)
            sw = 0.0
            sf = 0.0
            for c in range(c0, c1):
                sw += wgt[r, c]
                sf += wgt[r, c] * freq[c]
            if sw > 0.0:
                f = sf / sw
            else:
                f = 0.0
                for c in range(c0, c1):
                    f += freq[c]
                f /= c1 - c0
            b = offset[r] + j
            for a in range(3):
                out_uvw[b, a] = uvw_m[r, a] * f / 299792458.0
            out_w[b, 0] = sw


@numba.njit(parallel=True, cache=True)
def _average(vis, wgt, factor, offset, bin_w, out):  # type: ignore[no-untyped-def]
    nrow, nchan = wgt.shape
    for r in numba.prange(nrow):
        k = factor[r]
        for j in range(offset[r + 1] - offset[r]):
            c0 = j * k
            c1 = min(c0 + k, nchan)
            re = 0.0
            im = 0.0
            for c in range(c0, c1):
                w = wgt[r, c]
                re += w * vis[r, c].real
                im += w * vis[r, c].imag
            b = offset[r] + j
            sw = bin_w[b, 0]
            if sw > 0.0:
                out[b, 0] = complex(re / sw, im / sw)
            else:
                out[b, 0] = 0.0


@numba.njit(parallel=True, cache=True)
def _expand(binned, factor, offset, out):  # type: ignore[no-untyped-def]
    nrow, nchan = out.shape
    for r in numba.prange(nrow):
        k = factor[r]
        b0 = offset[r]
        for c in range(nchan):
            out[r, c] = binned[b0 + c // k, 0]
