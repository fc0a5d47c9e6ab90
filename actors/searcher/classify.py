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
4. ``NARROWBAND_STATIONARY`` — zero drift within one drift bin (``|drift index| ≤ 1``): a transmitter
   at rest relative to the telescope, i.e. on the ground; anything far away drifts because Earth
   rotates.  One bin of tolerance because noise moves the best path of about half of the truly
   stationary tones one bin off zero.
5. ``NARROWBAND_DRIFTING`` — a narrowband drifting hit that fails a candidate test:
   * ``at_drift_limit``: its drift is the largest searched, so the true drift may lie beyond the range;
   * ``repeats_across_coarse_channels``: hits at the same offset (±1 channel) in 3 or more coarse
     channels — a comb made by the instrument;
   * ``crowded``: 8 or more other *strong* hits within ±50 kHz — a busy, RFI-like stretch of band.
     Only neighbours that are persistent and at SNR ≥ :data:`CROWD_MIN_SNR` (or the threshold, if
     higher) count, so that the noise hits a low threshold lets through do not relabel a true tone.
6. ``DRIFTING_UNCONFIRMED`` — everything else: narrowband, drifting, persistent, isolated, outside
   known RFI.  One file cannot tell a signal on the sky from interference, so a single file never says
   ``CANDIDATE_ET``: only the cadence step (:mod:`.cadence`) promotes a hit to ``CANDIDATE_ET``, when
   its event passes turboSETI's filter level 3 (in every ON, in no OFF).

Counts: ``raw_hits`` = all hits; ``filtered_hits`` = hits left after removing ``RFI_TERRESTRIAL``,
``BROADBAND`` and ``NOISE`` (the narrowband ones); ``candidates`` = ``CANDIDATE_ET`` plus
``DRIFTING_UNCONFIRMED`` (the hits worth a look).

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
    "CANDIDATE_ET",
    "CLASSES",
    "DRIFTING_UNCONFIRMED",
    "INTEREST_BANDS",
    "RFI_BANDS",
    "classify_hits",
    "count_classes",
    "rfi_band",
]

CANDIDATE_ET = "CANDIDATE_ET"
DRIFTING_UNCONFIRMED = "DRIFTING_UNCONFIRMED"
NARROWBAND_DRIFTING = "NARROWBAND_DRIFTING"
NARROWBAND_STATIONARY = "NARROWBAND_STATIONARY"
BROADBAND = "BROADBAND"
RFI_TERRESTRIAL = "RFI_TERRESTRIAL"
NOISE = "NOISE"
CLASSES = (CANDIDATE_ET, DRIFTING_UNCONFIRMED, NARROWBAND_DRIFTING, NARROWBAND_STATIONARY, BROADBAND, RFI_TERRESTRIAL, NOISE)

BROADBAND_CHANNELS = 8
PERSISTENCE_MIN = 0.5
COMB_MIN_COARSE = 3
CROWD_HALF_WIDTH_HZ = 50e3
CROWD_MIN_NEIGHBOURS = 8
CROWD_MIN_SNR = 10.0
STATIONARY_MAX_DRIFT_INDEX = 1

INTEREST_BANDS: dict[str, tuple[float, float]] = {
    CANDIDATE_ET: (0.6, 1.0),
    DRIFTING_UNCONFIRMED: (0.6, 1.0),
    NARROWBAND_DRIFTING: (0.35, 0.6),
    NARROWBAND_STATIONARY: (0.15, 0.35),
    BROADBAND: (0.05, 0.15),
    RFI_TERRESTRIAL: (0.02, 0.12),
    NOISE: (0.0, 0.05),
}

