"""Gridding conventions, adjointness, weighting, beam fitting and CLEAN on small images."""

from __future__ import annotations

import numpy as np

from actors.imager.clean import Beam, cotton_schwab, fit_beam, gaussian_kernel, robust_std
from actors.imager.gridding import degrid, grid_dirty, make_psf
from actors.imager.weighting import expected_image_noise, imaging_weights
from astro.skymodel import point_source_vis

ARCSEC = np.pi / 180 / 3600


def _uv(nrow=3000, seed=0, scale=400.0):
    rng = np.random.default_rng(seed)
    uvw = rng.normal(size=(nrow, 3)) * scale
    uvw[:, 2] *= 0.2
    freq = np.array([1.35e9, 1.40e9, 1.45e9])
    return uvw, freq


def test_point_source_lands_on_the_right_pixel():
    uvw, freq = _uv()
    npix, cell = 128, 10 * ARCSEC
    lval, mval = 7 * cell, -4 * cell  # 7 pixels east, 4 south
    n = np.sqrt(1 - lval**2 - mval**2)
    v = point_source_vis(uvw[None], freq, [[lval, mval, n]], 2.5)[0, :, :, 0]
    w = np.ones(v.shape, np.float32)
    img = grid_dirty(uvw, freq, v, w, npix, cell, epsilon=1e-6)
    y, x = np.unravel_index(np.argmax(img), img.shape)
    assert (x, y) == (npix // 2 - 7, npix // 2 - 4)  # east is to the left (RA decreases with x)
    assert abs(img[y, x] - 2.5) < 1e-3


def test_degrid_is_adjoint_of_grid():
    uvw, freq = _uv(500)
    rng = np.random.default_rng(1)
    npix, cell = 64, 20 * ARCSEC
    img = rng.standard_normal((npix, npix)).astype(np.float32)
    vis = (rng.standard_normal((500, 3)) + 1j * rng.standard_normal((500, 3))).astype(np.complex64)
    w = np.ones(vis.shape, np.float32)
    mv = degrid(uvw, freq, img, cell, epsilon=1e-6)
    d = grid_dirty(uvw, freq, vis, w, npix, cell, epsilon=1e-6, sum_weights=1.0)
    lhs = np.vdot(mv, vis).real
    rhs = float(np.sum(img.astype(np.float64) * d))
    assert abs(lhs - rhs) < 1e-3 * abs(lhs)


def test_psf_and_beam_fit():
    uvw, freq = _uv()
    psf = make_psf(uvw, freq, np.ones((uvw.shape[0], 3), np.float32), 128, 10 * ARCSEC)
    assert abs(psf[64, 64] - 1) < 1e-6 and psf.max() <= 1 + 1e-5
    # analytic elliptical Gaussian: FWHM 40" x 20", PA 30 deg east of north
    beam = Beam(40 * ARCSEC, 20 * ARCSEC, np.deg2rad(30))
    k = gaussian_kernel(beam, 2 * ARCSEC, nsig=6)
    pad = np.zeros((128, 128), np.float32)
    r = k.shape[0] // 2
    pad[64 - r : 64 + r + 1, 64 - r : 64 + r + 1] = k
    fit = fit_beam(pad, 2 * ARCSEC)
    assert abs(fit.bmaj / ARCSEC - 40) < 0.5 and abs(fit.bmin / ARCSEC - 20) < 0.5
    assert abs(np.rad2deg(fit.bpa) - 30) < 1.0
    # the major axis points east of north: at PA 30 the kernel is larger towards +l (left) and +m (up)
    assert k[r + 5, r - 3] > k[r + 5, r + 3]


def test_weighting_modes():
    uvw, freq = _uv(4000, scale=300)
    nat = np.ones((4000, 3), np.float32)
    npix, cell = 256, 10 * ARCSEC
    w_nat = imaging_weights(uvw, freq, nat, npix, cell, None)
    w_uni = imaging_weights(uvw, freq, nat, npix, cell, mode="uniform")
    w_r0 = imaging_weights(uvw, freq, nat, npix, cell, 0.0)
    w_r2 = imaging_weights(uvw, freq, nat, npix, cell, 2.0)
    np.testing.assert_array_equal(w_nat, nat)
    # dense inner cells are down-weighted: inner/outer ratio falls from natural to uniform
    r = np.hypot(uvw[:, 0], uvw[:, 1])
    inner, outer = r < np.percentile(r, 20), r > np.percentile(r, 80)

    def ratio(w):
        return w[inner].mean() / w[outer].mean()

    assert ratio(w_uni) < ratio(w_r0) < ratio(w_r2) <= ratio(w_nat) + 1e-6
    # noise: natural weighting is optimal
    sig = 0.5
    wn = nat / sig**2
    assert expected_image_noise(w_nat, wn) < expected_image_noise(w_r0, wn) < expected_image_noise(w_uni, wn)
    assert abs(expected_image_noise(w_nat, wn) - sig / np.sqrt(nat.size)) < 1e-9


def test_clean_recovers_point_sources_and_noise():
    rng = np.random.default_rng(4)
    uvw, _ = _uv(6000, seed=4, scale=250)
    freq = np.linspace(1.35e9, 1.45e9, 4)
    npix, cell = 256, 12 * ARCSEC
    src = [(20, 30, 3.0), (-50, -10, 1.0), (5, -70, 0.5)]  # (dx pixels east, dy pixels north, Jy)
    lmn = []
    for dx, dy, _ in src:
        lv, mv = dx * cell, dy * cell
        lmn.append([lv, mv, np.sqrt(1 - lv * lv - mv * mv)])
    v = point_source_vis(uvw[None], freq, lmn, [s[2] for s in src])[0, :, :, 0]
    sig = 0.05
    v = (v + sig * (rng.standard_normal(v.shape) + 1j * rng.standard_normal(v.shape))).astype(np.complex64)
    nat = np.full(v.shape, 1 / sig**2, np.float32)
    w = imaging_weights(uvw, freq, nat, npix, cell, 0.0)
    res = cotton_schwab(uvw, freq, v, w, npix, cell, niter=3000, threshold_sigma=3, max_major=8)
    assert res.n_major >= 1 and res.n_components > 3
    for dx, dy, s in src:
        x, y = npix // 2 - dx, npix // 2 + dy
        assert abs(res.restored[y - 1 : y + 2, x - 1 : x + 2].max() - s) < 0.05 * s
        assert abs(res.model[y - 2 : y + 3, x - 2 : x + 3].sum() - s) < 0.05 * s
    expected = expected_image_noise(w, nat)
    assert res.noise < 1.5 * expected
    assert abs(robust_std(res.residual) - res.noise) < 1e-9


def test_degrid_matches_the_direct_sum_off_axis():
    """The w-term sign: a pixel 2 deg off centre, |w| up to ~2 km, against the direct sum."""
    rng = np.random.default_rng(0)
    uvw = rng.normal(size=(2000, 3)) * 1000.0
    freq = np.array([1.4e9])
    npix, cell = 512, 20 * ARCSEC
    c, dx, dy = npix // 2, 100, 150  # 100 pixels east, 150 north
    img = np.zeros((npix, npix), np.float32)
    img[c + dy, c - dx] = 1.0
    lval, mval = dx * cell, dy * cell
    n = np.sqrt(1 - lval**2 - mval**2)
    mv = degrid(uvw, freq, img, cell, epsilon=1e-5)
    ref = point_source_vis(uvw[None], freq, [[lval, mval, n]], 1.0)[0, :, :, 0]
    assert np.abs(mv - ref).max() < 1e-4
    flipped = point_source_vis(uvw[None] * [1, 1, -1], freq, [[lval, mval, n]], 1.0)[0, :, :, 0]
    assert np.abs(mv - flipped).max() > 0.5  # the test can tell the two signs apart


def test_off_axis_source_with_large_w_lands_on_its_pixel():
    """A coplanar array tilted by 30 deg (w ~ 0.58 v): 1.2 deg off, the wrong w sign moves the peak."""
    rng = np.random.default_rng(2)
    uv = rng.normal(size=(4000, 2)) * 600.0
    uvw = np.column_stack([uv, 0.58 * uv[:, 1]])
    freq = np.array([1.35e9, 1.40e9, 1.45e9])
    npix, cell = 1024, 5 * ARCSEC
    dx, dy = 500, 600  # 0.69 deg east, 0.83 deg north
    lval, mval = dx * cell, dy * cell
    n = np.sqrt(1 - lval**2 - mval**2)
    v = point_source_vis(uvw[None], freq, [[lval, mval, n]], 1.0)[0, :, :, 0]
    img = grid_dirty(uvw, freq, v, np.ones(v.shape, np.float32), 2 * npix, cell, epsilon=1e-5)
    c = npix  # the image is 2 npix wide
    y, x = np.unravel_index(np.argmax(img), img.shape)
    assert (x, y) == (c - dx, c + dy)
    assert img[y, x] > 0.98
