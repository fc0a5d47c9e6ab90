"""Hit finding on one coarse channel: SNR as turboSETI computes it, local maxima, hit features.

SNR
---
For each coarse channel the *integrated spectrum* ``S`` (the sum over time, i.e. the zero-drift path
sums) gives ``median = percentile(S, 50)`` and ``std = std(S[p5 ≤ S ≤ p95])``, exactly turboSETI's
``comp_stats`` (the percentiles exact, by bracketed selection rather than a sort).  Every path sum ``P`` has ``SNR = (P − median) / std``.  Because the 5–95 % trimmed
standard deviation of Gaussian noise is 0.789 σ, an SNR of 10 is a 7.89 σ excursion.

DC spike
--------
FFT-based coarse channels carry a spike in their central bin (file-order index ``n // 2``).  Before
anything else that column is replaced by the mean of its two neighbours (turboSETI's ``blank_dc``).

Hits
----
For each start channel the best SNR over all drifts ``−D..D`` is kept (value only; the drift of the
few local maxima is recovered afterwards).  A channel is a hit when its best SNR is at least ``min_snr``
and no channel within ``±window`` has a larger one (ties go to the lower channel); only channels above
the threshold can matter, so the windowed maximum runs over those alone.  The default window is turboSETI's ``2·ceil(max_drift / drift_resolution)``
channels: two hits closer than that could be one drifting signal seen twice.

Refinement
----------
A tree path is only an approximation of a straight line: a track one channel wide keeps between 11/16
and all of its power on the best tree path (median 13/16 for N = 16), and the best tree drift can be
up to two bins off.  So local maxima are taken at ``0.65 × min_snr`` on the tree's SNR, and each is
refined by :func:`refine_line` — exact sums along straight tracks within ±2 channels and ±2 drift bins,
in quarter steps — and kept if its SNR reaches ``min_snr``.  ``Hit.snr`` is the tree's SNR (the number turboSETI prints
and cuts on) and ``Hit.snr_refined`` the straight track's (about 5 % higher).  The threshold applies to
``snr`` unless ``cut_on="refined"``, so that a hit list matches turboSETI's near the threshold.

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

import math
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt

from .dedoppler import cells_above, dedoppler_best, drifts_at, n_padded, taylor_path

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
    snr: float  # of the best tree path: turboSETI's SNR, the one printed in the .dat and cut on
    snr_refined: float = 0.0  # of the refined straight track
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

    @property
    def snr_taylor(self) -> float:
        """turboSETI's SNR (the name this field had before ``snr`` became it)."""
        return self.snr

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency_hz": round(self.frequency_hz, 3),
            "drift_rate": round(self.drift_rate, 6),
            "snr": round(self.snr, 3),
            "snr_refined": round(self.snr_refined, 3),
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


