"""Labels on simulated files: one test per class, stationary within one drift bin, the RFI bands with
their sources, labels that stay put when a low threshold lets noise hits in, no CANDIDATE_ET alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.searcher.classify import CLASSES, RFI_BANDS, rfi_band
from actors.searcher.pipeline import search_file
from actors.searcher.synth import Tone, make_filterbank

FOFF = -2.7939677238464355e-06
TSAMP = 18.253611008
RES = abs(FOFF) * 1e6 / (15 * TSAMP)  # one drift bin, Hz/s


def _search(tmp_path: Path, tones: list[Tone], fch1: float = 1400.0, seed: int = 3, **kw: float) -> list:
    p = make_filterbank(tmp_path / f"f{seed}.fil", nchans=1 << 15, ntime=16, fch1=fch1, foff=FOFF, tsamp=TSAMP,
                        tones=tones, seed=seed)
    return search_file(p, **kw).hits


def _at(hits: list, freq_mhz: float) -> object:
    match = [h for h in hits if abs(h.frequency_hz / 1e6 - freq_mhz) * 1e6 < 4 * 2.8]
    assert len(match) == 1, (freq_mhz, [h.to_dict() for h in hits])
    return match[0]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_stationary_within_one_drift_bin(tmp_path: Path, seed: int) -> None:
    """Noise moves a zero-drift tone's best path a bin off zero about half the time: still stationary."""
    freqs = [1400.0 + FOFF * (2000 + 5000 * k) for k in range(5)]
    drifts = [0.0, 0.0, 0.0, RES, -RES]
    hits = _search(tmp_path, [Tone(f, d, 25.0) for f, d in zip(freqs, drifts, strict=True)], seed=seed)
    for f in freqs:
        h = _at(hits, f)
        assert h.classification == "NARROWBAND_STATIONARY", h.to_dict()  # type: ignore[attr-defined]
    # two bins is a drift
    hits = _search(tmp_path, [Tone(freqs[0], 3 * RES, 25.0)], seed=seed)
    assert _at(hits, freqs[0]).classification == "DRIFTING_UNCONFIRMED"  # type: ignore[attr-defined]


def test_spacecraft_carrier_in_the_deep_space_band_is_rfi(tmp_path: Path) -> None:
    """Voyager 1's carrier (8420.4 MHz, X-band deep-space downlink) drifts like a sky signal."""
    hits = _search(tmp_path, [Tone(8420.43, 0.25, 30.0)], fch1=8420.45)
    h = _at(hits, 8420.43)
    assert h.classification == "RFI_TERRESTRIAL"  # type: ignore[attr-defined]
    assert "Deep-space downlink, X band" in h.rfi_source  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("freq_mhz", "name"),
    [
        (8420.4, "Deep-space downlink, X band"),
        (2295.0, "Deep-space downlink, S band"),
        (1575.42, "GPS L1"),
        (1227.6, "GPS L2"),
        (1176.45, "GPS L5"),
        (1381.05, "GPS L3"),
        (1602.0, "GLONASS L1"),
        (1561.1, "BeiDou B1"),
        (1621.0, "Iridium"),
        (1090.0, "ADS-B"),
        (1030.0, "Mode S interrogation"),
        (1540.0, "Inmarsat"),
        (2440.0, "Wi-Fi"),
        (2800.0, "weather radar"),
        (4300.0, "Radio altimeters"),
        (9400.0, "X-band radars"),
        (11700.0, "Ku-band"),
    ],
)
def test_rfi_bands_cover_the_usual_suspects(freq_mhz: float, name: str) -> None:
    assert name in rfi_band(freq_mhz * 1e6)


def test_every_rfi_band_names_its_source() -> None:
    for lo, hi, name, source in RFI_BANDS:
        assert lo < hi and name and source, (lo, hi, name)
    assert rfi_band(1420.0e6) == ""  # the protected hydrogen line is not interference


def test_labels_do_not_flip_when_noise_hits_land_nearby(tmp_path: Path) -> None:
    """At SNR 6, weak neighbours come in; the strong tones' labels stay what they were at SNR 10."""
    strong = [Tone(1400.0 + FOFF * 6000, 0.3, 30.0), Tone(1400.0 + FOFF * 20000, 0.0, 30.0)]
    weak = [Tone(1400.0 + FOFF * (6000 + 400 * k), 0.05 * k, 7.0) for k in range(-8, 9) if k]
    at10 = _search(tmp_path, strong + weak, min_snr=10.0)
    at6 = _search(tmp_path, strong + weak, min_snr=6.0)
    assert len(at6) > len(at10) + 8  # the weak tones are there
    for t in strong:
        assert _at(at6, t.freq_mhz).classification == _at(at10, t.freq_mhz).classification  # type: ignore[attr-defined]
    assert _at(at6, strong[0].freq_mhz).classification == "DRIFTING_UNCONFIRMED"  # type: ignore[attr-defined]


def test_a_lone_file_never_says_candidate_et(tmp_path: Path) -> None:
    hits = _search(tmp_path, [Tone(1400.0 + FOFF * 9000, 1.1, 40.0)])
    assert {h.classification for h in hits} == {"DRIFTING_UNCONFIRMED"}
    assert "CANDIDATE_ET" in CLASSES  # the cadence step (tests/seti/test_cadence.py) gives it


def test_a_drift_at_the_edge_of_the_range_is_narrowband_drifting(tmp_path: Path) -> None:
    """Searched to ±1 Hz/s, a tone at 1 Hz/s may drift faster than the range: not a candidate."""
    hits = _search(tmp_path, [Tone(1400.0 + FOFF * 9000, 1.0, 40.0)], max_drift=1.0)
    h = _at(hits, 1400.0 + FOFF * 9000)
    assert h.classification == "NARROWBAND_DRIFTING" and "at_drift_limit" in h.reasons  # type: ignore[attr-defined]
