"""Choosing, interpolating and applying calibration sets."""

from __future__ import annotations

import numpy as np
import pytest

from astro.applycal import (
    NoCalibrationError,
    apply_gains,
    interpolate_calibration,
    select_calsets,
)
from tests.astro.test_caltables import make_set


@pytest.fixture
def two_sets(tmp_path):
    make_set(tmp_path / "a", mjd_mid=60600.0, phase=0.2, gid="a")
    make_set(tmp_path / "b", mjd_mid=60600.25, phase=0.8, gid="b")
    return tmp_path


def test_select_nearest_before_and_after(two_sets):
    root = two_sets
    assert [p.name for p in select_calsets([root], 60600.1)] == ["a", "b"]
    assert [p.name for p in select_calsets([root], 60599.9)] == ["a"]
    assert [p.name for p in select_calsets([root], 60600.5)] == ["b"]  # 6 h after b, a is 12 h away
    with pytest.raises(NoCalibrationError):
        select_calsets([root], 60601.0)  # 18 h after the last set
    with pytest.raises(NoCalibrationError):
        select_calsets([root], 60600.1, max_sep_hours=1.0)
    with pytest.raises(NoCalibrationError):
        select_calsets([], 60600.1)


def test_interpolation_between_sets(two_sets):
    root = two_sets
    names = [f"DSA-{k:03d}" for k in range(1, 6)]
    freq = 1.311e9 + np.arange(8) * 244140.625
    t_mid = (60600.0 + 0.25 * 0.25) * 86400  # a quarter of the way from a to b
    g, f = interpolate_calibration([root / "a", root / "b"], np.array([t_mid]), names, freq)
    ga, _ = interpolate_calibration([root / "a"], np.array([t_mid]), names, freq)
    gb, _ = interpolate_calibration([root / "b"], np.array([t_mid]), names, freq)
    assert g.shape == (1, 5, 8, 2)
    # time-gain phases 0.2 and 0.8 (antenna 1..4): interpolated phase 0.35, amplitude unchanged
    dphi = np.angle(g[0, 1:] / ga[0, 1:])
    np.testing.assert_allclose(dphi, 0.15, atol=1e-6)
    np.testing.assert_allclose(np.abs(g), np.abs(ga) * 0.75 + np.abs(gb) * 0.25, rtol=1e-6)
    assert f[0, 3, 2, 1] and f.sum() == 1
    # a different antenna order and an unknown antenna
    g2, f2 = interpolate_calibration([root / "a"], np.array([t_mid]), [names[2], "DSA-999"], freq)
    np.testing.assert_allclose(g2[0, 0], ga[0, 2])
    assert f2[0, 1].all()
    # channels between the set's channels are interpolated
    g3, f3 = interpolate_calibration([root / "a"], np.array([t_mid]), names, freq[:4] + 122070.3125)
    assert not f3[0, 0].any() and g3.shape == (1, 5, 4, 2)


def test_apply_divides_by_gains():
    rng = np.random.default_rng(0)
    nant, nchan, ntime = 4, 3, 2
    a1, a2 = np.triu_indices(nant, 1)
    g = rng.normal(1, 0.2, (ntime, nant, nchan, 2)) * np.exp(1j * rng.uniform(-3, 3, (ntime, nant, nchan, 2)))
    true = rng.standard_normal((ntime, a1.size, nchan, 2)) + 1j * rng.standard_normal((ntime, a1.size, nchan, 2))
    vis = (true * g[:, a1] * np.conj(g[:, a2])).astype(np.complex64)
    flags = np.zeros(vis.shape, bool)
    gf = np.zeros(g.shape, bool)
    gf[1, 2, 0, 1] = True
    apply_gains(vis, flags, g, gf, a1, a2, (9, 12))
    ok = ~flags
    np.testing.assert_allclose(vis[ok], true[ok], rtol=1e-4, atol=1e-5)
    touched = (a1 == 2) | (a2 == 2)
    assert flags[1][touched][:, 0, 1].all() and flags.sum() == touched.sum()
