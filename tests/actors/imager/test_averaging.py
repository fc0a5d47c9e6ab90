"""Baseline-dependent averaging (averaging.py): on DSA-110's own baselines and integrations, the
bins keep a source at the primary beam's half-power radius within the decorrelation budget, grid
where the integrations would, and CLEAN gives the same fluxes with under half the rows."""

from __future__ import annotations

import numpy as np
import pytest

from actors.imager import averaging
from actors.imager.clean import cotton_schwab
from actors.imager.gridding import grid_dirty
from astro.skymodel import point_source_vis
from astro.stations import dsa110_array
from sim.synthetic import SIDEREAL_RATE, enu_uvw

ARCSEC = np.pi / 180 / 3600
C = 299_792_458.0
DEC = np.deg2rad(33.0)
#: 4 of the correlator's 244 kHz channels, as the imager averages them before gridding
WIDTH = 4 * 244_140.625
#: the correlator's integration; a 5-minute tile holds 24 of them
INTEGRATION_S = 12.884902


def _dsa110(
    ntime: int = 24, nchan: int = 8, n_ants: int = 96, core_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """uvw [ntime * nbl, 3] (time-major) of the tile's integrations on DSA-110's cross-correlations."""
    enu = dsa110_array(n_ants, core_only=core_only).enu
    a1, a2 = np.triu_indices(len(enu), 1)
    ha = (np.arange(ntime) - (ntime - 1) / 2) * INTEGRATION_S * SIDEREAL_RATE
    uvw = enu_uvw(enu, a1, a2, ha, DEC).reshape(-1, 3)
    freq = 1311.25e6 + WIDTH / 2 + np.arange(nchan) * WIDTH * (192 // nchan)  # across the band
    return uvw, freq


def _response(uvw_l: np.ndarray, vis: np.ndarray, w: np.ndarray, lmn: tuple[float, float, float]) -> float:
    """The dirty image's value at (l, m): the weighted mean of the visibilities turned back to phase
    zero there; `uvw_l` [..., 3] in wavelengths, broadcast against vis and w."""
    el, em, en = lmn
    ph = 2j * np.pi * (uvw_l[..., 0] * el + uvw_l[..., 1] * em + uvw_l[..., 2] * (en - 1.0))
    return float(np.sum(w * (vis * np.exp(ph)).real) / np.sum(w))


def test_bins_average_short_baselines_only_and_round_trip() -> None:
    ntime = 24
    uvw, freq = _dsa110(ntime)
    nbl = len(uvw) // ntime
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, (len(uvw), len(freq))).astype(np.float32)
    w[np.arange(ntime) * nbl + 5, :] = 0.0  # a flagged baseline: its bins carry no weight
    radius = averaging.half_power_radius(freq, 4.65)
    assert np.rad2deg(radius) == pytest.approx(1.45, abs=0.01)  # 1.029 λ/D / 2 at 1312 MHz
    bins = averaging.plan(uvw, freq, w, ntime, radius, 0.01)
    per_bin = np.diff(bins.start)
    k = per_bin[bins.bin_of[:nbl]]  # integrations in each baseline's first bin
    b = np.linalg.norm(uvw[:nbl], axis=1)
    # the longest baselines keep every integration; the shortest are averaged over the tile
    assert k[np.argmax(b)] == 1
    assert k[np.argmin(b)] == ntime
    # every averaged bin within the budget at the half-power radius, at the top of the band
    tracks = uvw.reshape(ntime, nbl, 3)
    step = np.linalg.norm(np.diff(tracks, axis=0), axis=2).mean(axis=0)
    x = k * step * np.sin(radius) * freq.max() / C
    assert np.max(1.0 - np.sinc(x[k > 1])) <= 0.01 + 1e-12
    # DSA-110 is mostly short baselines: under half of the rows remain
    assert 0.3 < bins.fraction < 0.55
    # bins hold consecutive integrations of one baseline
    for o in (0, bins.nbin // 2, bins.nbin - 1):
        rows = bins.members[bins.start[o] : bins.start[o + 1]]
        assert len(set(rows % nbl)) == 1 and np.all(np.diff(rows // nbl) == 1)
    assert float(bins.weight.sum(dtype=np.float64)) == pytest.approx(float(w.sum(dtype=np.float64)), rel=1e-6)
    flagged = np.unique(bins.bin_of[np.arange(ntime) * nbl + 5])
    assert np.all(bins.weight[flagged] == 0)
    # expand then average is the identity on bins (0 where a bin has no weight)
    x_bins = (rng.standard_normal(bins.weight.shape) + 1j * rng.standard_normal(bins.weight.shape)).astype(np.complex64)
    x_bins[flagged] = 0
    np.testing.assert_allclose(bins.average(bins.expand(x_bins)), x_bins, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="integrations"):
        averaging.plan(uvw[:-1], freq, w[:-1], ntime, radius, 0.01)


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
        bins = averaging.plan(uvw, freq, w, 24, radius, budget)
        at_freq = bins.uvw[:, None, :] * freq[None, :, None] / C
        binned = _response(at_freq, bins.average(vis), bins.weight, lmn)
        # each bin loses at most the budget, the short baselines (most of the weight) far less
        assert 1.0 - budget <= binned < 1.0 - 1e-5
    # what averaging that ignored baseline length (4 integrations everywhere) would cost the longest
    nbl = len(uvw) // 24
    step = float(np.max(np.linalg.norm(uvw[nbl : 2 * nbl] - uvw[:nbl], axis=1)))
    assert 1.0 - np.sinc(4 * step * np.sin(radius) * freq.max() / C) > 0.1


def test_gridding_the_bins_matches_gridding_the_channels_and_clean_keeps_the_flux() -> None:
    """The bins put a source where the integrations put it, with the same flux, and CLEAN on the
    bins recovers the sky of CLEAN on every integration."""
    # the core arms (< 485 m): a whole-beam image on a small grid
    uvw, freq = _dsa110(24, 16, n_ants=82, core_only=True)
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
    bins = averaging.plan(uvw, freq, w, 24, radius, 0.01)
    assert bins.fraction < 0.3
    full = grid_dirty(uvw, freq, vis, w, npix, cell, epsilon=1e-5)
    binned = grid_dirty(bins.uvw, freq, bins.average(vis), bins.weight, npix, cell, epsilon=1e-5)
    c = npix // 2
    for dx, dy, s in srcs:
        y, x = c + int(dy), c - int(dx)  # east is to the left
        assert np.unravel_index(np.argmax(binned[y - 3 : y + 4, x - 3 : x + 4]), (7, 7)) == (3, 3)
        assert binned[y, x] == pytest.approx(full[y, x], rel=0.01, abs=2e-3 * s)
    kw = {"niter": 2000, "threshold_sigma": 0.0, "threshold_jy": 0.01, "max_major": 4, "epsilon": 1e-5}
    data = vis.copy()
    ref = cotton_schwab(uvw, freq, vis, w, npix, cell, **kw)  # type: ignore[arg-type]
    res = cotton_schwab(uvw, freq, vis, w, npix, cell, averaging=bins, **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(vis, data)  # the caller's visibilities are never written
    for dx, dy, _ in srcs:
        y, x = c + int(dy), c - int(dx)
        got = float(res.model[y - 4 : y + 5, x - 4 : x + 5].sum())
        want = float(ref.model[y - 4 : y + 5, x - 4 : x + 5].sum())
        assert got == pytest.approx(want, rel=0.015)
        assert res.restored[y, x] == pytest.approx(ref.restored[y, x], rel=0.005)
    # (a few major cycles on the core's cross-shaped PSF leave the fainter ones partly CLEANed)
    assert res.restored[c, c] == pytest.approx(srcs[0][2], rel=0.01)
