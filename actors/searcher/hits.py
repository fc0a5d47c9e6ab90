"""Hit finding on one coarse channel: SNR as turboSETI computes it, local maxima, hit features.

SNR
---
For each coarse channel the *integrated spectrum* ``S`` (the sum over time, i.e. the zero-drift path
sums) gives ``median = percentile(S, 50)`` and ``std = std(S[p5 ≤ S ≤ p95])``, exactly turboSETI's
``comp_stats``.  Every path sum ``P`` has ``SNR = (P − median) / std``.  Because the 5–95 % trimmed
standard deviation of Gaussian noise is 0.789 σ, an SNR of 10 is a 7.89 σ excursion.

DC spike
--------
FFT-based coarse channels carry a spike in their central bin (file-order index ``n // 2``).  Before
anything else that column is replaced by the mean of its two neighbours (turboSETI's ``blank_dc``).

Hits
----
For each start channel the best SNR over all drifts ``−D..D`` is kept with its drift.  A channel is a
hit when its best SNR is at least ``min_snr`` and no channel within ``±window`` has a larger one (ties go
to the lower channel).  The default window is turboSETI's ``2·ceil(max_drift / drift_resolution)``
channels: two hits closer than that could be one drifting signal seen twice.

Refinement
----------
A tree path is only an approximation of a straight line: a track one channel wide keeps between 11/16
and all of its power on the best tree path (median 13/16 for N = 16), and the best tree drift can be
up to two bins off.  So local maxima are taken at ``0.65 × min_snr`` on the tree's SNR, and each is
refined by :func:`refine_line` — exact sums along straight tracks within ±2 channels and ±2 drift bins,
in quarter steps — and kept if the refined SNR reaches ``min_snr``.  ``Hit.snr`` is the refined value
and ``Hit.snr_taylor`` the tree's (the number turboSETI would print).

False-alarm rate (documented, and checked by the tests)
--------------------------------------------------------
Per (channel, drift) trial, the probability that pure noise exceeds the threshold ``T`` is

=====================================  ===========  ===========  ==========
pixel noise (16 time steps)            T = 6        T = 8        T = 10
=====================================  ===========  ===========  ==========
Gaussian (BL data: ≥ 51 FFTs/sample)   1.1e-6       1.4e-10      1.5e-15
exponential (χ², 2 dof, unaveraged)    1.6e-4       3.4e-6       5.1e-8
=====================================  ===========  ===========  ==========

so the expected number of false hits per file is at most ``p × nchans × (2D + 1) × 16`` (16 refined
tracks per tree path; trials are correlated, so this is an upper bound): for 2^20 channels and ±4 Hz/s
at BL resolution (D = 392), 2e-5 for Gaussian noise at SNR 10 — in practice none.  :data:`FALSE_ALARM_PER_TRIAL` holds the
Gaussian column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.ndimage import maximum_filter1d

from .dedoppler import dedoppler_max, n_padded, taylor_path

__all__ = [
    "FALSE_ALARM_PER_TRIAL",
    "Hit",
    "blank_dc",
    "comp_stats",
    "expected_false_hits",
    "local_maxima",
    "search_coarse_channel",
]

FALSE_ALARM_PER_TRIAL: dict[float, float] = {6.0: 1.1e-6, 8.0: 1.4e-10, 10.0: 1.5e-15}
TAYLOR_WORST_LOSS = 0.65  # tree paths keep ≥ 11/16 of a one-channel-wide straight track
REFINE_TRIALS = 16  # sub-channel starts × sub-bin drifts per tree path

FloatArray = npt.NDArray[np.float32]


@dataclass
class Hit:
    """One hit: a local maximum of de-Doppler SNR over frequency."""

    channel: int  # ascending global channel index of the path at the first time step
    coarse_channel: int  # ascending coarse channel index
    drift_index: int  # signed, in drift-resolution units
    snr: float  # of the refined straight track
    snr_taylor: float = 0.0  # of the best tree path (turboSETI's number)
    drift_bins: float = 0.0  # refined drift in units of the drift resolution
    frequency_hz: float = 0.0  # centre frequency of `channel`
    drift_rate: float = 0.0  # Hz/s (physical sign: > 0 rises in frequency)
    persistence: float = 1.0  # fraction of time steps where the path pixel is > 1σ above its row
    width_channels: int = 1  # contiguous channels above half the peak in the de-drifted spectrum
    classification: str = ""
    interestingness: float = 0.0
    confidence: float = 0.0
    rfi_source: str = ""
    source: str = "dedoppler"
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency_hz": round(self.frequency_hz, 3),
            "drift_rate": round(self.drift_rate, 6),
            "snr": round(self.snr, 3),
            "snr_taylor": round(self.snr_taylor, 3),
            "classification": self.classification,
            "interestingness": round(self.interestingness, 4),
            "rfi_source": self.rfi_source,
            "source": self.source,
            "channel": self.channel,
            "coarse_channel": self.coarse_channel,
            "drift_index": self.drift_index,
            "persistence": round(self.persistence, 4),
            "width_channels": self.width_channels,
            "confidence": round(self.confidence, 4),
            "reasons": list(self.reasons),
        }


def comp_stats(spectrum: npt.NDArray[np.floating]) -> tuple[float, float]:
    """turboSETI's statistics: the median, and the std of the values between the 5th and 95th percentile."""
    lo, med, hi = np.percentile(spectrum, [5, 50, 95])
    core = spectrum[(spectrum >= lo) & (spectrum <= hi)]
    return float(med), float(core.std()) if core.size else 0.0


