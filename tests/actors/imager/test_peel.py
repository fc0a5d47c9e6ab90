"""Known sources (the calibration sets' models) are predicted with the drift beam, and put back
into the restored image at their exact position with the flux the image would have measured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from actors.imager import peel
from actors.imager.clean import Beam
from actors.imager.fitsimage import make_header
from actors.imager.selfcal import average_parallel_hands
from astro.skymodel import PointSource, source_model_vis
from sim.synthetic import dsa_like_layout, make_synthetic, offset_source, transit_phase_centre


def test_calset_sources_come_from_the_manifest() -> None:
    src = {"name": "3C286", "ra_deg": 202.78, "dec_deg": 30.51, "flux_jy": 14.9, "spectral_index": -0.46,
           "ref_freq_hz": 1.4e9}
    new = {"sources": [src], "calibrator": {"name": "3C286"}}
    # a set written before the manifest carried its model: a flux without a spectrum is not peeled
    old = {"calibrator": {"name": "3C48", "flux_jy": 16.0}}
    got = peel.calset_sources([new, old, new])
    assert got == [PointSource("3C286", 202.78, 30.51, 14.9, -0.46, 1.4e9)]


def test_prediction_matches_the_data_of_a_drifting_source() -> None:
    ra, dec = transit_phase_centre()
    bright = offset_source("cal", ra, dec, 1800, -600, 20.0)
    d, _ = make_synthetic([bright], enu=dsa_like_layout(12, 8, 2), nchan=12, ntime=6, sigma=0.0, gains=False)
    beam = peel.drift_beam(d, [bright])
    # what the sky gives a drift-scan instrument: the source through the moving primary beam
    d.vis[:] = source_model_vis(d.uvw, d.freq, [bright], d.phase_dir, beam)
    assert np.ptp(beam) > 0.01  # the beam changes over the group: the apparent flux is not constant
    chosen, b = peel.select(d, [bright], min_apparent_jy=0.5)
    assert chosen == [bright]
    hands = average_parallel_hands(d, 3)
    data, _ = hands.stokes_i()
    model = peel.predict(d, chosen, b, 3)
    assert model.shape == data.shape
    assert np.max(np.abs(data - model)) < 1e-4 * np.max(np.abs(data))
    # too faint, or not in the main lobe: left to CLEAN
    assert peel.select(d, [bright], min_apparent_jy=100.0)[0] == []
    far = offset_source("far", ra, dec, 6 * 3600, 0, 20.0)
    assert peel.select(d, [far], min_apparent_jy=0.001)[0] == []


def test_imaged_flux_is_the_weighted_mean_apparent_flux() -> None:
    s = PointSource("s", 0.0, 0.0, 2.0, -0.7)
    freq = np.linspace(1.3e9, 1.5e9, 8)
    beam = np.linspace(0.5, 0.7, 4)[:, None] * np.ones(8)[None, :]  # [ntime, nchan]
    w = np.ones((4 * 5, 4))  # 4 integrations x 5 baselines, 8 channels averaged by 2
    expected = float(np.mean(beam * s.flux(freq)[None, :]))
    assert peel.imaged_flux(s, beam, freq, 2, w, 4) == pytest.approx(expected, rel=1e-12)
    w2 = w.reshape(4, 5, 4).copy()
    w2[0] = 0.0  # the first integration flagged: it does not count
    assert peel.imaged_flux(s, beam, freq, 2, w2.reshape(20, 4), 4) == pytest.approx(
        float(np.mean(beam[1:] * s.flux(freq)[None, :])), rel=1e-12
    )


def test_restored_at_the_exact_position(tmp_path: Path) -> None:
    npix, cell = 256, np.deg2rad(4.0 / 3600)
    phase = (np.deg2rad(200.0), np.deg2rad(30.0))
    beam = Beam(np.deg2rad(30 / 3600), np.deg2rad(14 / 3600), np.deg2rad(35.0))
    src = PointSource("x", 200.0 + 0.0731 / np.cos(np.deg2rad(30.0)), 30.0 - 0.0517, 5.0)
    img = np.zeros((npix, npix), np.float32)
    peel.restore_known(img, [peel.KnownSource(src, 3.5)], phase, cell, beam)
    hdr = make_header(npix, cell, phase, 1.4e9, 1.9e8, 60600.0, beam, 1e-3)
    path = tmp_path / "x.fits"
    fits.writeto(path, img[None, None], hdr)
    w = WCS(fits.getheader(path)).celestial
    x, y = w.wcs_world2pix(src.ra_deg, src.dec_deg, 0)
    yy, xx = np.mgrid[:npix, :npix]
    cx, cy = float((img * xx).sum() / img.sum()), float((img * yy).sum() / img.sum())
    assert abs(cx - x) < 0.02 and abs(cy - y) < 0.02  # sub-pixel, through the FITS WCS
    # the flux: the integral of the Gaussian (peak 3.5 Jy/beam) over the beam area in pixels
    area = np.pi * beam.bmaj * beam.bmin / (4 * np.log(2)) / cell**2
    assert img.sum() == pytest.approx(3.5 * area, rel=1e-3)
    assert img.max() <= 3.5 and img.max() > 3.5 * 0.95
