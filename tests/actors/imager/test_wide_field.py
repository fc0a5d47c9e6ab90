"""Positions and fluxes across the whole primary beam, simulator -> converter -> imager -> photometry.

Issue 11: off-axis sources came out north of their true positions by an amount ∝ l² + m² (twice
the uncorrected w-term: ducc0 was applying the w-term with the wrong sign), and forced photometry
at the catalogue positions then lost 50-87 % of their flux. The end-to-end tests kept every source
within 0.13 deg of the centre, so none of them could see it.

Here a tile's sky is nine 1 Jy sources from the centre out to the half-power radius (1.35 deg at
1.4 GHz), at a declination north of the zenith at OVRO (55 deg) and one south of it (10 deg; the
w-term grows with the zenith angle). Twenty antennas of the core arms (baselines < 485 m, a ~1.5'
beam) keep the image small (640 x 20") while it spans the beam; the w-term shift does not depend
on the baselines, so at 1.35 deg the old sign error moved sources by ~60" = 0.7 beam. Noise on,
gains off (nothing to calibrate), no calibrators in the sky. Required:

* every source with SNR >= 20 within 1/10 of the beam's minor axis of its true position;
* forced photometry at the catalogue position (the light-curve path, `actors.variability`)
  returns the apparent flux (the drift-averaged primary beam times the spectrum, over the band)
  within 5 %, and the primary-beam-corrected flux within 5 % of the catalogue flux.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from actors.imager.pipeline import ImagingParams, calibrate_and_image
from actors.variability.measure import AiryGain, measure, read_pointing
from actors.watcher.convert import convert_group
from astro.catalogue import Catalogue, Source, nvss_name
from astro.coordinates import tile_phase_center
from astro.instrument import TILE_DURATION_S
from astro.msio import read_ms
from astro.skymodel import PointSource, drift_beam_gains, itrf_to_geodetic, lm_to_radec
from sim.observation import simulate

START = Time("2025-10-24T03:00:00")
#: (radius deg, position angle deg east of north): the centre, two rings and the half-power radius
LAYOUT = ((0.0, 0.0), (0.7, 45.0), (0.7, 225.0), (1.1, 135.0), (1.1, 315.0),
          (1.35, 0.0), (1.35, 90.0), (1.35, 180.0), (1.35, 270.0))
FLUX_JY = 1.0
SPECTRAL_INDEX = -0.7


def _sky(dec_deg: float) -> Catalogue:
    ra0, dec0 = tile_phase_center(START + (TILE_DURATION_S / 2) * u.s, dec_deg)
    sources = []
    for r, pa in LAYOUT:
        lval, mval = math.radians(r) * math.sin(math.radians(pa)), math.radians(r) * math.cos(math.radians(pa))
        ra, dec = lm_to_radec(lval, mval, math.radians(ra0), math.radians(dec0))
        ra_d, dec_d = math.degrees(float(ra)), math.degrees(float(dec))
        sources.append(Source(nvss_name(ra_d, dec_d), ra_d, dec_d, FLUX_JY, SPECTRAL_INDEX))
    return Catalogue(tuple(sources), dec_deg=dec0)


def _peak_position(img: np.ndarray, x: float, y: float) -> tuple[float, float]:
    """Sub-pixel peak near (x, y): the brightest pixel within 3 pixels, refined by a parabola per axis."""
    xi, yi = round(x), round(y)
    sub = img[yi - 3 : yi + 4, xi - 3 : xi + 4]
    j = np.unravel_index(int(np.argmax(sub)), sub.shape)
    py, px = yi - 3 + int(j[0]), xi - 3 + int(j[1])

    def vertex(a: float, b: float, c: float) -> float:
        return 0.5 * (a - c) / (a - 2 * b + c)

    return px + vertex(img[py, px - 1], img[py, px], img[py, px + 1]), py + vertex(img[py - 1, px], img[py, px], img[py + 1, px])


@pytest.mark.parametrize("dec_deg", [55.0, 10.0], ids=["north-of-zenith", "south-of-zenith"])
def test_sources_across_the_primary_beam(tmp_path: Path, dec_deg: float) -> None:
    sky = _sky(dec_deg)
    res = simulate(
        tmp_path / "raw", 1, START, dec_deg, n_ants=20, core_only=True, n_channels=4, seed=5,
        gains=False, jitter_s=0, catalogue=sky, include_calibrators=False, run_check=False,
    )
    ms = convert_group(res.groups[0].files, tmp_path / "ms").path
    params = ImagingParams(imsize=640, cellsize_arcsec=20.0, niter=20000, max_major=30,
                           selfcal=False, peel=False, flag=False)
    image = calibrate_and_image(ms, None, tmp_path / "tile.fits", params, apply_calibration=False)

    ra = np.array([s.ra_deg for s in sky.sources])
    dec = np.array([s.dec_deg for s in sky.sources])
    # the truth: each source's flux through the drifting primary beam, averaged over the tile and band
    d = read_ms(ms)
    _, lon, _ = itrf_to_geodetic(d.antenna_positions)
    model = [PointSource(s.name, s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index) for s in sky.sources]
    beam = drift_beam_gains(model, d.mjd, d.freq, d.phase_dir[1], lon, d.dish_diameter)
    apparent = np.array([float(np.mean(beam[k] * model[k].flux(d.freq)[None, :])) for k in range(len(model))])

    path = image.path
    pointing = read_pointing(path)
    m = measure(path, ra, dec, pointing)
    flux_pb, snr, valid = m.flux_jy, m.snr, m.valid
    measured_apparent = flux_pb * AiryGain.of(pointing)(ra, dec)
    img = np.asarray(fits.getdata(path), np.float64).squeeze()
    wcs = WCS(fits.getheader(path)).celestial
    xs, ys = wcs.world_to_pixel_values(ra, dec)
    bmin_arcsec = image.beam[1]

    assert valid.all() and (snr >= 20).all(), snr
    for k, s in enumerate(sky.sources):
        px, py = _peak_position(img, float(xs[k]), float(ys[k]))
        ra_m, dec_m = wcs.pixel_to_world_values(px, py)
        dx = (float(ra_m) - s.ra_deg) * math.cos(math.radians(s.dec_deg)) * 3600.0
        dy = (float(dec_m) - s.dec_deg) * 3600.0
        where = f"{s.name} at r={LAYOUT[k][0]} deg, PA {LAYOUT[k][1]}"
        assert math.hypot(dx, dy) < 0.1 * bmin_arcsec, f"{where}: offset ({dx:+.1f}\", {dy:+.1f}\"), BMIN {bmin_arcsec:.1f}\""
        assert measured_apparent[k] == pytest.approx(apparent[k], rel=0.05), where
        assert flux_pb[k] == pytest.approx(s.flux_jy, rel=0.05), where