@nb.njit(cache=True, nogil=True)
def _order_pairs(x: npt.NDArray[np.float64], ks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Exact order statistics ``sorted(x)[k]`` and ``sorted(x)[k + 1]`` for each ``k`` in ``ks`` (with
    ``k + 1 < x.size``), without sorting ``x``: a sorted subsample brackets the ranks, one pass counts
    what lies below the bracket, a second gathers what lies inside it, and only the bracket (a few per
    cent of ``x``) is sorted.  Falls back to a full sort if a bracket misses (a 6σ event)."""
    n = x.size
    out = np.empty((ks.size, 2), dtype=np.float64)
    step = max(1, n // 32768)
    samp = np.sort(x[::step])
    s = samp.size
    margin = int(3.0 * math.sqrt(s)) + 16
    full = np.empty(0, dtype=np.float64)
    for q in range(ks.size):
        k = ks[q]
        r = k // step
        i0 = r - margin
        i1 = r + 1 + margin
        lo = samp[i0] if i0 > 0 else -np.inf
        hi = samp[i1] if i1 < s - 1 else np.inf
        below = 0
        inside = 0
        for j in range(n):
            v = x[j]
            below += 1 if v < lo else 0
            inside += 1 if v <= hi else 0
        inside -= below
        if below <= k and k + 1 < below + inside:
            buf = np.empty(inside + 1, dtype=np.float64)
            m = 0
            for j in range(n):  # branch-free gather
                v = x[j]
                buf[m] = v
                m += 1 if (v >= lo) & (v <= hi) else 0
            part = np.partition(buf[:inside], k - below)
            out[q, 0] = part[k - below]
            out[q, 1] = part[k + 1 - below :].min()
        else:
            if full.size == 0:
                full = np.sort(x)
            out[q, 0] = full[k]
            out[q, 1] = full[k + 1]
    return out


def _percentiles(x: npt.NDArray[np.float64], qs: tuple[float, ...]) -> list[float]:
    """``np.percentile(x, qs)`` (method "linear", bit for bit) through :func:`_order_pairs`."""
    n = x.size
    if n == 1:
        return [float(x[0])] * len(qs)
    virt = [(n - 1) * (q / 100.0) for q in qs]
    lo_i = [min(n - 2, max(0, math.floor(v))) for v in virt]
    pairs = _order_pairs(x, np.asarray(lo_i, dtype=np.int64))
    out = []
    for v, i, (a, b) in zip(virt, lo_i, pairs.tolist(), strict=True):
        g = v - i
        d = b - a
        out.append(b - d * (1 - g) if g >= 0.5 else a + d * g)
    return out


@nb.njit(cache=True, nogil=True, fastmath={"reassoc"})
def _trimmed_std(x: npt.NDArray[np.float64], lo: float, hi: float) -> float:
    s = 0.0
    m = 0
    for j in range(x.size):
        v = x[j]
        ok = (v >= lo) & (v <= hi)
        s += v if ok else 0.0
        m += ok
    if m == 0:
        return 0.0
    mean = s / m
    ss = 0.0
    for j in range(x.size):
        v = x[j]
        e = v - mean if (v >= lo) & (v <= hi) else 0.0
        ss += e * e
    return math.sqrt(ss / m)


def comp_stats(spectrum: npt.NDArray[np.floating]) -> tuple[float, float]:
    """turboSETI's statistics: the median, and the std of the values between the 5th and 95th percentile."""
    x = np.ascontiguousarray(spectrum, dtype=np.float64)
    if x.size == 0:
        return float("nan"), 0.0
    lo, med, hi = _percentiles(x, (5.0, 50.0, 95.0))
    return float(med), float(_trimmed_std(x, lo, hi))


@nb.njit(parallel=True, cache=True, nogil=True, fastmath={"reassoc"})
def _centre_and_integrate(data: FloatArray) -> npt.NDArray[np.float64]:
    """Subtract each row's mean in place (mean accumulated in float64) and return the integrated
    spectrum (the sum over time, in float64) of the centred data: two cache-blocked passes, both
    cores."""
    nt, nc = data.shape
    means = np.empty(nt, dtype=np.float32)
    for t in nb.prange(nt):
        acc = 0.0
        row = data[t]
        for j in range(nc):
            acc += row[j]
        means[t] = np.float32(acc / nc)
    integ = np.zeros(nc, dtype=np.float64)
    blk = 2048  # column blocks whose float64 sums stay in L1
    for ib in nb.prange((nc + blk - 1) // blk):
        lo = ib * blk
        hi = min(nc, lo + blk)
        acc_blk = integ[lo:hi]
        for t in range(nt):
            row = data[t, lo:hi]
            mt = means[t]
            for j in range(hi - lo):
                v = row[j] - mt
                row[j] = v
                acc_blk[j] += v
    return integ


def blank_dc(data: FloatArray, dc_col: int) -> None:
    """Replace column ``dc_col`` (in place) by the mean of its neighbours."""
    n = data.shape[1]
    if 0 < dc_col < n - 1:
        data[:, dc_col] = 0.5 * (data[:, dc_col - 1] + data[:, dc_col + 1])


@nb.njit(cache=True, nogil=True)
def _sparse_local_maxima(
    pos: npt.NDArray[np.int64], val: npt.NDArray[np.float64], window: int
) -> npt.NDArray[np.int64]:
    """Among sorted positions ``pos`` (the above-threshold channels), those whose value is the largest
    within ±window (a sliding-window maximum with a monotonic queue), then greedy suppression of later
    equal-or-weaker maxima within the window (ties go to the lower index)."""
    c = pos.size
    dq = np.empty(c, dtype=np.int64)
    head = 0
    tail = 0
    nxt = 0
    keep = np.empty(c, dtype=np.int64)
    nk = 0
    for i in range(c):
        while nxt < c and pos[nxt] <= pos[i] + window:
            while tail > head and val[dq[tail - 1]] <= val[nxt]:
                tail -= 1
            dq[tail] = nxt
            tail += 1
            nxt += 1
        while pos[dq[head]] < pos[i] - window:
            head += 1
        if val[i] >= val[dq[head]]:
            if nk > 0 and pos[i] - pos[keep[nk - 1]] <= window and val[keep[nk - 1]] >= val[i]:
                continue
            keep[nk] = i
            nk += 1
    return keep[:nk]


def local_maxima(snr: npt.NDArray[np.floating], min_snr: float, window: int) -> npt.NDArray[np.intp]:
    """Indices whose value is ≥ min_snr and the largest within ±window (ties go to the lower index)."""
    pos = np.flatnonzero(snr >= min_snr)
    if pos.size == 0:
        return np.zeros(0, dtype=np.intp)
    keep = _sparse_local_maxima(pos.astype(np.int64), snr[pos].astype(np.float64), int(window))
    return pos[keep].astype(np.intp)


def expected_false_hits(nchans: int, dmax: int, min_snr: float) -> float:
    """Upper bound on false hits from Gaussian noise (see the module docstring)."""
    p = FALSE_ALARM_PER_TRIAL.get(float(min_snr))
    if p is None:
        from scipy.stats import norm

        p = float(norm.sf(min_snr * 0.789313))
    return p * nchans * (2 * dmax + 1) * REFINE_TRIALS


def _features(data: FloatArray, row_sigma: npt.NDArray[np.float64], i: int, d: int, ntime: int) -> tuple[float, int]:
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
    cut_on: str = "taylor",
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
    integrated = _centre_and_integrate(data)
    median, std = comp_stats(integrated)
    stats = {"median": median, "std": std, "row_sigma_mean": float("nan")}
    if not np.isfinite(std) or std <= 0:
        return [], stats
    best = dedoppler_best(data, dmax)
    # turboSETI's Full_number_of_hits: every (channel, non-zero drift) cell above min_snr
    stats["cells_above"] = float(cells_above(data, dmax, median + min_snr * std, best))
    # Candidates: local maxima of the tree SNR above the threshold, found among the few channels above it.
    thr = min_snr * TAYLOR_WORST_LOSS
    lim = median + thr * std
    pos = np.flatnonzero(best >= np.float32(lim - 1e-3 * std - 1e-6 * abs(lim)))  # exact test below
    snr_pos = (best[pos].astype(np.float64) - median) / std
    above = snr_pos >= thr
    pos, snr_pos = pos[above], snr_pos[above]
    keep = _sparse_local_maxima(pos.astype(np.int64), snr_pos, int(window)) if pos.size else pos[:0]
    idx = pos[keep]
    snr_tree = snr_pos[keep]
    _, drift = drifts_at(data, dmax, idx)
    cs, dds, sums = _refine_many(data, idx.astype(np.int64), drift.astype(np.int64), dmax)
    refined: list[tuple[float, int, float, float]] = []
    for q in range(idx.size):
        s_line = (float(sums[q]) - median) / std
        if (float(snr_tree[q]) if cut_on == "taylor" else s_line) >= min_snr:
            refined.append((s_line, int(cs[q]), float(dds[q]), float(snr_tree[q])))
    row_sigma = _row_sigma(data) if refined else np.zeros(ntime)
    if refined:
        stats["row_sigma_mean"] = float(row_sigma.mean())
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
                snr=s_tree,
                snr_refined=s_line,
                drift_bins=dd,
                persistence=persistence,
                width_channels=width,
            )
        )
    hits.sort(key=lambda h: h.channel)
    return hits, stats


