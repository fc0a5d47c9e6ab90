"""The searcher pipeline: ingest → de-Doppler → hits → classify, and the exports.

``search_file`` is pure (a path in, a :class:`SearchResult` out); the actor runs it in a worker and
turns :class:`~actors.searcher.filterbank.FilterbankError` into a failed job.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
import numpy.typing as npt

from .classify import classify_hits, count_classes
from .dedoppler import MAX_DRIFT_LIMIT, drift_resolution, n_padded
from .filterbank import FilterbankError, FilterbankInfo, _Reader, coarse_channel_size, open_filterbank
from .hits import FALSE_ALARM_PER_TRIAL, Hit, expected_false_hits, search_coarse_channel

__all__ = ["DRIFT_CONVENTION", "SNR_DEFINITION", "SearchResult", "search_file", "write_exports"]

DRIFT_CONVENTION = (
    "Taylor tree over N_t time steps zero-padded to a power of two; drift-rate resolution = "
    "channel width / ((N_t - 1) * t_samp); drift > 0 means rising frequency; a hit's frequency is that "
    "of its track at the first time step"
)
SNR_DEFINITION = (
    "turboSETI: (path sum - median) / std, with the median and the 5-95 % trimmed standard deviation "
    "of the coarse channel's integrated spectrum"
)


@dataclass
class SearchResult:
    """Everything a search found, and how it searched.  ``to_results()`` gives the seed's dict."""

    source_name: str
    filename: str
    file_format: str
    header: dict[str, Any]
    nchans: int
    nifs: int
    nbits: int
    ntime: int
    n_time_padded: int
    fch1_mhz: float
    foff_mhz: float
    tsamp: float
    tstart: float
    coarse_channel_size: int
    n_coarse_channels: int
    max_drift: float
    min_snr: float
    drift_rate_resolution: float
    dmax: int
    window: int
    hits: list[Hit] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    processing_time_seconds: float = 0.0
    expected_false_hits: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def sorted_hits(self) -> list[Hit]:
        """Hits by interestingness, then SNR (both descending)."""
        return sorted(self.hits, key=lambda h: (-h.interestingness, -h.snr, h.channel))

    def top_candidates(self, n: int = 20) -> list[Hit]:
        return self.sorted_hits()[:n]

    def search_parameters(self) -> dict[str, Any]:
        return {
            "max_drift": self.max_drift,
            "min_snr": self.min_snr,
            "drift_rate_resolution": self.drift_rate_resolution,
            "drift_rate_convention": DRIFT_CONVENTION,
            "snr_definition": SNR_DEFINITION,
            "max_drift_index": self.dmax,
            "hit_window_channels": self.window,
            "n_time": self.ntime,
            "n_time_padded": self.n_time_padded,
            "channel_width_hz": abs(self.foff_mhz) * 1e6,
            "tsamp": self.tsamp,
            "coarse_channel_size": self.coarse_channel_size,
            "n_coarse_channels": self.n_coarse_channels,
            "expected_false_hits_gaussian": self.expected_false_hits,
            "false_alarm_per_trial_gaussian": FALSE_ALARM_PER_TRIAL,
        }

    def to_results(self, top_n: int = 20) -> dict[str, Any]:
        """The seed's ``results`` object (GET /jobs/{id}), plus the drift convention."""
        return {
            "raw_hits": self.counts.get("raw_hits", 0),
            "filtered_hits": self.counts.get("filtered_hits", 0),
            "candidates": self.counts.get("candidates", 0),
            "processing_time_seconds": round(self.processing_time_seconds, 3),
            "top_candidates": [
                {
                    k: v
                    for k, v in h.to_dict().items()
                    if k
                    in (
                        "frequency_hz",
                        "drift_rate",
                        "snr",
                        "classification",
                        "interestingness",
                        "rfi_source",
                        "source",
                    )
                }
                for h in self.top_candidates(top_n)
            ],
            "drift_rate_resolution": self.drift_rate_resolution,
            "drift_rate_convention": DRIFT_CONVENTION,
        }

    def to_dict(self) -> dict[str, Any]:
        """The full ``results.json``."""
        return {
            **self.to_results(),
            "source_name": self.source_name,
            "filename": self.filename,
            "file": {
                "format": self.file_format,
                "nchans": self.nchans,
                "nifs": self.nifs,
                "nbits": self.nbits,
                "ntime": self.ntime,
                "fch1_mhz": self.fch1_mhz,
                "foff_mhz": self.foff_mhz,
                "tsamp": self.tsamp,
                "tstart": self.tstart,
                "header": {
                    k: v
                    for k, v in self.header.items()
                    if isinstance(v, str | int | float) and not (isinstance(v, float) and not math.isfinite(v))
                },
            },
            "search": self.search_parameters(),
            "counts": self.counts,
            "hits": [h.to_dict() for h in self.sorted_hits()],
            "warnings": self.warnings,
        }


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
) -> SearchResult:
    """Search a ``.fil`` or ``.h5`` file for narrowband drifting signals.

    ``progress(done, total)`` is called with coarse channels searched (starting at ``(0, total)``).
    Raises :class:`~actors.searcher.filterbank.FilterbankError` for a bad file, ``ValueError`` for bad
    parameters.  Memory: about four coarse channels of float32 (reading the next one overlaps the search).
    """
    t0 = time.perf_counter()
    _validate_params(max_drift, min_snr)
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
                )
                del data
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
    result: SearchResult, path_to_source_file: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write json, csv, catalog_json, classified, fits, waterfall, waterfall_thumb and dat to ``out_dir``."""
    from .export import write_all

    return write_all(result, path_to_source_file, out_dir)
