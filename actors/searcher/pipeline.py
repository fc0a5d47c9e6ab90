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

from .classify import classify_hits, count_classes
from .dedoppler import MAX_DRIFT_LIMIT, drift_resolution, n_padded
from .filterbank import _Reader, coarse_channel_size, open_filterbank
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
                {k: v for k, v in h.to_dict().items()
                 if k in ("frequency_hz", "drift_rate", "snr", "classification", "interestingness",
                          "rfi_source", "source")}
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
                "header": {k: v for k, v in self.header.items()
                           if isinstance(v, str | int | float) and not (isinstance(v, float) and
                                                                       not math.isfinite(v))},
            },
            "search": self.search_parameters(),
            "counts": self.counts,
            "hits": [h.to_dict() for h in self.sorted_hits()],
            "warnings": self.warnings,
        }


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
        result.warnings.append(
            f"drift resolution {res:.4g} Hz/s exceeds max_drift: only zero drift was searched"
        )
    dc_col = (n - 1 - n // 2 if info.descending else n // 2) if dc_blank and n >= 3 else None
    if progress:
        progress(0, ncoarse)
    hits: list[Hit] = []
    with _Reader(info, if_index) as rd, ThreadPoolExecutor(1, thread_name_prefix="fb-read") as pool:
        nxt = pool.submit(rd.read_asc, 0, n)
        for k in range(ncoarse):
            data = nxt.result()
            if k + 1 < ncoarse:
                nxt = pool.submit(rd.read_asc, (k + 1) * n, (k + 2) * n)
            found, stats = search_coarse_channel(
                data, dmax=dmax, min_snr=min_snr, window=win, dc_col=dc_col,
                coarse_channel=k, channel_offset=k * n,
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
    classify_hits(hits, min_snr=min_snr, dmax=dmax, coarse_size=n,
                  dc_cols={k: dc_col for k in range(ncoarse)} if dc_col is not None else None)
    result.hits = hits
    result.counts = count_classes(hits)
    result.processing_time_seconds = time.perf_counter() - t0
    return result


def write_exports(result: SearchResult, path_to_source_file: str | os.PathLike[str],
                  out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write json, csv, catalog_json, classified, fits, waterfall, waterfall_thumb and dat to ``out_dir``."""
    from .export import write_all

    return write_all(result, path_to_source_file, out_dir)

