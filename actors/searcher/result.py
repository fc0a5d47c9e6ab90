"""What a search found, and how it searched: :class:`SearchResult`.

Its own module so the exports (:mod:`.export`) and the search (:mod:`.pipeline`) both depend on it
without depending on each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .hits import FALSE_ALARM_PER_TRIAL, Hit

__all__ = ["CHANNEL_CONVENTION", "DRIFT_CONVENTION", "SNR_DEFINITION", "SearchResult"]

CHANNEL_CONVENTION = (
    "channel: global index counted from the lowest frequency (ascending); channel_file: the same channel "
    "counted in file order from fch1 (what turboSETI counts; = nchans - 1 - channel when foff < 0); the "
    ".dat Index is channel_file within its coarse channel, and Coarse_Channel_Number counts in file order"
)

DRIFT_CONVENTION = (
    "Taylor tree over N_t time steps zero-padded to a power of two; drift-rate resolution = "
    "channel width / ((N_t - 1) * t_samp); drift > 0 means rising frequency; a hit's frequency is that "
    "of its track at the first time step"
)
SNR_DEFINITION = (
    "snr is turboSETI's: (Taylor-tree path sum - median) / std, with the median and the 5-95 % trimmed "
    "standard deviation of the coarse channel's integrated spectrum; snr_refined is the same for the best "
    "straight track near the tree path (about 5 % higher)"
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
    snr_cut_on: str = "taylor"
    hits: list[Hit] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    processing_time_seconds: float = 0.0
    expected_false_hits: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: per coarse channel (counted in ascending frequency, as ``Hit.coarse_channel``): how many
    #: (channel, non-zero drift) cells are above ``min_snr``, turboSETI's ``Full_number_of_hits``
    full_number_of_hits: dict[int, int] = field(default_factory=dict)

    def file_channel(self, h: Hit) -> int:
        """The hit's channel in file order (``fch1`` is file channel 0), as turboSETI counts."""
        return self.nchans - 1 - h.channel if self.foff_mhz < 0 else h.channel

    def hit_dict(self, h: Hit) -> dict[str, Any]:
        """``Hit.to_dict()`` plus the file-order channel."""
        return {**h.to_dict(), "channel_file": self.file_channel(h)}

    def sorted_hits(self) -> list[Hit]:
        """Hits by interestingness, then SNR (both descending)."""
        return sorted(self.hits, key=lambda h: (-h.interestingness, -h.snr, h.channel))

    def top_candidates(self, n: int = 20) -> list[Hit]:
        return self.sorted_hits()[:n]

    def search_parameters(self) -> dict[str, Any]:
        return {
            "max_drift": self.max_drift,
            "min_snr": self.min_snr,
            "min_snr_applies_to": "snr (turboSETI)" if self.snr_cut_on == "taylor" else "snr_refined",
            "channel_convention": CHANNEL_CONVENTION,
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
            # turboSETI's Full_number_of_hits, per coarse channel in ascending frequency
            "full_number_of_hits": [self.full_number_of_hits.get(k, 0) for k in range(self.n_coarse_channels)],
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
            "hits": [self.hit_dict(h) for h in self.sorted_hits()],
            "warnings": self.warnings,
        }
