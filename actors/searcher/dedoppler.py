"""Taylor-tree de-Doppler search, numba-compiled and cache-blocked.

Convention (stated in every result)
-----------------------------------
The time axis is zero-padded to ``N = 2**ceil(log2(ntime))`` rows.  A drift index ``d`` is a straight
line that moves ``d`` channels over the ``N − 1`` padded sample intervals, so the drift-rate resolution is
``Δf / ((N − 1)·t_samp)`` Hz/s (Δf the channel width in Hz) — the convention of turboSETI 2.x.  A path
is labelled by the channel it occupies at the **first** time step; ``d > 0`` moves up in frequency.

Drift indices beyond ``N − 1`` are reached as turboSETI does, in blocks: for block ``b`` every row ``t``
is pre-shifted by ``b·t`` channels and a Taylor tree over ``N`` rows then adds ``r = 0..N−1``, giving
``d = b·(N − 1) + r``.  Negative drifts run the same kernel on the frequency-reversed chunk.

Kernel
------
:func:`dedoppler_max` never materialises the ``(ndrift, nchan)`` plane.  The channel axis is cut into
tiles whose two ping-pong buffers (``2·N·(tile + N − 1)`` float32) stay in L2; for each tile every drift
block is loaded, the ``log2 N`` tree stages run in place on the small buffers (contiguous adds that
LLVM vectorises), and a running maximum over drifts (value and drift index) is kept per channel.  The
work is ``~(2·D/(N−1))·N·log2(N)·nchan`` additions (a few billion for 2^20 channels × 16 steps at
±4 Hz/s) but memory traffic is one pass over the chunk per block, from cache.

Parallelism: numba ``prange`` over the tiles, i.e. both cores share every coarse channel.  This was
chosen over a process pool across coarse channels because (a) a 2^20-channel file *is* one coarse
channel, which a pool could not split; (b) memory stays at one coarse channel instead of one per worker;
(c) there is no pickling of 64 MB chunks between processes; and (d) the GIL is released, so the next
coarse channel can be read while the kernel runs.  The effect is the same as "parallel over coarse
channels": all cores are busy on every chunk.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt

__all__ = [
    "dedoppler_max",
    "dedoppler_plane",
    "drift_resolution",
    "n_padded",
    "search_chunk",
    "taylor_path",
]

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]

MAX_DRIFT_LIMIT = 50.0  # Hz/s


def n_padded(ntime: int) -> int:
    """Time steps after zero-padding to a power of two."""
    return 1 << max(1, math.ceil(math.log2(max(2, ntime))))


def drift_resolution(df_hz: float, tsamp: float, ntime: int) -> float:
    """Drift-rate resolution Δf / ((N − 1)·t_samp) in Hz/s, with N the padded number of time steps."""
    return abs(df_hz) / ((n_padded(ntime) - 1) * tsamp)


def _tile_for(n: int) -> int:
    # Two buffers of n × (tile + n − 1) float32 in ~512 KiB of the 2 MiB per-core L2.
    target = (512 * 1024) // (2 * 4 * n)
    return max(64, target - n)


@nb.njit(cache=True, nogil=True)
def _tree_tile(data: FloatArray, f0: int, tw: int, b: int, a: FloatArray, c: FloatArray) -> FloatArray:
    """Load the tile (block shift b) into ``a`` and run the Taylor tree; returns the buffer holding row r =
    drift r, valid in columns [0, tw)."""
    n, nc = data.shape
    w = tw + n - 1
    for t in range(n):
        s = f0 + b * t
        stop = min(w, nc - s) if s < nc else 0
        row = a[t, :w]
        if stop > 0:
            src = data[t, s : s + stop]
            for j in range(stop):
                row[j] = src[j]
        for j in range(max(stop, 0), w):
            row[j] = 0.0
    src_buf = a
    dst_buf = c
    m = 1
    width = w
    while m < n:
        neww = width - m
        for g in range(0, n, 2 * m):
            for r in range(2 * m):
                rh = r // 2
                sh = r - rh
                ra = src_buf[g + rh, :neww]
                rb = src_buf[g + m + rh, sh : sh + neww]
                out = dst_buf[g + r, :neww]
                for j in range(neww):
                    out[j] = ra[j] + rb[j]
        src_buf, dst_buf = dst_buf, src_buf
        m *= 2
        width = neww
    return src_buf


@nb.njit(cache=True, nogil=True)
def _block_max(data: FloatArray, f0: int, tw: int, b: int, a: FloatArray, c: FloatArray,
               lb: FloatArray, ld: IntArray, dmax: int) -> None:
    """One drift block on one tile, fused: the load is folded into the first tree stage and the running
    maximum into the last, so the tile makes log2(N) − 1 passes through cache instead of log2(N) + 2.
    ``data`` must carry enough zero columns on the right that no read leaves it."""
    n = data.shape[0]
    w = tw + n - 1
    # stage 1 (pairs of rows), straight from the chunk with the block shift b·t
    wid = w - 1
    for g in range(0, n, 2):
        s0 = f0 + b * g
        s1 = f0 + b * (g + 1)
        x = data[g, s0 : s0 + wid]
        y0 = data[g + 1, s1 : s1 + wid]
        y1 = data[g + 1, s1 + 1 : s1 + 1 + wid]
        o0 = a[g, :wid]
        o1 = a[g + 1, :wid]
        for j in range(wid):
            o0[j] = x[j] + y0[j]
        for j in range(wid):
            o1[j] = x[j] + y1[j]
    src_buf = a
    dst_buf = c
    m = 2
    while m < n // 2:
        neww = wid - m
        for g in range(0, n, 2 * m):
            for r in range(2 * m):
                rh = r // 2
                sh = r - rh
                ra = src_buf[g + rh, :neww]
                rb = src_buf[g + m + rh, sh : sh + neww]
                out = dst_buf[g + r, :neww]
                for j in range(neww):
                    out[j] = ra[j] + rb[j]
        src_buf, dst_buf = dst_buf, src_buf
        m *= 2
        wid = neww
    dbase = b * (n - 1)
    if n == 2:
        for r in range(2):
            d = dbase + r
            if d > dmax:
                break
            row = src_buf[r, :tw]
            for j in range(tw):
                v = row[j]
                o = lb[j]
                gt = v > o
                lb[j] = v if gt else o
                ld[j] = d if gt else ld[j]
        return
    # last stage (m = n/2) fused with the maximum over drifts
    m = n // 2
    for r in range(n):
        d = dbase + r
        if d > dmax:
            break
        rh = r // 2
        sh = r - rh
        ra = src_buf[rh, :tw]
        rb = src_buf[m + rh, sh : sh + tw]
        for j in range(tw):
            v = ra[j] + rb[j]
            o = lb[j]
            gt = v > o
            lb[j] = v if gt else o
            ld[j] = d if gt else ld[j]


@nb.njit(parallel=True, cache=True, nogil=True)
def _dedoppler_max_kernel(data: FloatArray, dmax: int, tile: int, nc: int) -> tuple[FloatArray, IntArray]:
    n = data.shape[0]
    nblocks = dmax // (n - 1) + 1
    ntiles = (nc + tile - 1) // tile
    best = np.empty(nc, dtype=np.float32)
    bestd = np.empty(nc, dtype=np.int32)
    for it in nb.prange(ntiles):
        f0 = it * tile
        tw = min(tile, nc - f0)
        w = tw + n - 1
        a = np.empty((n, w), dtype=np.float32)
        c = np.empty((n, w), dtype=np.float32)
        lb = np.full(tw, -np.inf, dtype=np.float32)
        ld = np.zeros(tw, dtype=np.int32)
        for b in range(nblocks):
            _block_max(data, f0, tw, b, a, c, lb, ld, dmax)
        best[f0 : f0 + tw] = lb
        bestd[f0 : f0 + tw] = ld
    return best, bestd


@nb.njit(cache=True, nogil=True)
def _dedoppler_plane_kernel(data: FloatArray, dmax: int) -> FloatArray:
    n, nc = data.shape
    out = np.empty((dmax + 1, nc), dtype=np.float32)
    a = np.empty((n, nc + n - 1), dtype=np.float32)
    c = np.empty((n, nc + n - 1), dtype=np.float32)
    for b in range(dmax // (n - 1) + 1):
        res = _tree_tile(data, 0, nc, b, a, c)
        for r in range(n):
            d = b * (n - 1) + r
            if d > dmax:
                break
            out[d] = res[r, :nc]
    return out


def _pad(data: npt.NDArray[np.floating], n: int) -> FloatArray:
    out = np.zeros((n, data.shape[1]), dtype=np.float32)
    out[: data.shape[0]] = data
    return out


def dedoppler_max(data: npt.NDArray[np.floating], dmax: int) -> tuple[FloatArray, IntArray]:
    """Best path sum over drift indices ``-dmax..dmax`` for each start channel.

    ``data`` is (ntime, nchan), ascending frequency, already centred (paths that leave the chunk see
    zeros).  Returns ``(best, drift_index)``, ties going to the positive/smaller drift.
    """
    n = n_padded(data.shape[0])
    nc = data.shape[1]
    extra = (dmax // (n - 1) + 1) * (n - 1) + 2 * n  # zero columns so that no path reads past the end
    padded = np.zeros((n, nc + extra), dtype=np.float32)
    padded[: data.shape[0], :nc] = data
    tile = _tile_for(n)
    bp, dp = _dedoppler_max_kernel(padded, dmax, tile, nc)
    padded[: data.shape[0], :nc] = data[:, ::-1]
    bn, dn = _dedoppler_max_kernel(padded, dmax, tile, nc)
    bn, dn = bn[::-1], dn[::-1]
    take = bn > bp
    best = np.where(take, bn, bp)
    drift = np.where(take, -dn, dp).astype(np.int32)
    return best, drift


def dedoppler_plane(data: npt.NDArray[np.floating], dmax: int) -> FloatArray:
    """The full (2·dmax + 1, nchan) plane, rows ``d = -dmax..dmax`` — reference and tests only."""
    n = n_padded(data.shape[0])
    padded = _pad(data, n)
    pos = _dedoppler_plane_kernel(padded, dmax)
    neg = _dedoppler_plane_kernel(np.ascontiguousarray(padded[:, ::-1]), dmax)[:, ::-1]
    return np.concatenate([neg[:0:-1], pos], axis=0)


def taylor_path(n: int, d: int) -> npt.NDArray[np.int64]:
    """Channel offsets, per padded time step, of the tree path with drift index ``d`` (either sign)."""
    sign = -1 if d < 0 else 1
    d = abs(d)
    b, r = divmod(d, n - 1)
    if b and r == 0:  # d = b(N-1) is also block b-1's last row; both give the same line.
        b, r = b - 1, n - 1

    def rec(m: int, rr: int) -> list[int]:
        if m == 1:
            return [0]
        half = rec(m // 2, rr // 2)
        sh = rr - rr // 2
        return half + [sh + x for x in half]

    offs = np.asarray(rec(n, r), dtype=np.int64) + b * np.arange(n, dtype=np.int64)
    return sign * offs


def search_chunk(data: npt.NDArray[np.floating], dmax: int) -> tuple[FloatArray, IntArray]:
    """Alias of :func:`dedoppler_max` for callers that think in chunks."""
    return dedoppler_max(data, dmax)
