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
:func:`dedoppler_best` never materialises the ``(ndrift, nchan)`` plane and keeps no drift index.  The
channel axis is cut into tiles of :data:`TILE` channels (the parallel work items); each tile is copied
once, mirrored, into a buffer with margins, so that both drift signs run the same positive-drift code
on the same tile while it is in cache, with no bounds checks and no padded copy of the chunk (positive
drifts read the chunk itself, except on the two edge tiles, which get a zero-margined copy).  Each tile is walked in sub-tiles of :data:`SUB` channels whose two ping-pong tree buffers
(``2·N·(SUB + N − 1)`` float32, 34 KiB for N = 16) stay in L1; for every drift block the first tree
stage reads the shifted rows straight from the tile copy, the middle stages run in the small buffers
(contiguous adds that LLVM vectorises) and the last stage is fused with the running maximum, using
``max_r (A + B_r) = A + max_r B_r`` for the two outputs that share a left operand.  The work is
``~2·(D/(N−1))·N·log2(N)·nchan`` additions (a few billion for 2^20 channels × 16 steps at ±4 Hz/s).
The drift index is recovered afterwards, by :func:`drifts_at`, only for the channels that matter (the
local maxima above threshold): the same tree on a one-channel tile, hence bitwise the same sums.

Parallelism: numba ``prange`` over the tiles, i.e. both cores share every coarse channel.  This was
chosen over a process pool across coarse channels because (a) a 2^20-channel file *is* one coarse
channel, which a pool could not split; (b) memory stays at one coarse channel instead of one per worker;
(c) there is no pickling of 64 MB chunks between processes; and (d) the GIL is released, so the next
coarse channel can be read while the kernel runs.  The effect is the same as "parallel over coarse
channels": all cores are busy on every chunk.
"""

from __future__ import annotations

import functools
import math

import numba as nb
import numpy as np
import numpy.typing as npt

__all__ = [
    "dedoppler_best",
    "dedoppler_max",
    "dedoppler_plane",
    "drift_resolution",
    "drifts_at",
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


TILE = 8192  # channels per parallel work item (its two mirrored copies live in L2)
VEC = 32  # stage widths are rounded up to this many columns (vector loops without scalar remainders)
SUB = 240  # channels per sub-tile: the two ping-pong tree buffers (2·N·(SUB + N + VEC) float32) stay in L1


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
def _block_best(
    src: FloatArray, f0: int, tw: int, b: int, a: FloatArray, c: FloatArray, lb: FloatArray, dmax: int
) -> None:
    """One drift block on one sub-tile, value only: ``lb[j] = max(lb[j], best path sum of the block)``.

    The first stage reads ``src`` with the block shift ``b·t``; for N ≥ 16 the first two stages are
    fused per group of four rows (the pair sums stay in registers: 10 loads, 10 adds and 4 stores for
    four outputs instead of 16 loads, 8 adds and 8 stores).  Every stage runs over a width rounded up
    to :data:`VEC` columns (no scalar remainder loops; the extra columns are never used).  For N ≥ 8 the
    last two stages are fused with the maximum: with G0..G3 the four groups of N/4 rows, drift
    ``r`` is ``A_k + B_k(+k or k+1)`` with ``k = r // 2``, ``A_k = G0 + G1(+…)``, ``B_k = G2 + G3(+…)``,
    and the two drifts sharing ``A_k`` are maximised as ``A_k + max(B, B')`` — the same additions in
    the same order as the plain tree (so bitwise the same sums), with one pass over the buffers
    instead of two and no drift index stored.  ``n ≥ 4``."""
    n = src.shape[0]
    wid = ((tw + n - 1 + VEC - 1) // VEC) * VEC
    dbase = b * (n - 1)
    full = dbase + n - 1 <= dmax
    if n >= 16:
        # the first two stages fused, per group of four rows, the pair sums kept in registers
        for g in range(0, n, 4):
            s0 = f0 + b * g
            s1 = s0 + b
            s2 = s1 + b
            s3 = s2 + b
            w0 = src[g, s0 : s0 + wid]
            w1 = src[g + 1, s1 : s1 + wid + 1]
            w2 = src[g + 2, s2 : s2 + wid + 2]
            w3 = src[g + 3, s3 : s3 + wid + 3]
            o0 = a[g, :wid]
            o1 = a[g + 1, :wid]
            o2 = a[g + 2, :wid]
            o3 = a[g + 3, :wid]
            for j in range(wid):
                x0 = w0[j]
                p0 = x0 + w1[j]
                p1 = x0 + w1[j + 1]
                x2 = w2[j + 1]
                o0[j] = p0 + (w2[j] + w3[j])
                o1[j] = p0 + (x2 + w3[j + 1])
                o2[j] = p1 + (x2 + w3[j + 2])
                o3[j] = p1 + (w2[j + 2] + w3[j + 3])
        src_buf = a
        dst_buf = c
        m = 4
    else:
        for g in range(0, n, 2):
            s0 = f0 + b * g
            s1 = f0 + b * (g + 1)
            x = src[g, s0 : s0 + wid]
            y0 = src[g + 1, s1 : s1 + wid]
            y1 = src[g + 1, s1 + 1 : s1 + 1 + wid]
            o0 = a[g, :wid]
            o1 = a[g + 1, :wid]
            for j in range(wid):
                o0[j] = x[j] + y0[j]
            for j in range(wid):
                o1[j] = x[j] + y1[j]
        src_buf = a
        dst_buf = c
        m = 2
    stop = n // 4 if (full and n >= 8) else n // 2
    while m < stop:
        for g in range(0, n, 2 * m):
            for r in range(2 * m):
                rh = r // 2
                sh = r - rh
                ra = src_buf[g + rh, :wid]
                rb = src_buf[g + m + rh, sh : sh + wid]
                out = dst_buf[g + r, :wid]
                for j in range(wid):
                    out[j] = ra[j] + rb[j]
        src_buf, dst_buf = dst_buf, src_buf
        m *= 2
    tv = ((tw + VEC - 1) // VEC) * VEC
    if full and n >= 8:
        # the last two stages fused with the maximum: groups G0..G3 of q = N/4 rows (row h = drift h)
        q = n // 4
        sb = src_buf
        for h in range(q):
            r0 = h
            r1 = q + h
            r2 = 2 * q + h
            r3 = 3 * q + h
            for j in range(tv):
                g0 = sb[r0, j]
                a0 = g0 + sb[r1, j + h]
                a1 = g0 + sb[r1, j + h + 1]
                u0 = sb[r2, j + 2 * h] + sb[r3, j + 3 * h]
                u1 = sb[r2, j + 2 * h + 1] + sb[r3, j + 3 * h + 1]
                u2 = sb[r2, j + 2 * h + 1] + sb[r3, j + 3 * h + 2]
                u3 = sb[r2, j + 2 * h + 2] + sb[r3, j + 3 * h + 3]
                s0 = a0 + (u0 if u0 > u1 else u1)
                s1 = a1 + (u2 if u2 > u3 else u3)
                sm = s1 if s1 > s0 else s0
                o = lb[j]
                lb[j] = sm if sm > o else o
        return
    m = n // 2
    if full:
        for k in range(m):
            ra = src_buf[k, :tv]
            rb = src_buf[m + k, k : k + tv + 1]
            for j in range(tv):
                u = rb[j]
                v = rb[j + 1]
                s = ra[j] + (u if u > v else v)
                o = lb[j]
                lb[j] = s if s > o else o
    else:  # the last, partial block: rows r ≤ dmax − dbase only
        for r in range(dmax - dbase + 1):
            rh = r // 2
            sh = r - rh
            ra = src_buf[rh, :tv]
            rb = src_buf[m + rh, sh : sh + tv]
            for j in range(tv):
                s = ra[j] + rb[j]
                o = lb[j]
                lb[j] = s if s > o else o


@nb.njit(cache=True, nogil=True)
def _block_best_small(
    src: FloatArray, f0: int, tw: int, b: int, a: FloatArray, c: FloatArray, lb: FloatArray, dmax: int
) -> None:
    """:func:`_block_best` for N = 2 (no room for fusion): the plain tree, then the maximum."""
    n = src.shape[0]
    res = _tree_tile_at(src, f0, tw, b, a, c)
    for r in range(n):
        d = b * (n - 1) + r
        if d > dmax:
            break
        row = res[r, :tw]
        for j in range(tw):
            s = row[j]
            o = lb[j]
            lb[j] = s if s > o else o


@nb.njit(cache=True, nogil=True)
def _tree_tile_at(src: FloatArray, f0: int, tw: int, b: int, a: FloatArray, c: FloatArray) -> FloatArray:
    """The plain tree for start columns ``f0 .. f0 + tw − 1`` of ``src`` (which has room on the right);
    returns the buffer whose row r holds drift ``b·(N − 1) + r`` in columns [0, tw)."""
    n = src.shape[0]
    w = tw + n - 1
    for t in range(n):
        s = f0 + b * t
        row = a[t, :w]
        srow = src[t, s : s + w]
        for j in range(w):
            row[j] = srow[j]
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
def _load_tiles(data: FloatArray, f0: int, tw: int, margin: int, L: FloatArray, R: FloatArray) -> None:
    """``L[t, l]`` = chunk column ``f0 − margin + l`` (zero outside the chunk and for padded rows) and
    ``R`` the same, mirrored: positive drifts on ``R`` are negative drifts of the chunk."""
    nt, nc = data.shape
    n, wl = L.shape
    lo = max(0, f0 - margin)
    hi = min(nc, f0 + tw + margin)
    off = lo - (f0 - margin)
    for t in range(n):
        ll = L[t]
        rr = R[t]
        if t < nt:
            for j in range(off):
                ll[j] = 0.0
            src = data[t, lo:hi]
            for j in range(hi - lo):
                ll[off + j] = src[j]
            for j in range(off + hi - lo, wl):
                ll[j] = 0.0
            for k in range(wl):
                rr[k] = ll[wl - 1 - k]
        else:
            for j in range(wl):
                ll[j] = 0.0
                rr[j] = 0.0


@nb.njit(cache=True, nogil=True)
def _load_mirror(data: FloatArray, f0: int, margin: int, R: FloatArray) -> None:
    """:func:`_load_tiles`' ``R`` alone, for a tile whose margins lie inside the chunk."""
    n, wl = R.shape
    base = f0 - margin + wl - 1
    for t in range(n):
        rr = R[t]
        src = data[t]
        for k in range(wl):
            rr[k] = src[base - k]


@nb.njit(parallel=True, cache=True, nogil=True)
def _dedoppler_best_kernel(data: FloatArray, n: int, dmax: int, tile: int, sub: int) -> FloatArray:
    """Best path sum over drifts ``−dmax..dmax`` per start channel; both signs in one pass per tile."""
    nc = data.shape[1]
    nbl = dmax // (n - 1) + 1
    margin = nbl * (n - 1) + n + 2 * VEC
    best = np.empty(nc, dtype=np.float32)
    ntiles = (nc + tile - 1) // tile
    for it in nb.prange(ntiles):
        f0 = it * tile
        tw = min(tile, nc - f0)
        R = np.empty((n, tw + 2 * margin), dtype=np.float32)
        if data.shape[0] == n and f0 >= margin and f0 + tw + margin <= nc:
            # interior tile: positive drifts read the chunk itself, only the mirror is copied
            L = data
            base = f0
            _load_mirror(data, f0, margin, R)
        else:
            L = np.empty((n, tw + 2 * margin), dtype=np.float32)
            base = margin
            _load_tiles(data, f0, tw, margin, L, R)
        wbuf = ((sub + n - 1 + VEC - 1) // VEC) * VEC + n + VEC
        a = np.zeros((n, wbuf), dtype=np.float32)
        c = np.zeros((n, wbuf), dtype=np.float32)
        lbp = np.empty(sub + VEC, dtype=np.float32)
        lbn = np.empty(sub + VEC, dtype=np.float32)
        for s0 in range(0, tw, sub):
            sw = min(sub, tw - s0)
            for j in range(sub + VEC):
                lbp[j] = -np.inf
                lbn[j] = -np.inf
            f_neg = margin + tw - s0 - sw
            for b in range(nbl):
                if n >= 4:
                    _block_best(L, base + s0, sw, b, a, c, lbp, dmax)
                    _block_best(R, f_neg, sw, b, a, c, lbn, dmax)
                else:
                    _block_best_small(L, base + s0, sw, b, a, c, lbp, dmax)
                    _block_best_small(R, f_neg, sw, b, a, c, lbn, dmax)
            out = best[f0 + s0 : f0 + s0 + sw]
            for j in range(sw):
                p = lbp[j]
                q = lbn[sw - 1 - j]
                out[j] = q if q > p else p
    return best


@nb.njit(cache=True, nogil=True, inline="always")
def _path_sum(data: FloatArray, offs_d: npt.NDArray[np.int64], i: int, sign: int, buf: FloatArray) -> float:
    """The sum of one drift path from start column ``i``, over the channels ``i + sign * offs_d[t]``, in
    the tree's own order (pairs of time steps, then pairs of pairs, ...), so it is bitwise the search
    kernel's; ``buf`` (the padded number of time steps) is scratch. Off the data counts as zero."""
    nt, nc = data.shape
    n = buf.size
    for t in range(n):
        col = i + sign * offs_d[t]
        buf[t] = data[t, col] if (t < nt and 0 <= col < nc) else np.float32(0.0)
    m = 1
    while m < n:
        for g in range(0, n, 2 * m):
            buf[g] = buf[g] + buf[g + m]
        m *= 2
    return buf[0]


@nb.njit(parallel=True, cache=True, nogil=True)
def _drifts_at_kernel(
    data: FloatArray, n: int, offs: npt.NDArray[np.int64], cols: npt.NDArray[np.int64]
) -> tuple[FloatArray, IntArray]:
    """Best path sum and its drift index at the given start columns.  Each path is summed over its
    ``offs[d]`` channels in the tree's own order (pairs of time steps, then pairs of pairs, …), so the
    sums are bitwise those of the search kernel.  Ties go to the positive sign, then to the smaller
    |d|."""
    dmax = offs.shape[0] - 1
    vals = np.empty(cols.size, dtype=np.float32)
    drifts = np.empty(cols.size, dtype=np.int32)
    for q in nb.prange(cols.size):
        buf = np.empty(n, dtype=np.float32)
        i = cols[q]
        bv = np.float32(-np.inf)
        bd = 0
        for sign in (1, -1):
            for d in range(dmax + 1):
                v = _path_sum(data, offs[d], i, sign, buf)
                if v > bv:
                    bv = v
                    bd = sign * d
        vals[q] = bv
        drifts[q] = bd
    return vals, drifts


@nb.njit(parallel=True, cache=True, nogil=True)
def _count_above_kernel(
    data: FloatArray, n: int, offs: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], lim: float, twice_upto: int
) -> npt.NDArray[np.int64]:
    """For each start column, how many of its non-zero drift paths (both signs, ``1..dmax``) sum to more
    than ``lim``; the sums are bitwise those of the search kernel (the same order as ``_drifts_at_kernel``).
    A drift that is a multiple of ``n - 1`` up to ``twice_upto`` counts twice (see :func:`cells_above`)."""
    dmax = offs.shape[0] - 1
    counts = np.zeros(cols.size, dtype=np.int64)
    for q in nb.prange(cols.size):
        buf = np.empty(n, dtype=np.float32)
        i = cols[q]
        k = 0
        for sign in (1, -1):
            for d in range(1, dmax + 1):
                if _path_sum(data, offs[d], i, sign, buf) > lim:
                    k += 2 if (d % (n - 1) == 0 and d <= twice_upto) else 1
        counts[q] = k
    return counts


@functools.lru_cache(maxsize=16)
def _offsets_table(n: int, dmax: int) -> npt.NDArray[np.int64]:
    """``taylor_path(n, d)`` for ``d = 0..dmax``, as a (dmax + 1, n) table (block shift plus the tree's
    own offsets, which only depend on ``d`` modulo the block)."""
    tree = np.stack([taylor_path(n, r) for r in range(n)]).astype(np.int64)
    d = np.arange(dmax + 1)
    b, r = np.divmod(d, n - 1)
    wrap = (b > 0) & (r == 0)  # d = b(N-1) is also block b-1's last row (taylor_path's choice)
    b[wrap] -= 1
    r[wrap] = n - 1
    return b[:, None] * np.arange(n, dtype=np.int64)[None, :] + tree[r]


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


def dedoppler_best(data: npt.NDArray[np.floating], dmax: int) -> FloatArray:
    """Best path sum over drift indices ``-dmax..dmax`` for each start channel (value only).

    ``data`` is (ntime, nchan), ascending frequency, already centred (paths that leave the chunk see
    zeros).  Use :func:`drifts_at` for the drift of the few channels that matter.
    """
    x = np.ascontiguousarray(data, dtype=np.float32)
    n = n_padded(x.shape[0])
    if x.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    return _dedoppler_best_kernel(x, n, int(dmax), TILE, SUB)


def drifts_at(data: npt.NDArray[np.floating], dmax: int, cols: npt.ArrayLike) -> tuple[FloatArray, IntArray]:
    """``(best, drift_index)`` at the start channels ``cols``: the same sums as :func:`dedoppler_best`,
    ties going to the positive sign, then to the smaller |drift|."""
    x = np.ascontiguousarray(data, dtype=np.float32)
    c = np.asarray(cols, dtype=np.int64).ravel()
    n = n_padded(x.shape[0])
    return _drifts_at_kernel(x, n, _offsets_table(n, int(dmax)), c)


def cells_above(data: npt.NDArray[np.floating], dmax: int, lim: float, best: FloatArray | None = None) -> int:
    """How many (start channel, drift) cells with a non-zero drift sum to more than ``lim``: turboSETI's
    ``Full_number_of_hits``, to the count.

    turboSETI's ``hitsearch`` counts every such cell and skips zero drift (its ``min_drift``). It walks
    the drifts in blocks of ``tsteps`` rows that overlap by one (block ``b`` holds drifts
    ``(tsteps - 1)·b … (tsteps - 1)·b + tsteps - 1``), so a drift on a block boundary, up to the last
    block it searches (``max_drift // (resolution · tsteps)``), is searched and counted twice; this
    count does the same, so the ``.dat`` column matches turboSETI's (checked in bench/bench_dedoppler.py).
    Only channels whose best path exceeds ``lim`` can hold such a cell, so with ``best`` (from
    :func:`dedoppler_best`) only those few are re-summed over every drift.
    """
    x = np.ascontiguousarray(data, dtype=np.float32)
    if best is None:
        best = dedoppler_best(x, dmax)
    cols = np.flatnonzero(best > np.float32(lim)).astype(np.int64)
    if cols.size == 0 or dmax < 1:
        return 0
    n = n_padded(x.shape[0])
    twice_upto = (n - 1) * (int(dmax) // x.shape[0])
    return int(_count_above_kernel(x, n, _offsets_table(n, int(dmax)), cols, float(lim), twice_upto).sum())


def dedoppler_max(data: npt.NDArray[np.floating], dmax: int) -> tuple[FloatArray, IntArray]:
    """Best path sum over drift indices ``-dmax..dmax`` and its drift, for every start channel.

    Reference and tests: the drift of every channel costs a tree per channel; the search itself uses
    :func:`dedoppler_best` and :func:`drifts_at` on its candidates.
    """
    best = dedoppler_best(data, dmax)
    _, drift = drifts_at(data, dmax, np.arange(best.size))
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