# (low MHz, high MHz, name, source). First match wins, so narrow, specific allocations come before the
# wide ones they sit inside.  Sources: the ITU Radio Regulations Article 5 table of frequency
# allocations ("ITU-RR 5"), the US table (NTIA Redbook, "NTIA"), the system operators' interface
# documents where named, and 3GPP TS 36.101 / 38.101 for the mobile bands.  L band (1-2 GHz) to X band
# (8-12 GHz) is where Breakthrough Listen observes, so it is covered band by band; below 1 GHz only the
# strongest broadcast and mobile bands are listed.
RFI_BANDS: tuple[tuple[float, float, str, str], ...] = (
    (87.5, 108.0, "FM broadcast", "ITU-RR 5 (Region 2)"),
    (137.0, 138.0, "ORBCOMM / NOAA APT satellite downlink", "ITU-RR 5; ORBCOMM FCC filing"),
    (148.0, 150.05, "ORBCOMM uplink", "ITU-RR 5"),
    (156.0, 162.05, "Maritime VHF / AIS", "ITU-RR Appendix 18"),
    (174.0, 230.0, "DAB / VHF TV broadcast", "ITU-RR 5"),
    (400.15, 406.0, "Radiosondes / meteorological aids", "ITU-RR 5"),
    (470.0, 698.0, "UHF TV broadcast (DVB-T/ATSC)", "ITU-RR 5"),
    (698.0, 806.0, "LTE 700 MHz (bands 12/13/14/17/28)", "3GPP TS 36.101"),
    (824.0, 849.0, "Cellular 850 uplink (LTE band 5)", "3GPP TS 36.101"),
    (869.0, 894.0, "Cellular 850 downlink (LTE band 5)", "3GPP TS 36.101"),
    (880.0, 960.0, "GSM 900 (LTE band 8)", "3GPP TS 36.101"),
    (1029.0, 1031.0, "SSR / Mode S interrogation 1030 MHz", "ICAO Annex 10 Vol. IV"),
    (1089.0, 1091.0, "ADS-B / Mode S 1090 MHz", "ICAO Annex 10 Vol. IV; RTCA DO-260B"),
    (1164.0, 1189.0, "GPS L5 / Galileo E5a", "IS-GPS-705; Galileo OS SIS ICD"),
    (1189.0, 1214.0, "Galileo E5b / BeiDou B2 / GLONASS L3", "Galileo OS SIS ICD; BeiDou ICD"),
    (960.0, 1215.0, "Aeronautical radionavigation (DME/TACAN)", "ITU-RR 5"),
    (1215.6, 1239.6, "GPS L2", "IS-GPS-200"),
    (1242.0, 1252.0, "GLONASS L2", "GLONASS ICD"),
    (1260.0, 1300.0, "Galileo E6 / BeiDou B3", "Galileo E6 SIS ICD; BeiDou ICD"),
    (1300.0, 1350.0, "ATC long-range surveillance radar (ARSR)", "NTIA Redbook 4.1"),
    (1379.9, 1381.15, "GPS L3 (nuclear detonation payload)", "NTIA Redbook; IS-GPS-200"),
    (1525.0, 1559.0, "Inmarsat / Thuraya mobile satellite downlink", "ITU-RR 5; Inmarsat"),
    (1559.0, 1563.2, "BeiDou B1", "BeiDou ICD B1I"),
    (1563.42, 1587.42, "GPS L1 / Galileo E1", "IS-GPS-200; Galileo OS SIS ICD"),
    (1592.0, 1610.0, "GLONASS L1", "GLONASS ICD"),
    (1610.0, 1616.0, "Globalstar uplink", "ITU-RR 5; Globalstar FCC filing"),
    (1616.0, 1626.5, "Iridium", "ITU-RR 5; Iridium FCC filing"),
    (1670.0, 1710.0, "GOES / meteorological satellite downlink", "ITU-RR 5; NOAA GOES-R data book"),
    (1710.0, 1785.0, "GSM 1800 / LTE band 3 uplink", "3GPP TS 36.101"),
    (1805.0, 1880.0, "GSM 1800 / LTE band 3 downlink", "3GPP TS 36.101"),
    (1850.0, 1995.0, "PCS 1900 (LTE bands 2/25)", "3GPP TS 36.101"),
    (2025.0, 2110.0, "Space operation / research uplink (TT&C)", "ITU-RR 5"),
    (2110.0, 2200.0, "UMTS / LTE 2100 (bands 1/4/66)", "3GPP TS 36.101"),
    (2200.0, 2290.0, "Space research / operation downlink (S-band TT&C)", "ITU-RR 5"),
    (2290.0, 2300.0, "Deep-space downlink, S band", "ITU-RR 5 (space research, deep space)"),
    (2320.0, 2345.0, "SiriusXM satellite radio", "FCC Part 25 (SDARS)"),
    (2300.0, 2400.0, "LTE band 40 / WCS", "3GPP TS 36.101"),
    (2400.0, 2483.5, "2.4 GHz ISM: Wi-Fi / Bluetooth / microwave ovens", "ITU-RR 5.150"),
    (2483.5, 2500.0, "Globalstar downlink", "ITU-RR 5; Globalstar FCC filing"),
    (2496.0, 2690.0, "LTE bands 7/41 / 5G n41", "3GPP TS 36.101 / 38.101"),
    (2700.0, 2900.0, "S-band ATC and weather radar (ASR/NEXRAD)", "NTIA Redbook 4.1"),
    (2900.0, 3100.0, "Maritime radionavigation radar (S band)", "ITU-RR 5"),
    (3300.0, 3800.0, "5G NR n77/n78 / C-band", "3GPP TS 38.101"),
    (3700.0, 4200.0, "C-band satellite downlink", "ITU-RR 5"),
    (4200.0, 4400.0, "Radio altimeters", "ITU-RR 5.438"),
    (5150.0, 5350.0, "5 GHz Wi-Fi (UNII-1/2)", "ITU-RR 5.446A; FCC Part 15.407"),
    (5600.0, 5650.0, "C-band terminal Doppler weather radar", "NTIA Redbook 4.1"),
    (5470.0, 5895.0, "5 GHz Wi-Fi (UNII-2e/3) / ISM", "ITU-RR 5.150; FCC Part 15.407"),
    (5925.0, 6425.0, "C-band satellite uplink", "ITU-RR 5"),
    (7145.0, 7235.0, "Deep-space / space research uplink, X band", "ITU-RR 5 (space research, Earth-to-space)"),
    (7250.0, 7750.0, "X-band military satellite downlink", "ITU-RR 5"),
    (7900.0, 8400.0, "X-band satellite uplink / Earth exploration downlink", "ITU-RR 5"),
    (8400.0, 8450.0, "Deep-space downlink, X band (e.g. Voyager 1 at 8420 MHz)", "ITU-RR 5 (space research, deep space); NASA DSN 810-005"),
    (8450.0, 8500.0, "Space research downlink, X band (near Earth)", "ITU-RR 5"),
    (8500.0, 10000.0, "X-band radars: marine, airborne weather, radiolocation", "ITU-RR 5"),
    (10000.0, 10500.0, "Radiolocation / amateur 10 GHz", "ITU-RR 5"),
    (10700.0, 12750.0, "Ku-band satellite downlink (Starlink / DTH TV)", "ITU-RR 5"),
)


def rfi_band(freq_hz: float) -> str:
    """Name of the known RFI band containing ``freq_hz``, or ``""``."""
    f = freq_hz / 1e6
    for lo, hi, name, _source in RFI_BANDS:
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
    # Crowding counts strong, persistent neighbours only: a prefix sum over the frequency order.
    floor = max(CROWD_MIN_SNR, min_snr)
    strong = np.array([h.snr >= floor and h.persistence >= PERSISTENCE_MIN for h in hits], dtype=np.int64)
    cum = np.concatenate([[0], np.cumsum(strong[order])])
    neighbours = cum[right] - cum[left] - strong
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
        elif abs(h.drift_index) <= STATIONARY_MAX_DRIFT_INDEX:
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
                cls = DRIFTING_UNCONFIRMED
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
        "filtered_hits": sum(
            c[k] for k in (CANDIDATE_ET, DRIFTING_UNCONFIRMED, NARROWBAND_DRIFTING, NARROWBAND_STATIONARY)
        ),
        "candidates": c[CANDIDATE_ET] + c[DRIFTING_UNCONFIRMED],
    }
    out.update({f"n_{k.lower()}": c[k] for k in CLASSES})
    return out
