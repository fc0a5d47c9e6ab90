from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time

from actors.mosaicker.linear import (
    MosaicError,
    Tile,
    common_wcs,
    count_sources,
    gaussian_primary_beam,
    hourly_groups,
    linear_mosaic,
    make_mosaic,
    mosaic_name,
)
from actors.variability.photometry import FitsImage, RestoringBeam, forced_photometry
from tests.actors.variability.synth import make_image, write_fits

DEC = 40.0
PB_FWHM = 2.7
PB = gaussian_primary_beam(PB_FWHM)
RBEAM = RestoringBeam(90.0 / 3600, 75.0 / 3600, 10.0)
SHAPE = (160, 160)
CDELT = 30.0 / 3600  # 1.33 deg tiles


def _tiles(
    ras: list[float],
    *,
    sigma: float = 1e-3,
    sources: list[tuple[float, float, float]] = (),  # type: ignore[assignment]
    seed: int = 0,
    mjd0: float = 60972.5,
) -> list[Tile]:
    """Tiles centred on ``ras`` at DEC; sources (ra, dec, true flux) attenuated by each tile's PB."""
    tiles = []
    for i, ra0 in enumerate(ras):
        app = [
            (r, d, f * float(PB(np.array([r]), np.array([d]), ra0, DEC)[0])) for r, d, f in sources
        ]
        img = make_image(
            ra0=ra0, dec0=DEC, shape=SHAPE, cdelt_deg=CDELT, beam=RBEAM, sigma=sigma, sources=app, seed=seed + i
        )
        tiles.append(Tile.from_image(img, mjd=mjd0 + i * 5 / 1440, sigma_jy=sigma))
    return tiles


def _as_image(m) -> FitsImage:
    h = m.wcs.to_header()
    m.beam.to_header(h)
    return FitsImage(m.data, m.wcs, m.beam, h)


def _value_at(m, ra: float, dec: float, arr: np.ndarray) -> float:
    x, y = m.wcs.world_to_pixel_values(ra, dec)
    return float(arr[round(float(y)), round(float(x))])


def test_common_wcs_holds_every_tile_and_handles_ra_wrap():
    tiles = _tiles([359.4, 0.4], sigma=1e-3)
    w, (ny, nx), coarsened = common_wcs(tiles)
    assert not coarsened
    assert w.wcs.crval[0] == pytest.approx(359.9, abs=0.01) or w.wcs.crval[0] == pytest.approx(-0.1, abs=0.01)
    for t in tiles:
        tny, tnx = t.image.data.shape
        ra, dec = t.image.wcs.pixel_to_world_values([0, tnx - 1, 0, tnx - 1], [0, 0, tny - 1, tny - 1])
        x, y = w.world_to_pixel_values(ra, dec)
        assert np.all((x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1))
    _, shape2, coarse2 = common_wcs(tiles, max_pixels=10_000)
    assert coarse2 and shape2[0] * shape2[1] <= 10_000
    with pytest.raises(MosaicError):
        common_wcs([])


def test_mosaic_recovers_source_flux_noise_free():
    """A source between two pointings, attenuated differently in each tile, comes back exact."""
    src = (150.5, DEC + 0.1, 0.05)
    tiles = _tiles([150.0, 150.9, 151.8], sigma=1e-6, sources=[src])
    m = linear_mosaic(tiles, PB)
    assert m.n_images == 3
    r = forced_photometry(_as_image(m), [src[0]], [src[1]])
    assert r.flux_jy[0] == pytest.approx(0.05, rel=0.01)
    # Exact coordinate transform vs interpolated lattice: no visible difference.
    m1 = linear_mosaic(tiles, PB, coord_step=1)
    diff = np.nanmax(np.abs(m1.data - m.data))
    assert diff < 1e-3 * 0.05


def test_mosaic_noise_map_is_right_and_overlap_reduces_noise():
    sigma = 1e-3
    ras = [150.0, 150.9, 151.8]
    tiles = _tiles(ras, sigma=sigma, seed=7)
    m = linear_mosaic(tiles, PB)
    # Analytic noise at a point between the first two pointings.
    ra, dec = 150.45, DEC
    covering = [r0 for r0 in ras if abs(r0 - ra) * math.cos(math.radians(DEC)) < 0.6]
    assert len(covering) == 2
    gains = np.array([float(PB(np.array([ra]), np.array([dec]), r0, DEC)[0]) for r0 in covering])
    expect = 1 / math.sqrt(np.sum(gains**2 / sigma**2))
    assert _value_at(m, ra, dec, m.noise) == pytest.approx(expect, rel=0.02)
    # Better than either tile alone at that point.
    assert expect < sigma / gains.max()
    # The empirical scatter follows the noise map everywhere it is defined.
    z = (m.data / m.noise)[np.isfinite(m.data)]
    assert z.size > 10_000
    assert 0.85 < np.std(z) < 1.1
    assert abs(np.mean(z)) < 0.1
    assert m.noise_jy == pytest.approx(np.nanmedian(m.noise))


def test_two_identical_pointings_halve_the_variance():
    sigma = 2e-3
    tiles = _tiles([150.0], sigma=sigma, seed=1) + _tiles([150.0], sigma=sigma, seed=2)
    m = linear_mosaic(tiles, PB)
    centre = _value_at(m, 150.0, DEC, m.noise)
    assert centre == pytest.approx(sigma / math.sqrt(2), rel=0.01)
    single = linear_mosaic(tiles[:1], PB)
    inner = single.noise < 1.3 * sigma
    ratio = np.nanstd(m.data[inner]) / np.nanstd(single.data[inner])
    assert ratio == pytest.approx(1 / math.sqrt(2), rel=0.1)


