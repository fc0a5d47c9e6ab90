"""Field sources on the calibrator's track keep their flux through solve + apply + image (issue 11).

A calibrator group is also a science tile. DSA-110's core is a cross, so near transit a source due
east or west of the calibrator (at its declination) has no fringe on the north-south arm, and one
due north or south has none on the east-west arm: on those baselines they look exactly like the
calibrator. Solved against the calibrator alone, the gains gave their flux to the calibrator
(peeled with it): in a 40-antenna tile like this one they came out at 0.56-0.63 (east/west) and
0.43 (north/south) of the truth, the same every epoch (here the east source: 0.59). With the
reference catalogue's sources in the solve's model (``actors/calibrator/field.py``) they are
within 1.3 %.

One real tile: 3C286 at the centre, four 0.3 Jy sources 0.7 deg east, west, north and south of it
and one off the axes; drifting instrumental gains and thermal noise on; UVH5 -> MS -> solve ->
calibrate, peel 3C286, CLEAN -> forced photometry, as the actors run them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.time import Time

from actors.calibrator.field import field_sources
from actors.calibrator.work import solve_group
from actors.imager.pipeline import ImagingParams, calibrate_and_image
from actors.variability.measure import measure, read_pointing
from actors.watcher.convert import convert_group
from astro.catalogue import Catalogue, Source, nvss_name, save_catalogue
from astro.coordinates import tile_phase_center
from astro.instrument import TILE_DURATION_S
from astro.skymodel import PointSource, lm_to_radec
from sim.observation import load_manifest, plan_groups, simulate

START = "2025-10-24T00:00:00"
#: (radius deg, position angle deg east of north): on the calibrator's track (E, W), across it
#: (N, S) and off both axes of the array
LAYOUT = ((0.7, 90.0), (0.7, 270.0), (0.7, 0.0), (0.7, 180.0), (0.7, 45.0))
FLUX_JY = 0.3


def _sky() -> Catalogue:
    plans, dec = plan_groups(1, Time(START), None, calibrator="3C286")
    ra0, dec0 = tile_phase_center(plans[0].start + (TILE_DURATION_S / 2) * u.s, dec)
    sources = []
    for r, pa in LAYOUT:
        lval, mval = math.radians(r) * math.sin(math.radians(pa)), math.radians(r) * math.cos(math.radians(pa))
        ra, de = lm_to_radec(lval, mval, math.radians(ra0), math.radians(dec0))
        ra_d, dec_d = math.degrees(float(ra)), math.degrees(float(de))
        sources.append(Source(nvss_name(ra_d, dec_d), ra_d, dec_d, FLUX_JY, -0.7))
    return Catalogue(tuple(sources), dec_deg=dec0)


def test_sources_on_the_calibrators_track_keep_their_flux(tmp_path: Path) -> None:
    sky = _sky()
    raw = tmp_path / "raw"
    simulate(
        raw, 1, START, None, n_ants=40, core_only=True, n_channels=4, seed=3, calibrator="3C286",
        jitter_s=0, catalogue=sky, run_check=False,
    )  # fmt: skip
    manifest = load_manifest(raw)
    gid = sorted(manifest["groups"])[0]  # type: ignore[call-overload]
    files = [raw / f for f in manifest["groups"][gid]["files"]]  # type: ignore[index]
    ms = convert_group(files, tmp_path / "ms").path

    solved = solve_group(str(ms), str(tmp_path / "calsets"), gid, catalogue_path=raw / "catalogue.json")
    assert solved is not None and solved["calibrators"] == ["3C286"]
    calset = json.loads((tmp_path / "calsets" / gid / "calset.json").read_text())
    # the field is modelled but is not the set's peelable sky: the imager takes out 3C286 alone
    assert [s["name"] for s in calset["sources"]] == ["3C286"]
    assert sorted(s["name"] for s in calset["field_sources"]) == sorted(s.name for s in sky.sources)

    image = tmp_path / "tile.fits"
    calibrate_and_image(
        ms,
        [tmp_path / "calsets" / gid],
        image,
        ImagingParams(imsize=640, cellsize_arcsec=20.0, niter=20000, max_major=30),
    )
    ra = np.array([s.ra_deg for s in sky.sources])
    dec = np.array([s.dec_deg for s in sky.sources])
    m = measure(str(image), ra, dec, read_pointing(image))
    assert m.valid.all()
    for k, (r, pa) in enumerate(LAYOUT):
        # primary-beam corrected, at 1.4 GHz (the band's centre) against the catalogue flux
        assert m.flux_jy[k] == pytest.approx(FLUX_JY, rel=0.05), f"source {r} deg at PA {pa}: {m.flux_jy[k]:.3f} Jy"


def test_field_sources_from_the_catalogue(tmp_path: Path) -> None:
    """Candidates: catalogue sources near the beam's track, the calibrator itself left out; no
    catalogue means no field model (the calibrators alone, as before)."""
    cal = PointSource("3C286", 202.784, 30.509, 14.9)
    near = Source("NEAR", 203.5, 30.5, 0.2)  # 0.6 deg east of the track's end
    far = Source("FAR", 210.0, 30.5, 0.2)  # 6 deg away
    dup = Source("J133108+303032", 202.7845, 30.5089, 14.9)  # the catalogue's entry for 3C286
    path = save_catalogue(Catalogue((near, far, dup), dec_deg=30.5), tmp_path / "catalogue.json")
    got = field_sources(path, (202.1, 203.0), 30.5, [cal])
    assert [s.name for s in got] == ["NEAR"]
    assert (got[0].flux_jy, got[0].spectral_index) == (0.2, -0.7)
    assert field_sources(None, (202.1, 203.0), 30.5, [cal]) == []
    assert field_sources(tmp_path / "missing.json", (202.1, 203.0), 30.5, [cal]) == []
