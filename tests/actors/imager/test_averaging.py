"""Baseline-dependent averaging (averaging.py): on DSA-110's own baselines, the bins keep a source
at the primary beam's half-power radius within the decorrelation budget, grid where the channels
would, and CLEAN gives the same fluxes with a fraction of the visibilities."""

from __future__ import annotations

import numpy as np
import pytest

from actors.imager import averaging
from actors.imager.clean import cotton_schwab
from actors.imager.gridding import grid_dirty
from astro.skymodel import point_source_vis
from astro.stations import dsa110_array
from sim.synthetic import enu_uvw

ARCSEC = np.pi / 180 / 3600
C = 299_792_458.0
DEC = np.deg2rad(33.0)
#: 4 of the correlator's 244 kHz channels, as the imager averages them before gridding
WIDTH = 4 * 244_140.625


def _dsa110(ntime: int = 3, nchan: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """uvw [ntime * nbl, 3] of the 96 active antennas (cross-correlations) and nchan channels."""
    enu = dsa110_array(96).enu
    a1, a2 = np.triu_indices(len(enu), 1)
    ha = np.deg2rad(np.linspace(-0.6, 0.6, ntime))
    uvw = enu_uvw(enu, a1, a2, ha, DEC).reshape(-1, 3)
    freq = 1311.25e6 + WIDTH / 2 + np.arange(nchan) * WIDTH
    return uvw, freq


def _response(uvw_l: np.ndarray, vis: np.ndarray, w: np.ndarray, lmn: tuple[float, float, float]) -> float:
    """The dirty image's value at (l, m): the weighted mean of the visibilities turned back to phase
    zero there; `uvw_l` [..., 3] in wavelengths, broadcast against vis and w."""
    el, em, en = lmn
    ph = 2j * np.pi * (uvw_l[..., 0] * el + uvw_l[..., 1] * em + uvw_l[..., 2] * (en - 1.0))
    return float(np.sum(w * (vis * np.exp(ph)).real) / np.sum(w))


def test_bins_widen_short_baselines_only_and_round_trip() -> None:
    uvw, freq = _dsa110()
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, (len(uvw), len(freq))).astype(np.float32)
    w[5, :] = 0.0  # a flagged row: its bins carry no weight
    radius = averaging.half_power_radius(freq, 4.65)
    assert np.rad2deg(radius) == pytest.approx(1.45, abs=0.01)  # 1.029 λ/D / 2 at 1312 MHz
    bins = averaging.plan(uvw, freq, w, radius, 0.01)
    b = np.linalg.norm(uvw, axis=1)
    # the longest baselines keep their channels; the short ones are averaged, by up to the band
    assert bins.factor[np.argmax(b)] == 1
    assert bins.factor[np.argmin(b)] == len(freq)
    # every averaged bin within the budget at the half-power radius (a single channel of the
    # longest baselines is over it, as before: averaging never widens those)
    x = b * np.sin(radius) * bins.factor * WIDTH / C
    assert np.max(1.0 - np.sinc(x[bins.factor > 1])) <= 0.01 + 1e-12
    # DSA-110 is mostly short baselines: well under half the visibilities remain
    assert 0.2 < bins.fraction < 0.5
    assert float(bins.weight.sum()) == pytest.approx(float(w.sum()), rel=1e-6)
    assert np.all(bins.weight[bins.offset[5] : bins.offset[6]] == 0)
    # expand then average is the identity on bins; average of a bin-constant set is that constant
    x_bins = (rng.standard_normal((bins.nbin, 1)) + 1j * rng.standard_normal((bins.nbin, 1))).astype(np.complex64)
    x_bins[bins.offset[5] : bins.offset[6]] = 0
    np.testing.assert_allclose(bins.average(bins.expand(x_bins)), x_bins, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("direction", ["east", "north", "south-west"])
def test_a_source_at_the_half_power_radius_keeps_its_flux(direction: str) -> None:
    """The decorrelation budget is what a source at the beam's edge loses, in any direction."""
    uvw, freq = _dsa110()
    radius = averaging.half_power_radius(freq, 4.65)
    pa = {"east": 90.0, "north": 0.0, "south-west": 225.0}[direction]
    el, em = np.sin(radius) * np.sin(np.deg2rad(pa)), np.sin(radius) * np.cos(np.deg2rad(pa))
    lmn = (el, em, np.sqrt(1 - el**2 - em**2))
    vis = point_source_vis(uvw[None], freq, [list(lmn)], 1.0)[0, :, :, 0]
    w = np.ones(vis.shape, np.float32)
    full = _response(uvw[:, None, :] * freq[None, :, None] / C, vis, w, lmn)
    assert full == pytest.approx(1.0, abs=1e-6)  # channels at their own frequencies: no smearing
    for budget in (0.01, 0.03):
        bins = averaging.plan(uvw, freq, w, radius, budget)
        binned = _response(bins.uvw, bins.average(vis)[:, 0], bins.weight[:, 0], lmn)
        # each bin loses at most the budget, the short baselines (most of the weight) far less
        assert 1.0 - budget <= binned < 1.0 - 1e-5
    # what averaging that ignored baseline length (16 channels everywhere) would cost the longest
    longest = float(np.max(np.linalg.norm(uvw, axis=1)))
    assert 1.0 - np.sinc(longest * np.sin(radius) * 16 * WIDTH / C) > 0.3


def test_gridding_the_bins_matches_gridding_the_channels_and_clean_keeps_the_flux() -> None:
    """The UNIT_FREQ convention (bins in wavelengths) puts a source where the channels put it,
    with the same flux, and CLEAN on the bins recovers the sky of CLEAN on the channels."""
    enu = dsa110_array(82, core_only=True).enu  # < 485 m: a whole-beam image on a small grid
    a1, a2 = np.triu_indices(len(enu), 1)
    uvw = enu_uvw(enu, a1, a2, np.deg2rad(np.linspace(-0.6, 0.6, 3)), DEC).reshape(-1, 3)
    freq = 1311.25e6 + WIDTH / 2 + np.arange(32) * WIDTH
    npix, cell = 256, 40 * ARCSEC  # 2.8 deg across
    srcs = [(0.0, 0.0, 2.0), (-60.0, 25.0, 1.0), (45.0, -80.0, 0.5)]  # pixel offsets (east, north), Jy
    lmn = []
    for dx, dy, _ in srcs:
        el, em = dx * cell, dy * cell
        lmn.append([el, em, np.sqrt(1 - el**2 - em**2)])
    flux = np.array([s[2] for s in srcs])[:, None, None] * np.ones((1, 1, len(freq)))
    vis = point_source_vis(uvw[None], freq, lmn, flux)[0, :, :, 0].astype(np.complex64)
    w = np.ones(vis.shape, np.float32)
    radius = averaging.half_power_radius(freq, 4.65)
    bins = averaging.plan(uvw, freq, w, radius, 0.01)
    assert bins.fraction < 0.6
    full = grid_dirty(uvw, freq, vis, w, npix, cell, epsilon=1e-5)
    binned = grid_dirty(bins.uvw, averaging.UNIT_FREQ, bins.average(vis), bins.weight, npix, cell, epsilon=1e-5)
    c = npix // 2
    for dx, dy, s in srcs:
        y, x = c + int(dy), c - int(dx)  # east is to the left
        assert np.unravel_index(np.argmax(binned[y - 3 : y + 4, x - 3 : x + 4]), (7, 7)) == (3, 3)
        assert binned[y, x] == pytest.approx(full[y, x], rel=0.01, abs=2e-3 * s)
    kw = {"niter": 2000, "threshold_sigma": 0.0, "threshold_jy": 0.01, "max_major": 4, "epsilon": 1e-5}
    ref = cotton_schwab(uvw, freq, vis, w, npix, cell, **kw)  # type: ignore[arg-type]
    res = cotton_schwab(uvw, freq, vis, w, npix, cell, averaging=bins, **kw)  # type: ignore[arg-type]
    for dx, dy, _ in srcs:
        y, x = c + int(dy), c - int(dx)
        got = float(res.model[y - 4 : y + 5, x - 4 : x + 5].sum())
        want = float(ref.model[y - 4 : y + 5, x - 4 : x + 5].sum())
        assert got == pytest.approx(want, rel=0.015)
        assert res.restored[y, x] == pytest.approx(ref.restored[y, x], rel=0.005)
    # (a few major cycles on the core's cross-shaped PSF leave the fainter ones partly CLEANed)
    assert res.restored[c, c] == pytest.approx(srcs[0][2], rel=0.01)