def test_write_products_and_count_sources(tmp_path):
    rng = np.random.default_rng(5)
    srcs = [(150.4 + 0.25 * k, DEC - 0.3 + 0.15 * k + rng.uniform(-0.01, 0.01), 0.05) for k in range(5)]
    tiles = _tiles([150.0, 150.9, 151.8], sigma=1e-3, sources=srcs, seed=3)
    prod = make_mosaic(tiles, PB, tmp_path / "mosaics")
    assert prod.n_images == 3
    assert prod.n_sources == 5
    assert prod.noise_jy == pytest.approx(linear_mosaic(tiles, PB).noise_jy)
    assert prod.name == mosaic_name(tiles[0].mjd, tiles[-1].mjd)
    with fits.open(prod.path) as h:
        assert h[0].header["NIMAGES"] == 3 and h[0].header["BUNIT"] == "JY/BEAM"
        assert "BMAJ" in h[0].header
        assert h[0].data.ndim == 2
    with fits.open(prod.noise_path) as h:
        assert np.nanmedian(h[0].data) == pytest.approx(prod.noise_jy, rel=1e-5)
    with open(prod.thumbnail_path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    d = prod.to_dict()
    assert {"n_images", "n_sources", "noise_jy", "path", "thumbnail_path", "start_mjd", "end_mjd"} <= set(d)
    # Deterministic paths: running the job again overwrites the same files.
    again = make_mosaic(tiles, PB, tmp_path / "mosaics")
    assert again.path == prod.path and again.n_sources == prod.n_sources


def test_count_sources_on_pure_noise_is_rare():
    m = linear_mosaic(_tiles([150.0, 150.9], sigma=1e-3, seed=11), PB)
    assert count_sources(m) <= 1


def test_tile_from_fits(tmp_path):
    img = make_image(ra0=150.0, dec0=DEC, shape=SHAPE, cdelt_deg=CDELT, beam=RBEAM, sigma=1e-3)
    p = write_fits(img, tmp_path / "t.fits", mjd=60972.5)
    t = Tile.load(p)
    assert t.mjd == 60972.5 and t.pointing_ra_deg == pytest.approx(150.0)
    assert t.sigma_jy == pytest.approx(1e-3, rel=0.1)
    nomjd = write_fits(img, tmp_path / "n.fits")
    with pytest.raises(MosaicError, match="MJD-OBS"):
        Tile.load(nomjd)


@dataclass
class _Img:
    mjd: float
    dec_deg: float = 40.0


def test_hourly_groups():
    step = 5 / 1440
    run = [_Img(60972.5 + i * step) for i in range(30)]
    groups = hourly_groups(run)
    assert [len(g) for g in groups] == [12, 12]
    assert groups[0][0] is run[0] and groups[1][0] is run[12]
    # A missing tile breaks the run; a strip change too.
    gap = [_Img(60972.5 + i * step) for i in range(8)] + [_Img(60972.5 + (i + 10) * step) for i in range(12)]
    assert [g[0].mjd for g in hourly_groups(gap)] == [gap[8].mjd]
    strip = [_Img(60972.5 + i * step, 40.0 if i < 6 else 54.0) for i in range(18)]
    assert [g[0] for g in hourly_groups(strip)] == [strip[6]]
    assert hourly_groups(run, n=3)[0] == run[:3]
    with pytest.raises(ValueError, match="sorted"):
        hourly_groups([run[1], run[0]])


def test_mosaic_name():
    start = Time("2025-10-24T12:00:00", scale="utc").mjd
    assert mosaic_name(start, start + 55 / 1440) == "2025-10-24_hourly_12-13UTC"
    assert mosaic_name(start + 0.5 / 24, start + 1.4 / 24) == "2025-10-24_hourly_1230-1324UTC"


def test_blanked_pixels_stay_local_and_other_tiles_fill_them():
    tiles = _tiles([150.0, 150.9], sigma=1e-3, seed=4)
    t0 = tiles[0]
    data = np.array(t0.image.data, copy=True)
    data[:, 100:110] = np.nan  # a blanked strip inside tile 0, partly overlapping tile 1
    img = FitsImage(data, t0.image.wcs, t0.image.beam, t0.image.header)
    blanked = Tile(img, t0.mjd, t0.pointing_ra_deg, t0.pointing_dec_deg, t0.sigma_jy)
    wcs, shape, _ = common_wcs(tiles)
    for order in (1, 3):
        kw = {"order": order, "grid": (wcs, shape)}
        full = linear_mosaic([t0], PB, **kw)
        only = linear_mosaic([blanked], PB, **kw)
        both = linear_mosaic([blanked, tiles[1]], PB, **kw)
        extra = np.count_nonzero(np.isnan(only.data)) - np.count_nonzero(np.isnan(full.data))
        # About the strip (10 × 160 tile pixels) plus an interpolation fringe, no more.
        assert 10 * 160 < extra < 14 * 160
        assert np.count_nonzero(np.isnan(both.data)) < np.count_nonzero(np.isnan(only.data))
        assert np.isnan(only.noise).sum() == np.isnan(only.data).sum()
    with pytest.raises(MosaicError):
        linear_mosaic(tiles, PB, order=2)
