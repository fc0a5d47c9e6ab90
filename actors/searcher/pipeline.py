"""The searcher pipeline: ingest → de-Doppler → hits → classify, and the exports.

``search_file`` is pure (a path in, a :class:`SearchResult` out); the actor runs it in a worker and
turns :class:`~actors.searcher.filterbank.FilterbankError` into a failed job.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba as nb
import numpy as np
import numpy.typing as npt

from .classify import classify_hits, count_classes
from .dedoppler import MAX_DRIFT_LIMIT, drift_resolution, n_padded
from .export import write_all
from .filterbank import FilterbankError, FilterbankInfo, _Reader, coarse_channel_size, open_filterbank
from .hits import Hit, expected_false_hits, search_coarse_channel
from .result import DRIFT_CONVENTION, SNR_DEFINITION, SearchResult

__all__ = ["DRIFT_CONVENTION", "SNR_DEFINITION", "SearchResult", "search_file", "write_exports"]

@nb.njit(cache=True, nogil=True)
def _flip_row(row: npt.NDArray[np.float32], brow: npt.NDArray[np.uint32], tmp: npt.NDArray[np.float32]) -> bool:
    """Reverse ``row`` in place by mirrored blocks (through ``tmp``, in L1) and report whether it holds a
    NaN or inf (exponent bits all ones), checked on each block while it is in cache."""
    n = row.size
    blk = tmp.size
    half = n // 2
    bad = False
    for j0 in range(0, half, blk):
        m = min(blk, half - j0)
        left = row[j0 : j0 + m]
        right = row[n - j0 - m : n - j0]
        bl = brow[j0 : j0 + m]
        br = brow[n - j0 - m : n - j0]
        for i in range(m):  # an OR-reduction vectorises, an early exit would not
            bad |= ((bl[i] & 0x7F800000) == 0x7F800000) | ((br[i] & 0x7F800000) == 0x7F800000)
        for i in range(m):
            tmp[i] = left[m - 1 - i]
        for i in range(m):
            left[i] = right[m - 1 - i]
        for i in range(m):
            right[i] = tmp[i]
    if n % 2:
        bad |= (brow[half] & 0x7F800000) == 0x7F800000
    return bad


@nb.njit(parallel=True, cache=True, nogil=True)
def _check_and_flip(out: npt.NDArray[np.float32], flip: bool) -> tuple[int, int]:
    """First non-finite value ``(t, column)`` in file order, or ``(-1, -1)``; if ``flip``, every row is
    reversed in place (file order → ascending frequency) in the same pass.  Rows run on both cores."""
    nt, n = out.shape
    bits = out.view(np.uint32)
    bad_rows = np.zeros(nt, dtype=np.bool_)
    for t in nb.prange(nt):
        row = out[t]
        brow = bits[t]
        if flip:
            tmp = np.empty(2048, dtype=np.float32)
            bad = _flip_row(row, brow, tmp)
            if bad:
                _flip_row(row, brow, tmp)  # back to file order to name the first bad channel
        else:
            bad = False
            for j in range(n):
                bad |= (brow[j] & 0x7F800000) == 0x7F800000
        bad_rows[t] = bad
    for t in range(nt):
        if bad_rows[t]:
            row = out[t]
            for j in range(n):
                if not np.isfinite(row[j]):
                    return t, j
    return -1, -1


class _FastFilReader:
    """Ascending windows of a single-IF float32 ``.fil`` straight into their final array: one
    ``preadv`` per time step into the array's own memory, then one pass that checks for NaN/inf and
    flips descending bands in place (``_Reader.read_asc`` makes four passes and two copies).  The same
    errors as :mod:`.filterbank`."""

    def __init__(self, info: FilterbankInfo, if_index: int) -> None:
        self.info = info
        self.if_index = if_index
        self.fd = os.open(info.path, os.O_RDONLY)

    @staticmethod
    def applies(info: FilterbankInfo, if_index: int | None) -> bool:
        return info.fmt == "fil" and if_index is not None and info.dtype == np.dtype("<f4")

    def close(self) -> None:
        os.close(self.fd)

    def read_asc(self, a0: int, a1: int) -> npt.NDArray[np.float32]:
        info = self.info
        a0, a1 = max(0, a0), min(info.nchans, a1)
        n = max(0, a1 - a0)
        out = np.empty((info.ntime, n), dtype=np.float32)
        if n == 0:
            return out
        c0 = info.nchans - a1 if info.descending else a0
        row_bytes = info.nchans * 4
        for t in range(info.ntime):
            off = info.header_size + (t * info.nifs + self.if_index) * row_bytes + c0 * 4
            got = os.preadv(self.fd, [memoryview(out[t]).cast("B")], off)
            if got != n * 4:
                raise FilterbankError(f"truncated file: short read at time step {t}")
        bt, bc = _check_and_flip(out, info.descending)
        if bt >= 0:
            raise FilterbankError(f"data contains NaN or inf values (first at time step {bt}, file channel {c0 + bc})")
        return out


def _validate_params(max_drift: float, min_snr: float) -> None:
    if not (0.0 < max_drift <= MAX_DRIFT_LIMIT) or not math.isfinite(max_drift):
        raise ValueError(f"max_drift={max_drift} Hz/s is out of range (0, {MAX_DRIFT_LIMIT}]")
    if not (min_snr > 0.0) or not math.isfinite(min_snr):
        raise ValueError(f"min_snr={min_snr} must be a positive number")


def search_file(
    path: str | os.PathLike[str],
    *,
    max_drift: float = 4.0,
    min_snr: float = 10.0,
    progress: Callable[[int, int], None] | None = None,
    coarse_size: int | None = None,
    if_index: int | None = 0,
    dc_blank: bool = True,
    window: int | None = None,
    cut_on: str = "taylor",
) -> SearchResult:
    """Search a ``.fil`` or ``.h5`` file for narrowband drifting signals.

    ``cut_on`` is the SNR ``min_snr`` applies to: ``"taylor"`` (turboSETI's, the default) or
    ``"refined"`` (the straight-track SNR, about 5 % higher: more hits near the threshold).
    ``progress(done, total)`` is called with coarse channels searched (starting at ``(0, total)``).
    Raises :class:`~actors.searcher.filterbank.FilterbankError` for a bad file, ``ValueError`` for bad
    parameters.  Memory: about four coarse channels of float32 (reading the next one overlaps the search).
    """
    t0 = time.perf_counter()
    _validate_params(max_drift, min_snr)
    if cut_on not in ("taylor", "refined"):
        raise ValueError(f"cut_on={cut_on!r} must be 'taylor' or 'refined'")
    info = open_filterbank(path)
    n = coarse_channel_size(info.nchans, coarse_size)
    ncoarse = info.nchans // n
    res = drift_resolution(info.df_hz, info.tsamp, info.ntime)
    dmax = math.floor(max_drift / res + 1e-9)
    win = window if window is not None else 2 * math.ceil(max_drift / res)
    win = max(1, min(win, n))
    result = SearchResult(
        source_name=info.source_name,
        filename=info.path.name,
        file_format=info.fmt,
        header=dict(info.header),
        nchans=info.nchans,
        nifs=info.nifs,
        nbits=info.nbits,
        ntime=info.ntime,
        n_time_padded=n_padded(info.ntime),
        fch1_mhz=info.fch1,
        foff_mhz=info.foff,
        tsamp=info.tsamp,
        tstart=info.tstart,
        coarse_channel_size=n,
        n_coarse_channels=ncoarse,
        max_drift=max_drift,
        min_snr=min_snr,
        snr_cut_on=cut_on,
        drift_rate_resolution=res,
        dmax=dmax,
        window=win,
        expected_false_hits=expected_false_hits(info.nchans, dmax, min_snr),
    )
    if dmax == 0:
        result.warnings.append(f"drift resolution {res:.4g} Hz/s exceeds max_drift: only zero drift was searched")
    dc_col = (n - 1 - n // 2 if info.descending else n // 2) if dc_blank and n >= 3 else None
    if progress:
        progress(0, ncoarse)
    hits: list[Hit] = []
    fast = _FastFilReader(info, if_index) if if_index is not None and _FastFilReader.applies(info, if_index) else None
    try:
        with _Reader(info, if_index) as rd, ThreadPoolExecutor(1, thread_name_prefix="fb-read") as pool:
            read = fast.read_asc if fast is not None else rd.read_asc
            nxt = pool.submit(read, 0, n)
            for k in range(ncoarse):
                data = nxt.result()
                if k + 1 < ncoarse:
                    nxt = pool.submit(read, (k + 1) * n, (k + 2) * n)
                found, stats = search_coarse_channel(
                    data,
                    dmax=dmax,
                    min_snr=min_snr,
                    window=win,
                    dc_col=dc_col,
                    coarse_channel=k,
                    channel_offset=k * n,
                    cut_on=cut_on,
                )
                del data
                result.full_number_of_hits[k] = int(stats.get("cells_above", 0))
                if not stats["std"] > 0:
                    result.warnings.append(f"coarse channel {k} has no variance: not searched")
                for h in found:
                    h.frequency_hz = float(info.freq_mhz(h.channel)) * 1e6
                    h.drift_rate = h.drift_bins * res
                hits.extend(found)
                if progress:
                    progress(k + 1, ncoarse)
    finally:
        if fast is not None:
            fast.close()

    classify_hits(
        hits,
        min_snr=min_snr,
        dmax=dmax,
        coarse_size=n,
        dc_cols={k: dc_col for k in range(ncoarse)} if dc_col is not None else None,
    )
    result.hits = hits
    result.counts = count_classes(hits)
    result.processing_time_seconds = time.perf_counter() - t0
    return result


def write_exports(
    result: SearchResult,
    path_to_source_file: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    formats: Collection[str] | None = None,
) -> dict[str, Path]:
    """Write json, csv, catalog_json, classified, fits, waterfall, waterfall_thumb and dat to ``out_dir``
    (or only ``formats``)."""
    return write_all(result, path_to_source_file, out_dir, formats)
