"""Quicklook figures: the centre zoom, reading only that region, the stretch, the beam in pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from matplotlib import image as mpimg

from actors.imager.clean import Beam
from actors.imager.fitsimage import make_header, write_fits
from astro import quicklook as q


def image_file(path: Path, n: int) -> tuple[Path, fits.Header]:
    rng = np.random.default_rng(3)
    img = rng.normal(0, 1e-3, (n, n)).astype(np.float32)
    img[n // 2, n // 2] = 0.8  # a bright source at the phase centre
    img[n // 2 + 20, n // 2 - 30] = 0.01  # a 10-sigma one near it
    beam = Beam(np.deg2rad(30 / 3600), np.deg2rad(15 / 3600), np.deg2rad(45.0))
    hdr = make_header(n, np.deg2rad(3 / 3600), (np.deg2rad(200.0), np.deg2rad(40.0)), 1.4e9, 1e8, 60000.0, beam, 1e-3)
    return write_fits(path, img, hdr), hdr


def test_centre_box_zooms_on_a_quarter_but_never_below_256_px() -> None:
    assert q.centre_box(4800, 4800, True) == (1800, 3000, 1800, 3000)
    assert q.centre_box(300, 300, True) == (22, 278, 22, 278)
    assert q.centre_box(200, 100, True) == (0, 200, 0, 100)
    assert q.centre_box(4800, 4800, False) == (0, 4800, 0, 4800)


def test_cutout_reads_the_centre_with_its_wcs_beam_and_noise(tmp_path: Path) -> None:
    path, hdr = image_file(tmp_path / "img.fits", 1600)
    cut = q.read_cutout(path, zoom=True, max_px=256)
    assert cut.data.shape == (200, 200)  # 400 px central region, block-max by 2
    assert cut.noise == 1e-3 and cut.unit == "Jy/beam" and cut.zoomed
    assert np.nanmax(cut.data) == np.float32(0.8)  # the block maximum keeps the point source
    assert cut.wcs is not None
    ra, dec = cut.wcs.pixel_to_world_values(100, 100)  # display pixel 100 = image pixel 800 = the centre
    centre = WCS(hdr).celestial.pixel_to_world_values(800, 800)
    assert abs(ra - centre[0]) < 1e-3 and abs(dec - centre[1]) < 1e-3
    major, minor, pa = cut.beam_px or (0, 0, 0)
    assert (round(major, 2), round(minor, 2), pa) == (5.0, 2.5, 45.0)  # 30"/3"/2, 15"/3"/2


def test_stretch_does_not_saturate_and_shows_faint_sources(tmp_path: Path) -> None:
    path, _ = image_file(tmp_path / "img.fits", 512)
    cut = q.read_cutout(path, zoom=True, max_px=512)
    norm = q.norm_for(cut)
    assert norm.vmax == np.float32(0.8) and norm.vmin == -3e-3
    assert abs(float(norm(0.8)) - 1.0) < 1e-6 and float(norm(0.4)) < 0.99  # the peak is the top: none clipped
    assert float(norm(0.01)) > 2.5 * float(norm(1e-3)) > 0.1  # 10 sigma stands out of the 1-sigma noise


def test_quicklook_and_thumbnail_files(tmp_path: Path) -> None:
    path, _ = image_file(tmp_path / "img.fits", 512)
    ql = mpimg.imread(q.quicklook_fits(path, tmp_path / "ql.png"))
    assert ql.shape[1] > ql.shape[0] > 400  # a figure with axes and a colour bar
    thumb = mpimg.imread(q.thumbnail_fits(path, tmp_path / "th.png"))
    assert thumb.shape[:2] == (256, 256)


def test_beam_in_pixels_from_a_cd_matrix_header() -> None:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [10.0, 20.0]
    w.wcs.crpix = [50, 50]
    w.wcs.cd = [[-1 / 3600 * 4, 0], [0, 1 / 3600 * 4]]
    hdr = w.to_header()
    hdr["BMAJ"], hdr["BMIN"], hdr["BPA"] = 40 / 3600, 20 / 3600, 0.0
    data = np.zeros((100, 100), np.float32)
    cut = q.cutout(data, hdr, (0, 100, 0, 100), max_px=100, zoomed=False)
    assert cut.beam_px is not None and round(cut.beam_px[0], 6) == 10.0
