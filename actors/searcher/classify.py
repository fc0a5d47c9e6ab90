"""Rule-based classification of hits, and their interestingness.

Rules, applied in order (the first that matches gives the class; every failed candidate test is also
listed in ``Hit.reasons``):

1. ``RFI_TERRESTRIAL`` — the hit's frequency is inside a band of :data:`RFI_BANDS` (satellite
   navigation, aviation, mobile, broadcast, ...); ``rfi_source`` names the band.
2. ``BROADBAND`` — the de-drifted spectrum around the hit is wider than :data:`BROADBAND_CHANNELS`
   channels at half its peak: a technosignature of the kind searched for is a line of a few Hz.
3. ``NOISE`` — the excess is carried by less than half of the time steps (``persistence < 0.5``;
   a steady tone at the SNR threshold has ≈ 0.83, one impulsive spike ≈ 0.2), or the hit sits on the
   blanked DC bin of its coarse channel or next to it.
4. ``NARROWBAND_STATIONARY`` — zero drift (``|drift index| < 1``): a transmitter at rest relative to
   the telescope, i.e. on the ground; anything far away drifts because Earth rotates.
5. ``NARROWBAND_DRIFTING`` — a narrowband drifting hit that fails a candidate test:
   * ``at_drift_limit``: its drift is the largest searched, so the true drift may lie beyond the range;
   * ``repeats_across_coarse_channels``: hits at the same offset (±1 channel) in 3 or more coarse
     channels — a comb made by the instrument;
   * ``crowded``: 8 or more other hits within ±50 kHz — a busy, RFI-like stretch of band.
6. ``CANDIDATE_ET`` — everything else: narrowband, drifting, persistent, isolated, outside known RFI.

Counts: ``raw_hits`` = all hits; ``filtered_hits`` = hits left after removing ``RFI_TERRESTRIAL``,
``BROADBAND`` and ``NOISE`` (the narrowband ones); ``candidates`` = ``CANDIDATE_ET``.

Interestingness is ``lo + (hi − lo)·q`` where the class sets the band ``[lo, hi]`` (candidates always
outrank the rest) and ``q = 0.5·s + 0.25·persistence + 0.25·narrowness`` with ``s = log10(snr/min_snr)``
clipped to [0, 1] (saturating at ten times the threshold) and ``narrowness = 1/width_channels``.
Confidence is how clearly the deciding rule fired, in [0.5, 1].
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .hits import Hit

__all__ = [
    "BROADBAND_CHANNELS",
    "CLASSES",
    "INTEREST_BANDS",
    "RFI_BANDS",
    "classify_hits",
    "count_classes",
    "rfi_band",
]

CANDIDATE_ET = "CANDIDATE_ET"
NARROWBAND_DRIFTING = "NARROWBAND_DRIFTING"
NARROWBAND_STATIONARY = "NARROWBAND_STATIONARY"
BROADBAND = "BROADBAND"
RFI_TERRESTRIAL = "RFI_TERRESTRIAL"
NOISE = "NOISE"
CLASSES = (CANDIDATE_ET, NARROWBAND_DRIFTING, NARROWBAND_STATIONARY, BROADBAND, RFI_TERRESTRIAL, NOISE)

BROADBAND_CHANNELS = 8
PERSISTENCE_MIN = 0.5
COMB_MIN_COARSE = 3
CROWD_HALF_WIDTH_HZ = 50e3
CROWD_MIN_NEIGHBOURS = 8

INTEREST_BANDS: dict[str, tuple[float, float]] = {
    CANDIDATE_ET: (0.6, 1.0),
    NARROWBAND_DRIFTING: (0.35, 0.6),
    NARROWBAND_STATIONARY: (0.15, 0.35),
    BROADBAND: (0.05, 0.15),
    RFI_TERRESTRIAL: (0.02, 0.12),
    NOISE: (0.0, 0.05),
}

# (low MHz, high MHz, name). First match wins, so narrow, specific allocations come before the wide
# ones they sit inside.
RFI_BANDS: tuple[tuple[float, float, str], ...] = (
    (87.5, 108.0, "FM broadcast"),
    (137.0, 138.0, "ORBCOMM / NOAA APT satellite downlink"),
    (148.0, 150.05, "ORBCOMM uplink"),
    (156.0, 162.05, "Maritime VHF / AIS"),
    (174.0, 230.0, "DAB / VHF TV broadcast"),
    (400.15, 406.0, "Radiosondes / meteorological aids"),
    (470.0, 698.0, "UHF TV broadcast (DVB-T/ATSC)"),
    (698.0, 806.0, "LTE 700 MHz (bands 12/13/14/17/28)"),
    (824.0, 849.0, "Cellular 850 uplink (LTE band 5)"),
    (869.0, 894.0, "Cellular 850 downlink (LTE band 5)"),
    (880.0, 960.0, "GSM 900 (LTE band 8)"),
    (1029.0, 1031.0, "SSR / Mode S interrogation 1030 MHz"),
    (1089.0, 1091.0, "ADS-B / Mode S 1090 MHz"),
    (1164.0, 1189.0, "GPS L5 / Galileo E5a"),
    (1189.0, 1214.0, "Galileo E5b / BeiDou B2"),
    (960.0, 1215.0, "Aeronautical radionavigation (DME/TACAN)"),
    (1215.6, 1239.6, "GPS L2"),
    (1242.0, 1252.0, "GLONASS L2"),
    (1260.0, 1300.0, "Galileo E6 / BeiDou B3"),
    (1300.0, 1350.0, "ATC long-range surveillance radar (ARSR)"),
    (1525.0, 1559.0, "Inmarsat mobile satellite downlink"),
    (1559.0, 1563.2, "BeiDou B1"),
    (1563.42, 1587.42, "GPS L1 / Galileo E1"),
    (1592.0, 1610.0, "GLONASS L1"),
    (1610.0, 1616.0, "Globalstar uplink"),
    (1616.0, 1626.5, "Iridium"),
    (1670.0, 1710.0, "GOES / meteorological satellite downlink"),
    (1710.0, 1785.0, "GSM 1800 / LTE band 3 uplink"),
    (1805.0, 1880.0, "GSM 1800 / LTE band 3 downlink"),
    (1850.0, 1995.0, "PCS 1900 (LTE bands 2/25)"),
    (2110.0, 2200.0, "UMTS / LTE 2100 (bands 1/4/66)"),
    (2320.0, 2345.0, "SiriusXM satellite radio"),
    (2300.0, 2400.0, "LTE band 40 / WCS"),
    (2400.0, 2483.5, "2.4 GHz ISM: Wi-Fi / Bluetooth / microwave ovens"),
    (2483.5, 2500.0, "Globalstar downlink"),
    (2496.0, 2690.0, "LTE bands 7/41 / 5G n41"),
    (2700.0, 2900.0, "S-band ATC and weather radar (ASR/NEXRAD)"),
    (3300.0, 3800.0, "5G NR n77/n78 / C-band"),
    (3700.0, 4200.0, "C-band satellite downlink"),
    (5150.0, 5350.0, "5 GHz Wi-Fi (UNII-1/2)"),
    (5600.0, 5650.0, "C-band terminal Doppler weather radar"),
    (5470.0, 5895.0, "5 GHz Wi-Fi (UNII-2e/3) / ISM"),
    (10700.0, 12750.0, "Ku-band satellite downlink (Starlink / DTH TV)"),
)


def rfi_band(freq_hz: float) -> str:
    """Name of the known RFI band containing ``freq_hz``, or ``""``."""
    f = freq_hz / 1e6
    for lo, hi, name in RFI_BANDS:
        if lo <= f <= hi:
            return name
    return ""


def _interest(cls: str, h: Hit, min_snr: float) -> float:
    lo, hi = INTEREST_BANDS[cls]
    s = min(1.0, max(0.0, math.log10(max(h.snr, 1e-9) / min_snr)))
    q = 0.5 * s + 0.25 * min(1.0, max(0.0, h.persistence)) + 0.25 / max(1, h.width_channels)
    return float(min(1.0, max(0.0, lo + (hi - lo) * q)))


def classify_hits(
    hits: list[Hit],
    *,
    min_snr: float,
    dmax: int,
    coarse_size: int,
    dc_cols: dict[int, int] | None = None,
) -> None:
    """Set ``classification``, ``interestingness``, ``confidence``, ``rfi_source`` and ``reasons`` in place.

    ``dc_cols`` maps coarse channel → ascending column of its DC bin (when DC blanking was done).
    """
    if not hits:
        return
    freqs = np.array([h.frequency_hz for h in hits])
    order = np.argsort(freqs)
    sorted_f = freqs[order]
    left = np.searchsorted(sorted_f, freqs - CROWD_HALF_WIDTH_HZ, side="left")
    right = np.searchsorted(sorted_f, freqs + CROWD_HALF_WIDTH_HZ, side="right")
    neighbours = right - left - 1
    by_offset: dict[int, set[int]] = {}
    for h in hits:
        by_offset.setdefault(h.channel % coarse_size, set()).add(h.coarse_channel)
    empty: set[int] = set()
    for idx, h in enumerate(hits):
        reasons: list[str] = []
        off = h.channel % coarse_size
        comb = len(by_offset.get(off - 1, empty) | by_offset.get(off, empty) | by_offset.get(off + 1, empty))
        band = rfi_band(h.frequency_hz)
        near_dc = dc_cols is not None and h.coarse_channel in dc_cols and \
            abs(off - dc_cols[h.coarse_channel]) <= 1
        h.rfi_source = band
        if band:
            cls, conf = RFI_TERRESTRIAL, 0.95
            reasons.append("known_rfi_band")
        elif h.width_channels > BROADBAND_CHANNELS:
            cls = BROADBAND
            conf = min(1.0, 0.5 + 0.5 * (h.width_channels - BROADBAND_CHANNELS) / BROADBAND_CHANNELS)
            reasons.append("broadband")
        elif h.persistence < PERSISTENCE_MIN or near_dc:
            cls = NOISE
            conf = 0.9 if near_dc else min(1.0, 0.5 + (PERSISTENCE_MIN - h.persistence))
            reasons.append("dc_bin" if near_dc else "not_persistent")
        elif h.drift_index == 0:
            cls, conf = NARROWBAND_STATIONARY, 0.9
            reasons.append("zero_drift")
        else:
            if abs(h.drift_index) >= dmax:
                reasons.append("at_drift_limit")
            if comb >= COMB_MIN_COARSE:
                reasons.append("repeats_across_coarse_channels")
            if neighbours[idx] >= CROWD_MIN_NEIGHBOURS:
                reasons.append("crowded")
            if reasons:
                cls, conf = NARROWBAND_DRIFTING, 0.5 + 0.15 * len(reasons)
            else:
                cls = CANDIDATE_ET
                conf = 0.5 + 0.5 * min(1.0, (h.persistence - PERSISTENCE_MIN) / (1 - PERSISTENCE_MIN))
        h.classification = cls
        h.confidence = float(min(1.0, conf))
        h.reasons = reasons
        h.interestingness = _interest(cls, h, min_snr)


def count_classes(hits: list[Hit]) -> dict[str, int]:
    """``raw_hits``, ``filtered_hits``, ``candidates`` and the count per class."""
    c = Counter(h.classification for h in hits)
    out = {
        "raw_hits": len(hits),
        "filtered_hits": sum(c[k] for k in (CANDIDATE_ET, NARROWBAND_DRIFTING, NARROWBAND_STATIONARY)),
        "candidates": c[CANDIDATE_ET],
    }
    out.update({f"n_{k.lower()}": c[k] for k in CLASSES})
    return out
