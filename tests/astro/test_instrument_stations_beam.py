from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from astro import instrument as ins
from astro.primary_beam import airy_beam, airy_beam_fast, angular_separation, fwhm_rad
from astro.stations import active_station_numbers, dsa110_array, read_stations


def test_band_layout() -> None:
    assert ins.N_SUBBANDS * ins.N_CHANNELS_PER_SUBBAND * ins.CHANNEL_WIDTH_HZ == pytest.approx(187.5e6)
    assert ins.BAND_HIGH_HZ - ins.BAND_LOW_HZ == pytest.approx(187.5e6)
    f0 = ins.subband_frequencies_hz(0)
    f15 = ins.subband_frequencies_hz(15)
    assert f0.min() > f15.max()  # sb00 is the highest
    assert np.all(np.diff(f0) < 0)  # channels descending inside a subband, as written
    assert f0.max() == pytest.approx(ins.BAND_HIGH_HZ - ins.CHANNEL_WIDTH_HZ / 2)
    band = ins.band_frequencies_hz()
    assert band.size == 768 and np.all(np.diff(band) > 0)
    assert np.allclose(np.diff(band), ins.CHANNEL_WIDTH_HZ)
    assert ins.channel_width_hz(4) == pytest.approx(ins.SUBBAND_WIDTH_HZ / 4)
    assert ins.TILE_DURATION_S == pytest.approx(24 * 12.884902)
    with pytest.raises(ValueError):
        ins.subband_edges_hz(16)


def test_thermal_sigma() -> None:
    s = ins.thermal_sigma_jy(ins.CHANNEL_WIDTH_HZ, ins.INTEGRATION_TIME_S)
    assert s == pytest.approx(6500 / np.sqrt(2 * 244140.625 * 12.884902))


def test_station_table() -> None:
    st = read_stations()
    assert len(st) == 117
    s117 = st[-1]
    assert s117.name == "DSA-117"
    assert s117.height_m == pytest.approx(np.mean([s.height_m for s in st[:-1]]))
    assert {s.arm for s in st} == {"ew", "ns", "outrigger"}


def test_active_array() -> None:
    nums = active_station_numbers()
    assert len(nums) == 96 and len(set(nums)) == 96
    arms = {"ew": 0, "ns": 0, "outrigger": 0}
    by = {s.number: s for s in read_stations()}
    for n in nums:
        arms[by[n].arm] += 1
    assert arms == {"ew": 47, "ns": 35, "outrigger": 14}
    a = dsa110_array()
    d = np.linalg.norm(a.enu[:, None] - a.enu[None], axis=-1)
    assert 2400 < d.max() < 2700  # longest baseline ~2.6 km
    core = [i for i, n in enumerate(a.station_numbers) if n <= 102]
    assert d[np.ix_(core, core)].max() < 485
    assert abs(a.enu[:, 2]).max() < 20  # a flat site
    small = dsa110_array(5)
    assert small.n_ants == 5 and len(set(small.names)) == 5


def test_airy_fwhm_near_2p7_deg_at_1p4ghz() -> None:
    half = brentq(lambda t: airy_beam(t, 1.4e9) - 0.5, 1e-4, 0.05)
    assert np.degrees(2 * half) == pytest.approx(2.7, abs=0.05)
    assert np.degrees(2 * half) == pytest.approx(np.degrees(fwhm_rad(1.4e9)), rel=1e-3)
    assert airy_beam(0.0, 1.4e9) == pytest.approx(1.0)
    th = np.linspace(0, 0.3, 2001)
    assert np.allclose(airy_beam_fast(th, 1.3e9), airy_beam(th, 1.3e9), atol=1e-6)
    # narrower at higher frequency, vectorised over both arguments
    b = airy_beam(np.radians(1.0), np.array([1.3e9, 1.5e9]))
    assert b[0] > b[1]


def test_angular_separation() -> None:
    assert angular_separation(0, 0, np.pi / 2, 0) == pytest.approx(np.pi / 2)
    assert angular_separation(1.0, 0.5, 1.0, 0.5) == pytest.approx(0.0, abs=1e-12)
