"""De-Doppler search: injected tones recovered, noise quiet, .fil and .h5 identical, classification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from actors.searcher.classify import rfi_band
from actors.searcher.dedoppler import dedoppler_max, dedoppler_plane, n_padded, taylor_path
from actors.searcher.filterbank_writer import write_fil
from actors.searcher.hits import expected_false_hits
from actors.searcher.pipeline import search_file
from actors.searcher.synth import Tone, make_filterbank

FCH1 = 1400.0
FOFF = -2.7939677238464355e-06  # MHz, Breakthrough Listen high spectral resolution
TSAMP = 18.253611008


def _chan(freq_mhz: float, nchans: int) -> int:
    """Ascending channel index of a frequency, for a descending (FOFF < 0) file."""
    return nchans - 1 - round((freq_mhz - FCH1) / FOFF)


def test_tree_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for nt in (2, 5, 8):
        x = rng.standard_normal((nt, 120)).astype(np.float32)
        dmax = 20
        plane = dedoppler_plane(x, dmax)
        n = n_padded(nt)
        xp = np.zeros((n, 120), np.float32)
        xp[:nt] = x
        for d in (-dmax, -7, -1, 0, 1, 7, 15, dmax):
            off = taylor_path(n, d)
            for f in (0, 3, 60, 119):
                cols = f + off
                ok = (cols >= 0) & (cols < 120)
                assert plane[d + dmax, f] == pytest.approx(xp[np.arange(n)[ok], cols[ok]].sum(), abs=1e-4)
        best, drift = dedoppler_max(x, dmax)
        np.testing.assert_allclose(best, plane.max(axis=0))
        np.testing.assert_array_equal(plane[drift + dmax, np.arange(120)], best)


DRIFTS = [-3.8, -2.6, -1.3, -0.4, -0.07, 0.07, 0.4, 1.3, 2.6, 3.8]
SNRS = [15, 18, 20, 30, 50, 15, 18, 20, 30, 50]


@pytest.mark.parametrize(
    ("ntime", "snrs", "min_snr"),
    [
        (16, SNRS, 10.0),
        (10, SNRS, 10.0),
        # At exactly SNR 10 noise alone puts half the tones below a threshold of 10, so search lower.
        (16, [10.0] * 10, 6.5),
    ],
)
def test_injected_tones_recovered(tmp_path: Path, ntime: int, snrs: list[float], min_snr: float) -> None:
    nchans = 1 << 16
    freqs = [FCH1 + FOFF * (3000 + 6000 * k) for k in range(len(DRIFTS))]
    tones = [Tone(f, d, s) for f, d, s in zip(freqs, DRIFTS, snrs, strict=True)]
    p = make_filterbank(tmp_path / "t.fil", nchans=nchans, ntime=ntime, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        tones=tones, seed=ntime, dc_spike=200.0)
    # cut on the refined SNR: this test is about what the search can find; the default cuts on
    # turboSETI's tree SNR, which loses up to 35 % on steep drifts (test_min_snr_cuts_on_turboseti_snr)
    r = search_file(p, max_drift=4.0, min_snr=min_snr, cut_on="refined")
    res = r.drift_rate_resolution
    assert res == pytest.approx(abs(FOFF) * 1e6 / ((n_padded(ntime) - 1) * TSAMP))
    if min_snr >= 10.0:
        assert len(r.hits) == len(tones), [h.to_dict() for h in r.hits]
    for tone in tones:
        c = _chan(tone.freq_mhz, nchans)
        match = [h for h in r.hits if abs(h.channel - c) <= 2]
        assert len(match) == 1, tone
        h = match[0]
        assert abs(h.drift_rate - tone.drift_rate) <= res * 1.0001, (tone, h)
        assert h.snr_refined >= min_snr
        assert abs(h.frequency_hz - tone.freq_mhz * 1e6) <= 2 * abs(FOFF) * 1e6
        if min_snr >= 10.0:
            assert h.classification == "DRIFTING_UNCONFIRMED", h


def test_large_drift_range(tmp_path: Path) -> None:
    nchans = 1 << 15
    tones = [Tone(FCH1 + FOFF * 4000, 18.0, 25), Tone(FCH1 + FOFF * 26000, -18.0, 25)]
    p = make_filterbank(tmp_path / "f.fil", nchans=nchans, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        tones=tones, seed=5)
    r = search_file(p, max_drift=20.0)
    assert r.dmax == int(20.0 / r.drift_rate_resolution)
    found = sorted((h.channel, h.drift_rate) for h in r.hits)
    assert len(found) == 2, found
    for tone in tones:
        c = _chan(tone.freq_mhz, nchans)
        assert any(abs(ch - c) <= 2 and abs(dr - tone.drift_rate) <= r.drift_rate_resolution * 1.0001
                   for ch, dr in found), (tone, found)
    with pytest.raises(ValueError, match="max_drift"):
        search_file(p, max_drift=51.0)


def test_pure_noise_false_alarm_rate(tmp_path: Path) -> None:
    nchans = 1 << 16
    p = make_filterbank(tmp_path / "n.fil", nchans=nchans, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        seed=11)
    r = search_file(p, max_drift=4.0, min_snr=10.0)
    bound = expected_false_hits(nchans, r.dmax, 10.0)
    assert bound < 1e-5
    assert r.hits == []
    # At SNR 6 the documented per-trial rate (1.1e-6) predicts at most ~ bound6 exceedances.
    r6 = search_file(p, max_drift=4.0, min_snr=6.0)
    bound6 = expected_false_hits(nchans, r6.dmax, 6.0)
    assert len(r6.hits) <= bound6 + 3 * np.sqrt(bound6) + 1


def test_fil_and_h5_identical(tmp_path: Path) -> None:
    kw = dict(nchans=1 << 14, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP, seed=2,
              tones=[Tone(FCH1 + FOFF * 3000, 0.8, 20), Tone(FCH1 + FOFF * 9000, -1.7, 14)], nbits=16)
    a = search_file(make_filterbank(tmp_path / "a.fil", **kw))  # type: ignore[arg-type]
    b = search_file(make_filterbank(tmp_path / "a.h5", **kw))  # type: ignore[arg-type]
    assert len(a.hits) == 2
    assert [h.to_dict() for h in a.hits] == [h.to_dict() for h in b.hits]


def test_dc_spike_blanked(tmp_path: Path) -> None:
    p = make_filterbank(tmp_path / "d.fil", nchans=1 << 14, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        dc_spike=500.0, coarse_size=4096, seed=4)
    assert search_file(p, coarse_size=4096).hits == []
    hits = search_file(p, coarse_size=4096, dc_blank=False).hits
    assert len(hits) == 4


def test_progress_and_seed_results(tmp_path: Path) -> None:
    p = make_filterbank(tmp_path / "p.fil", nchans=1 << 14, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        tones=[Tone(FCH1 + FOFF * 5000, 0.5, 20)], coarse_size=4096)
    calls: list[tuple[int, int]] = []
    r = search_file(p, progress=lambda d, t: calls.append((d, t)), coarse_size=4096)
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    res = r.to_results()
    assert {"raw_hits", "filtered_hits", "candidates", "processing_time_seconds", "top_candidates",
            "drift_rate_resolution", "drift_rate_convention"} <= set(res)
    assert res["raw_hits"] == 1 and res["candidates"] == 1
    c = res["top_candidates"][0]
    assert set(c) == {"frequency_hz", "drift_rate", "snr", "classification", "interestingness",
                      "rfi_source", "source"}
    assert 0.0 <= c["interestingness"] <= 1.0


def test_classes(tmp_path: Path) -> None:
    nchans = 1 << 15
    rng = np.random.default_rng(9)
    data = (rng.standard_normal((16, nchans)) * 10 + 100).astype(np.float32)  # ascending (foff > 0)
    foff = abs(FOFF)
    f0 = 1563.37  # the band's upper half is in GPS L1 (from 1563.42 MHz), its lower half in no RFI band
    amp = 20 * 0.789 * 10 / 4
    gps = 25000
    # a GPS L1 tone, a broadband block, a stationary tone, an impulsive one-pixel spike, a drifting tone
    for t in range(16):
        data[t, gps + t] += amp
        data[t, 1000:1100] += amp
        data[t, 4000] += amp
        data[t, 9000 + 2 * t] += amp
    data[7, 14000] += amp * 16
    p = write_fil(tmp_path / "c.fil", {"fch1": f0, "foff": foff, "tsamp": TSAMP}, data)
    assert rfi_band(1575.42e6) == "GPS L1 / Galileo E1"
    r = search_file(p)
    by = {h.classification: h for h in r.hits}
    assert by["RFI_TERRESTRIAL"].rfi_source == "GPS L1 / Galileo E1"
    assert 990 <= by["BROADBAND"].channel <= 1110
    assert by["NARROWBAND_STATIONARY"].channel == 4000
    assert abs(by["NOISE"].channel - 14000) <= 16 * 20  # some path through the one bright pixel
    assert abs(by["DRIFTING_UNCONFIRMED"].channel - 9000) <= 2
    cand = by["DRIFTING_UNCONFIRMED"]
    assert all(cand.interestingness > h.interestingness for h in r.hits if h is not cand)
    counts = r.counts
    assert counts["raw_hits"] == 5 and counts["filtered_hits"] == 2 and counts["candidates"] == 1


def test_full_number_of_hits_counts_cells_as_turboseti_does(tmp_path: Path) -> None:
    """turboSETI's Full_number_of_hits: every (channel, non-zero drift) cell above the threshold, a drift
    on a block boundary (a multiple of ntime - 1, up to max_drift // (resolution · ntime) blocks) twice.
    Checked here against the full drift plane; bench/bench_dedoppler.py checks it against turboSETI."""
    from actors.searcher.dedoppler import cells_above
    from actors.searcher.export import dat_text
    from actors.searcher.hits import _centre_and_integrate, blank_dc, comp_stats

    nchans = 8192
    tones = [Tone(FCH1 + FOFF * c, d, s) for c, d, s in ((900, 0.6, 40.0), (3000, -1.9, 60.0), (6000, 0.0, 30.0))]
    path = make_filterbank(tmp_path / "t.fil", nchans=nchans, tones=tones, seed=3, coarse_size=nchans)
    result = search_file(path, max_drift=2.5, min_snr=10.0)
    dmax = result.dmax

    from actors.searcher.filterbank import open_filterbank, read_window

    data = np.ascontiguousarray(read_window(open_filterbank(path), 0, nchans), dtype=np.float32)
    blank_dc(data, nchans - 1 - nchans // 2)  # as searched: a descending file's DC channel
    med, std = comp_stats(_centre_and_integrate(data))
    plane = dedoppler_plane(data, dmax)  # rows -dmax..dmax
    lim = med + 10.0 * std
    d = np.arange(-dmax, dmax + 1)
    weight = np.where(d == 0, 0, 1) + ((np.abs(d) % 15 == 0) & (np.abs(d) > 0) & (np.abs(d) <= 15 * (dmax // 16)))
    expected = int((weight[:, None] * (plane > lim)).sum())
    assert expected > 50  # three strong tones light up many cells; the zero-drift one only off zero
    assert expected > int(((d != 0)[:, None] * (plane > lim)).sum())  # block-boundary cells among them
    assert cells_above(data, dmax, lim) == expected
    assert result.full_number_of_hits == {0: expected}
    rows = [line.split("\t") for line in dat_text(result, "t.dat").splitlines() if not line.startswith("#")]
    assert rows and all(int(r[11]) == expected for r in rows)