def blank_dc(data: FloatArray, dc_col: int) -> None:
    """Replace column ``dc_col`` (in place) by the mean of its neighbours."""
    n = data.shape[1]
    if 0 < dc_col < n - 1:
        data[:, dc_col] = 0.5 * (data[:, dc_col - 1] + data[:, dc_col + 1])


def local_maxima(snr: npt.NDArray[np.floating], min_snr: float, window: int) -> npt.NDArray[np.intp]:
    """Indices whose value is ≥ min_snr and the largest within ±window (ties go to the lower index)."""
    if snr.size == 0:
        return np.zeros(0, dtype=np.intp)
    mx = maximum_filter1d(snr, size=2 * window + 1, mode="constant", cval=-np.inf)
    cand = np.flatnonzero((snr >= min_snr) & (snr >= mx))
    keep: list[int] = []
    for i in cand:
        if keep and i - keep[-1] <= window and snr[keep[-1]] >= snr[i]:
            continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.intp)


def expected_false_hits(nchans: int, dmax: int, min_snr: float) -> float:
    """Upper bound on false hits from Gaussian noise (see the module docstring)."""
    p = FALSE_ALARM_PER_TRIAL.get(float(min_snr))
    if p is None:
        from scipy.stats import norm

        p = float(norm.sf(min_snr * 0.789313))
    return p * nchans * (2 * dmax + 1) * REFINE_TRIALS


def _features(
    data: FloatArray, row_sigma: npt.NDArray[np.float64], i: int, d: int, ntime: int
) -> tuple[float, int]:
    """Persistence and width of the path starting at column ``i`` with drift index ``d``."""
    n = n_padded(ntime)
    nc = data.shape[1]
    offs = taylor_path(n, d)[:ntime]
    cols = i + offs
    ok = (cols >= 0) & (cols < nc)
    t = np.arange(ntime)[ok]
    vals = data[t, cols[ok]]
    sig = row_sigma[t]
    persistence = float(np.mean(vals > sig) * ok.mean()) if t.size else 0.0
    # De-drifted spectrum within ±64 channels of the path.
    half = 64
    k = np.arange(-half, half + 1)
    prof = np.zeros(k.size)
    for tt in t:
        cc = cols[tt] + k
        good = (cc >= 0) & (cc < nc)
        prof[good] += data[tt, cc[good]]
    peak = prof[half]
    width = 1
    if peak > 0:
        thr = 0.5 * peak
        j = half + 1
        while j < prof.size and prof[j] > thr:
            width += 1
            j += 1
        j = half - 1
        while j >= 0 and prof[j] > thr:
            width += 1
            j -= 1
    return persistence, width


