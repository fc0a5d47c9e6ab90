from __future__ import annotations

import re

import numpy as np
import pytest

from astro import catalogue as cat
from astro.calibrators import calibrator_in_tile, get_calibrator, load_calibrators, nearest_calibrator

NAME = re.compile(r"^NVSS J\d{6}\.\d[+-]\d{6}$")


def test_catalogue_is_deterministic_and_cell_consistent() -> None:
    a = cat.make_catalogue(33.0, (100.0, 106.0), seed=5)
    b = cat.make_catalogue(33.0, (100.0, 106.0), seed=5)
    assert a == b
    sub = cat.make_catalogue(33.0, (102.0, 104.0), seed=5)
    assert set(sub.by_name()) <= set(a.by_name())
    assert len(sub) > 0
    other = cat.make_catalogue(33.0, (100.0, 106.0), seed=6)
    assert other.sources != a.sources
    # wrapping through RA 0
    w = cat.make_catalogue(33.0, (358.0, 2.0), seed=5)
    ras = np.array([s.ra_deg for s in w.sources])
    assert np.all((ras >= 358.0) | (ras <= 2.0))


def test_catalogue_counts_and_names() -> None:
    c = cat.make_catalogue(54.0, (0.0, 40.0), seed=1)
    _ra, dec, flux, alpha = c.arrays()
    area = 40 * np.degrees(np.sin(np.radians(58)) - np.sin(np.radians(50)))
    density = len(c) / area
    assert 20 < density < 40  # NVSS-like: ~30 deg^-2 above 5 mJy
    assert flux.min() >= 0.005 and flux.max() <= 5.0
    assert np.all(np.abs(dec - 54.0) <= 4.0)
    assert 0.3 < (flux > 0.01).sum() / (flux > 0.005).sum() < 0.6  # steep, Euclidean-ish counts
    assert all(NAME.match(s.name) for s in c.sources)
    assert len({s.name for s in c.sources}) == len(c)
    assert abs(np.median(alpha) + 0.7) < 0.05


def test_nvss_name() -> None:
    assert cat.nvss_name(188.73625, 42.05333) == "NVSS J123456.7+420311"
    assert cat.nvss_name(0.0, -5.5).startswith("NVSS J000000.0-0530")


def test_lightcurves_and_roundtrip(tmp_path) -> None:
    c = cat.make_catalogue(16.0, (10.0, 12.0), seed=2)
    names = [s.name for s in cat.brightest(c.sources, 2)]
    ese = cat.ese_lightcurve(60000.0, 20.0, depth=0.5, boost=0.3)
    c2 = cat.with_lightcurves(c, {names[0]: ese, names[1]: cat.sinusoid_lightcurve(60000.0, 0.2, 8.0)})
    p = cat.save_catalogue(c2, tmp_path / "catalogue.json")
    back = cat.load_catalogue(p)
    assert back == c2
    src = back.by_name()[names[0]]
    s0 = src.flux_jy
    assert cat.flux_at(src, 59900.0) == pytest.approx(s0, rel=1e-6)  # quiescent
    assert cat.flux_at(src, 60010.0) == pytest.approx(0.5 * s0, rel=1e-3)  # in the dip
    edge = 60000.0 - ese.edge_days
    assert cat.flux_at(src, edge) > 1.1 * s0  # brightening at the edge
    assert cat.flux_at(src, 60020.0 + ese.edge_days) > 1.1 * s0
    const = back.by_name()[next(s.name for s in back.sources if s.name not in names)]
    assert np.allclose(cat.flux_at(const, np.array([1.0, 6e4, 7e4])), const.flux_jy)
    # spectral index
    assert cat.flux_at(const, 6e4, 2.8e9) == pytest.approx(const.flux_jy * 2**const.spectral_index)
    with pytest.raises(cat.CatalogueError):
        cat.with_lightcurves(c, {"NVSS J000000.0+000000": ese})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(cat.CatalogueError):
        cat.load_catalogue(tmp_path / "bad.json")


def test_calibrators() -> None:
    cals = load_calibrators()
    names = {c.name for c in cals}
    assert {"3C48", "3C138", "3C147", "3C286", "3C295"} <= names
    c286 = get_calibrator("3c286")
    assert c286.ra_deg == pytest.approx(202.7845, abs=1e-3)
    assert c286.dec_deg == pytest.approx(30.5092, abs=1e-3)
    assert get_calibrator("J0542+4951").name == "3C147"
    assert calibrator_in_tile((202.0, 203.5), 30.5) == c286
    assert calibrator_in_tile((202.0, 203.5), 40.0) is None
    assert calibrator_in_tile((203.0, 204.0), 30.5) is None
    # wrapping RA range: 3C454.3 at 343.5 deg
    assert calibrator_in_tile((343.0, 1.0), 16.1) is not None
    for dec in (16.0, 33.0, 54.0):
        assert abs(nearest_calibrator(dec).dec_deg - dec) < 2.5
    with pytest.raises(ValueError):
        get_calibrator("NOPE")