def _row_sigma(data: FloatArray) -> npt.NDArray[np.float64]:
    """Robust σ of each row, half the 16–84 % spread of a subsample of about 4096 channels."""
    sub = data[:, :: max(1, data.shape[1] // 4096)]
    p16, p84 = np.percentile(sub, [16, 84], axis=1)
    return np.asarray(0.5 * (p84 - p16), dtype=np.float64)


@nb.njit(cache=True, nogil=True)
def _refine_many(
    data: FloatArray, idx: npt.NDArray[np.int64], drift: npt.NDArray[np.int64], dmax: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`refine_line` for many tree hits at once (sums in float64)."""
    ntime, nc = data.shape
    n = 2
    while n < ntime:
        n *= 2
    cs = np.empty(idx.size, dtype=np.int64)
    dds = np.empty(idx.size, dtype=np.float64)
    out = np.empty(idx.size, dtype=np.float64)
    sums = np.empty((5, 4, 17), dtype=np.float64)
    col0 = np.empty((5, 4, 17), dtype=np.int64)
    deltas = np.empty(17, dtype=np.float64)
    for q in range(idx.size):
        i = idx[q]
        d = drift[q]
        nd = 0
        if dmax > 0:
            for u in range(-8, 9):
                dl = d + u * 0.25
                if abs(dl) <= dmax:
                    deltas[nd] = dl
                    nd += 1
        else:
            deltas[0] = 0.0
            nd = 1
        top = 0.0
        for si in range(5):
            st = i - 2 + si
            for pi in range(4):
                ph = pi * 0.25
                for k in range(nd):
                    acc = 0.0
                    for t in range(ntime):
                        col = np.int64(np.rint(st + ph + deltas[k] * t / (n - 1)))
                        if t == 0:
                            col0[si, pi, k] = col
                        if 0 <= col < nc:
                            acc += data[t, col]
                    sums[si, pi, k] = acc
                    top = max(top, abs(acc))
        # Prefer, among equal sums, the track closest to the tree's own answer.
        bv = -np.inf
        bs = 0
        bp = 0
        bk = 0
        for si in range(5):
            for pi in range(4):
                for k in range(nd):
                    pen = (abs(deltas[k] - d) * 1e-9 + abs(si - 2) * 1e-9) * top
                    v = sums[si, pi, k] - pen
                    if v > bv:
                        bv = v
                        bs = si
                        bp = pi
                        bk = k
        cs[q] = col0[bs, bp, bk]
        dds[q] = deltas[bk]
        out[q] = sums[bs, bp, bk]
    return cs, dds, out


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
    cols = np.rint(
        starts[:, None, None, None] + phis[None, :, None, None] + deltas[None, None, :, None] * t / (n - 1)
    ).astype(np.int64)
    ok = (cols >= 0) & (cols < nc)
    vals = np.where(ok, data[np.broadcast_to(t.astype(np.int64), cols.shape), np.clip(cols, 0, nc - 1)], 0.0)
    sums = vals.sum(axis=-1)
    # Prefer, among equal sums, the track closest to the tree's own answer.
    penalty = np.abs(deltas - d)[None, None, :] * 1e-9 + np.abs(starts - i)[:, None, None] * 1e-9
    s, p, k = np.unravel_index(int(np.argmax(sums - penalty * np.abs(sums).max())), sums.shape)
    c0 = int(cols[s, p, k, 0])
    return c0, float(deltas[k]), float(sums[s, p, k])