def search_coarse_channel(
    data: FloatArray,
    *,
    dmax: int,
    min_snr: float,
    window: int,
    dc_col: int | None,
    coarse_channel: int = 0,
    channel_offset: int = 0,
) -> tuple[list[Hit], dict[str, float]]:
    """Search one coarse channel (float32 (ntime, n), ascending frequency; modified in place).

    Returns the hits (frequency and drift rate left for the caller, who knows the header) and the
    statistics ``{"median", "std", "row_sigma_mean"}``.
    """
    ntime = data.shape[0]
    if dc_col is not None:
        blank_dc(data, dc_col)
    # Centre each row on its mean: every full path shifts by the same constant (SNR unchanged), and
    # paths that run off the chunk see zeros, i.e. the mean, rather than a cliff.
    data -= data.mean(axis=1, dtype=np.float64).astype(np.float32)[:, None]
    sub = data[:, :: max(1, data.shape[1] // 65536)]
    p16, p84 = np.percentile(sub, [16, 84], axis=1)
    row_sigma = 0.5 * (p84 - p16)
    integrated = data.sum(axis=0, dtype=np.float64)
    median, std = comp_stats(integrated)
    stats = {"median": median, "std": std, "row_sigma_mean": float(row_sigma.mean())}
    if not np.isfinite(std) or std <= 0:
        return [], stats
    best, drift = dedoppler_max(data, dmax)
    snr = (best.astype(np.float64) - median) / std
    refined: list[tuple[float, int, float, float]] = []
    for i in local_maxima(snr, min_snr * TAYLOR_WORST_LOSS, window):
        c, dd, s_line = refine_line(data, int(i), int(drift[i]), dmax)
        s_line = (s_line - median) / std
        if s_line >= min_snr:
            refined.append((s_line, c, dd, float(snr[i])))
    hits: list[Hit] = []
    # Refinement may move a hit by a channel or two: keep the strongest within the window again.
    refined.sort(key=lambda x: -x[0])
    for s_line, c, dd, s_tree in refined:
        if any(abs(c - h.channel + channel_offset) <= window for h in hits):
            continue
        d_int = round(dd)
        persistence, width = _features(data, row_sigma, c, d_int, ntime)
        hits.append(
            Hit(
                channel=channel_offset + c,
                coarse_channel=coarse_channel,
                drift_index=d_int,
                snr=s_line,
                snr_taylor=s_tree,
                drift_bins=dd,
                persistence=persistence,
                width_channels=width,
            )
        )
    hits.sort(key=lambda h: h.channel)
    return hits, stats


def refine_line(data: FloatArray, i: int, d: int, dmax: int) -> tuple[int, float, float]:
    """Best straight track near the tree's (start ``i``, drift ``d``): exact line sums.

    Tracks ``col(t) = round(c + φ + δ·t/(N − 1))`` for start ``c`` within ±2 channels, sub-channel start
    ``φ`` in quarters and drift ``δ`` within ±2 bins in quarter bins (clipped to ±dmax).  Returns the
    start channel at the first time step, the drift in bins (float) and the path sum.
    """
    ntime, nc = data.shape
    n = n_padded(ntime)
    t = np.arange(ntime, dtype=np.float64)
    deltas = d + np.arange(-8, 9) * 0.25
    deltas = deltas[np.abs(deltas) <= dmax] if dmax > 0 else np.zeros(1)
    phis = np.arange(4) * 0.25
    starts = i + np.arange(-2, 3)
    # cols[s, p, k, t]
    cols = np.rint(starts[:, None, None, None] + phis[None, :, None, None]
                   + deltas[None, None, :, None] * t / (n - 1)).astype(np.int64)
    ok = (cols >= 0) & (cols < nc)
    vals = np.where(ok, data[np.broadcast_to(t.astype(np.int64), cols.shape), np.clip(cols, 0, nc - 1)], 0.0)
    sums = vals.sum(axis=-1)
    # Prefer, among equal sums, the track closest to the tree's own answer.
    penalty = np.abs(deltas - d)[None, None, :] * 1e-9 + np.abs(starts - i)[:, None, None] * 1e-9
    s, p, k = np.unravel_index(int(np.argmax(sums - penalty * np.abs(sums).max())), sums.shape)
    c0 = int(cols[s, p, k, 0])
    return c0, float(deltas[k]), float(sums[s, p, k])
