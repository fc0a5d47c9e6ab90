from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from actors.variability.photometry import (
    FitsImage,
    PhotometryError,
    RestoringBeam,
    default_box_size,
    estimate_noise,
    forced_photometry,
    measure_fits,
)
from tests.actors.variability.synth import make_image, write_fits


def _grid_positions(
    image: FitsImage, spacing: int = 32, margin: int = 24, jitter: float = 0.5, seed: int = 0
):
    ny, nx = image.data.shape
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[margin : ny - margin : spacing, margin : nx - margin : spacing]
    x = xs.ravel() + rng.uniform(-jitter, jitter, xs.size)
    y = ys.ravel() + rng.uniform(-jitter, jitter, ys.size)
    ra, dec = image.wcs.pixel_to_world_values(x, y)
    return np.asarray(ra), np.asarray(dec)


def test_noise_free_sources_are_recovered_exactly_with_rotated_beam_and_subpixel_positions():
    beam = RestoringBeam(24.0 / 3600, 12.0 / 3600, 63.0)
    template = make_image(sigma=1e-12, beam=beam)
    ra, dec = _grid_positions(template, seed=3)
    flux = np.linspace(0.01, 1.0, ra.size)
    img = make_image(sigma=1e-12, beam=beam, sources=list(zip(ra, dec, flux, strict=True)))
    r = forced_photometry(img, ra, dec)
    assert r.valid.all()
    np.testing.assert_allclose(r.flux_jy, flux, rtol=1e-5, atol=1e-9)


def test_fluxes_within_errors_and_errors_are_calibrated():
    """Pull distribution (measured − true)/error over many sources and noise realisations."""
    pulls, blank = [], []
    for seed in range(4):
        template = make_image(seed=seed)
        ra, dec = _grid_positions(template, seed=seed)
        rng = np.random.default_rng(100 + seed)
        flux = rng.uniform(0.003, 0.05, ra.size)
        img = make_image(seed=seed, sources=list(zip(ra, dec, flux, strict=True)), background=0.003)
        r = forced_photometry(img, ra, dec)
        assert r.valid.all()
        pulls.append((r.flux_jy - flux) / r.err_jy)
        # Blank sky halfway between the sources: the same errors must describe it.
        x, y = img.wcs.world_to_pixel_values(ra, dec)
        rb, db = img.wcs.pixel_to_world_values(np.asarray(x) + 16, np.asarray(y) + 16)
        rr = forced_photometry(img, rb, db)
        blank.append(rr.flux_jy[rr.valid] / rr.err_jy[rr.valid])
    p = np.concatenate(pulls)
    b = np.concatenate(blank)
    assert p.size > 400
    # ~480 pulls: the mean's statistical scatter is ~0.05, plus a small crowding bias in the
    # background (a source every 32 pixels here).
    assert abs(p.mean()) < 0.2
    assert 0.85 < p.std() < 1.15
    assert abs(b.mean()) < 0.2
    assert 0.85 < b.std() < 1.15
    # The local rms is the image noise, and the error is larger than it (correlated pixels).
    assert np.median(r.local_rms_jy) == pytest.approx(1e-3, rel=0.1)
    assert np.all(r.err_jy > r.local_rms_jy)
    np.testing.assert_allclose(r.snr, r.peak_jy / (r.err_jy * r.pb_gain))


def test_primary_beam_correction_and_gain_cut():
    template = make_image(sigma=1e-6)
    ra, dec = _grid_positions(template)
    img = make_image(sigma=1e-6, sources=[(a, d, 0.5) for a, d in zip(ra, dec, strict=True)])

    def beam(r: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.where(r > 150.0, 0.5, 0.05)

    res = forced_photometry(img, ra, dec, beam=beam, min_pb_gain=0.1)
    inside = ra > 150.0
    assert res.valid[inside].all() and not res.valid[~inside].any()
    np.testing.assert_allclose(res.flux_jy[inside], 1.0, rtol=1e-3)
    np.testing.assert_allclose(res.peak_jy[inside], 0.5, rtol=1e-3)
    assert np.isnan(res.flux_jy[~inside]).all()
    np.testing.assert_allclose(res.snr[inside], res.flux_jy[inside] / res.err_jy[inside])


def test_positions_off_the_image_or_on_blanked_pixels_are_not_measured():
    img = make_image()
    data = img.data.copy()
    data[:, :60] = np.nan  # blanked strip on the left (pixel x < 60)
    img = FitsImage(data, img.wcs, img.beam, img.header)
    ny, nx = data.shape
    x = np.array([200.0, 30.0, 2.0, nx + 50.0, 200.0])
    y = np.array([200.0, 200.0, 200.0, 200.0, ny - 1.0])
    ra, dec = img.wcs.pixel_to_world_values(x, y)
    ra = np.append(ra, 330.0)  # the far side of the sky: no pixel at all
    dec = np.append(dec, -40.0)
    r = forced_photometry(img, ra, dec)
    assert r.valid.tolist() == [True, False, False, False, False, False]
    assert np.isfinite(r.flux_jy[0]) and np.isnan(r.flux_jy[1:]).all()
    assert len(r) == 6


def test_noise_map_ignores_blanked_pixels_and_tracks_a_gradient():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((300, 600)) * np.linspace(1.0, 3.0, 600)[None, :] + 5.0
    data[:100, :100] = np.nan
    nm = estimate_noise(data, 60)
    b, s = nm.at(np.array([30.0, 300.0, 570.0]), np.array([150.0, 150.0, 150.0]))
    np.testing.assert_allclose(b, 5.0, atol=0.15)
    np.testing.assert_allclose(s, [1.0 + 2 * 30 / 600, 2.0, 1.0 + 2 * 570 / 600], rtol=0.08)
    bf, sf = nm.full()
    assert bf.shape == data.shape and np.isfinite(sf).all()
    with pytest.raises(PhotometryError):
        estimate_noise(np.zeros(10), 10)


def test_default_box_size_scales_with_the_beam():
    img = make_image()
    cov = img.beam.pixel_covariance(img.wcs)
    assert default_box_size(cov, (4800, 4800)) == 120  # 4 px FWHM → 30 beams
    assert default_box_size(cov, (50, 50)) == 50


def test_fits_round_trip_including_degenerate_axes(tmp_path):
    img = make_image(sources=[(150.0, 40.0, 0.02)])
    p2 = write_fits(img, tmp_path / "a.fits")
    p4 = write_fits(img, tmp_path / "b.fits", four_d=True)
    direct = forced_photometry(img, [150.0], [40.0])
    for p in (p2, p4):
        r = measure_fits(p, [150.0], [40.0])
        np.testing.assert_allclose(r.flux_jy, direct.flux_jy, rtol=1e-4)
        np.testing.assert_allclose(r.err_jy, direct.err_jy, rtol=1e-4)


def test_bad_inputs_name_the_problem(tmp_path):
    img = make_image()
    header = img.wcs.to_header()
    p = tmp_path / "nobeam.fits"
    fits.PrimaryHDU(data=img.data, header=header).writeto(p)
    with pytest.raises(PhotometryError, match="BMAJ"):
        FitsImage.load(p)
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not a fits file at all" * 200)
    with pytest.raises(PhotometryError):
        FitsImage.load(junk)
    with pytest.raises(PhotometryError, match="1-D"):
        forced_photometry(img, [1.0, 2.0], [1.0])
    with pytest.raises(PhotometryError):
        RestoringBeam(0.0, 1.0, 0.0)
