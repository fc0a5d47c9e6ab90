"""Simulated groups dropped into the incoming directory of the running system (nats-server, edge,
watcher, calibrator, imager) become calibrated, CLEANed images that recover the sky.

The target group arrives first: with no calibration set anywhere it raises ``calibrator_missing``
and waits (nothing is imaged). Then the calibrator group arrives: its set is solved, listed in
``/api/status``, and releases the target, which is imaged with it. The target's image recovers
the injected (primary-beam attenuated) fluxes of its bright sources within 5 %, their positions
within a fifth of the beam, and reaches 1.5x the thermal noise; imaged without calibration it is
measurably worse.

The target is hard in the way real DSA-110 data are: 3C286 is still in its primary beam (1 deg
west of the phase centre, ~9 Jy apparent, outside the small image), and the simulated instrument
has drifted since the set was solved (a 5-minute-old set alone loses ~8 % of the flux to phase
errors). The imager takes the set's calibrator out with its drift-beam model and self-calibrates
the phases (both are recorded in the FITS header).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import casacore.tables as ct
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from actors.imager import work
from actors.imager.fitsimage import find_sources
from astro.calibrators import get_calibrator
from astro.catalogue import flux_at
from astro.instrument import INTEGRATION_TIME_S, SEFD_JY, channel_width_hz, thermal_sigma_jy
from astro.msio import read_ms
from astro.skymodel import PointSource, drift_beam_gains, itrf_to_geodetic
from schemas.dsa import CalibrationSetSolved, ImageReady, MeasurementSetWritten
from schemas.ops import AlertRaised
from tests.conftest import eventually
from tests.dsa import imaging_fixtures
from tests.dsa.imaging_fixtures import ImagingSim, ImagingStack, only

imaging = imaging_fixtures.imaging
imaging_sim = imaging_fixtures.imaging_sim


def _injected(sim: ImagingSim, ms: str) -> list[tuple[PointSource, float]]:
    """The injected sources with their apparent flux (primary beam x spectrum, averaged over the
    tile's integrations and channels, as the image measures it), brightest first."""
    d = read_ms(ms)
    _, lon, _ = itrf_to_geodetic(d.antenna_positions)
    out = []
    for s in sim.catalogue.sources:
        ps = PointSource(s.name, s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index)
        spectrum = np.array([float(flux_at(s, float(np.mean(d.mjd)), f)) for f in d.freq])
        beam = drift_beam_gains([ps], d.mjd, d.freq, d.phase_dir[1], lon, d.dish_diameter)[0]
        out.append((ps, float(np.mean(beam * spectrum[None, :]))))
    return sorted(out, key=lambda x: -x[1])


def _measure(path: str, noise: float, sources: list[tuple[PointSource, float]]) -> list[tuple[float, float]]:
    """(peak / apparent flux, position offset in arcsec) of each source in the image."""
    img = fits.getdata(path)[0, 0]
    w = WCS(fits.getheader(path)).celestial
    cell = abs(float(w.wcs.cdelt[0])) * 3600
    dets = find_sources(img, noise, 5.0)
    out = []
    for ps, apparent in sources:
        x, y = w.wcs_world2pix(ps.ra_deg, ps.dec_deg, 0)
        best = min(dets, key=lambda q: (q.x - x) ** 2 + (q.y - y) ** 2)
        out.append((best.peak / apparent, float(np.hypot(best.x - x, best.y - y)) * cell))
    return out


async def test_target_waits_for_calibration_then_recovers_the_sky(
    imaging: ImagingStack, imaging_sim: ImagingSim, tmp_path: Path
) -> None:
    cal_group, target = imaging_sim.calibrator, imaging_sim.target
    assert cal_group.calibrator == "3C286" and target.calibrator is None
    await imaging.start_pipeline()

    # -- the target alone: an alert, and it waits
    imaging.drop(target.files)

    async def alerts() -> list[AlertRaised]:
        return await imaging.events(AlertRaised, lambda e: e.alert_type == "calibrator_missing")

    alert = only(await eventually(alerts, timeout=60))
    assert alert.severity == "warning" and alert.details["ms_path"].endswith(".ms")
    target_ms = alert.details["ms_path"]
    assert not await imaging.events(ImageReady)
    assert not await imaging.events(MeasurementSetWritten, lambda e: e.stage != "converted")
    assert (await imaging.get("/api/status")).body["calibration_sets"] == []

    # -- the calibrator group: a set, which releases the target
    imaging.drop(cal_group.files)

    async def images() -> list[ImageReady]:
        found = await imaging.events(ImageReady)
        return found if len(found) >= 2 else []

    ready = {e.ms_path: e for e in await eventually(images, timeout=120)}
    solved = only(await imaging.events(CalibrationSetSolved))
    assert solved.calibrator == "3C286" and solved.num_targets == imaging_fixtures.N_ANTS
    assert solved.valid_from_mjd < target.mid_mjd < solved.valid_to_mjd
    assert solved.valid_to_mjd - solved.valid_from_mjd > 23.9 / 24
    assert len(await alerts()) == 1  # once per group

    async def status_lists_the_set() -> list[dict[str, object]]:
        return list((await imaging.get("/api/status")).body["calibration_sets"])

    sets = await eventually(status_lists_the_set, timeout=5)
    assert sets == [
        {
            "cal_group_id": solved.cal_group_id,
            "created_at": solved.created_at,
            "num_targets": 16,
            "valid_from_mjd": solved.valid_from_mjd,
            "valid_to_mjd": solved.valid_to_mjd,
            "calibrator": "3C286",
        }
    ]

    # the set is CASA tables python-casacore reads, plus its manifest
    for name, viscal in (("bandpass.B", "B Jones"), ("gains.G", "G Jones")):
        with ct.table(os.path.join(solved.path, name), ack=False) as t:
            assert t.getkeyword("VisCal") == viscal and t.nrows() >= 16
    assert os.path.isfile(os.path.join(solved.path, "calset.json"))

    calibrated = only(
        await imaging.events(MeasurementSetWritten, lambda e: e.stage == "calibrated" and e.path == target_ms)
    )
    assert calibrated.calsets == [solved.path]
    assert await imaging.events(MeasurementSetWritten, lambda e: e.stage == "imaged" and e.path == target_ms)

    # -- the target's image
    img = ready[target_ms]
    assert img.path == work.image_path(imaging.settings.image_dir, img.group_id) and os.path.isfile(img.path)
    assert os.path.isfile(img.thumbnail_path) and img.thumbnail_path.endswith(".png")
    hdr = fits.getheader(img.path)
    assert hdr["CTYPE1"] == "RA---SIN" and hdr["CTYPE3"] == "FREQ" and hdr["BUNIT"] == "Jy/beam"
    assert abs(hdr["CRVAL1"] - img.ra_deg) < 1e-9 and abs(img.dec_deg - target.dec_deg) < 1e-6
    # a FITS value field holds 20 characters, so a 17-digit float may come back shortened
    assert math.isclose(hdr["BMAJ"], img.bmaj_deg, rel_tol=1e-12) and img.n_sources_5sigma >= 1 and hdr["CALIB"]
    assert abs(img.mjd - target.mid_mjd) < 1e-4

    # noise within 1.5x the thermal expectation, which the header gives in Jy/beam: the radiometer
    # noise SEFD / sqrt(2 dnu tau) of each visibility carried through the imaging weights
    thermal = hdr["THNOISE"]
    sigma_vis = thermal_sigma_jy(channel_width_hz(imaging_fixtures.N_CHANNELS), INTEGRATION_TIME_S)
    n_samples = imaging_fixtures.N_ANTS * (imaging_fixtures.N_ANTS - 1) // 2 * 16 * imaging_fixtures.N_CHANNELS * 24 * 2
    natural = sigma_vis / np.sqrt(n_samples)  # all samples weighted equally; Briggs 0 is noisier
    assert hdr["SEFD"] == SEFD_JY and natural < thermal < 3 * natural, (thermal, natural)
    assert img.noise_jy < 1.5 * thermal, (img.noise_jy, thermal)
    assert abs(hdr["DRIFTRA"] - 24 * INTEGRATION_TIME_S / 86400 * 360.9856) < 0.01  # ~1.29 deg
    # the set's calibrator was taken out (not CLEANed: it lies outside the image), the drift since
    # the set was measured and removed
    assert hdr["PEELED"] == "3C286" and hdr["SCSOLINT"] > 0 and hdr["SCEXPL"] > 0.5, hdr
    assert hdr["CLEANED"] and img.noise_jy * 3 >= hdr["CLEANTHR"] * 0.99  # CLEANed down to 3 sigma

    bright = [(ps, a) for ps, a in _injected(imaging_sim, target_ms) if a > 50 * img.noise_jy]
    assert len(bright) >= 3, bright
    beam = np.sqrt(img.bmaj_deg * img.bmin_deg) * 3600
    measured = _measure(img.path, img.noise_jy, bright)
    for (ps, apparent), (ratio, offset) in zip(bright, measured, strict=True):
        assert offset < beam / 5, (ps.name, offset, beam)
        assert abs(ratio - 1) < 0.05, (ps.name, apparent, ratio)

    # the calibrator group, imaged with its own set: its flux scale within 5 %
    cal_ms = solved.path and only([p for p in ready if p != target_ms])
    cal_img = ready[cal_ms]
    d = read_ms(cal_ms)
    c = get_calibrator("3C286")
    ps = PointSource(c.name, c.ra_deg, c.dec_deg, c.flux_jy, c.spectral_index)
    _, lon, _ = itrf_to_geodetic(d.antenna_positions)
    b = drift_beam_gains([ps], d.mjd, d.freq, d.phase_dir[1], lon, d.dish_diameter)[0]
    apparent = float(np.mean(b * ps.flux(d.freq)[None, :]))
    [(ratio, offset)] = _measure(cal_img.path, cal_img.noise_jy, [(ps, apparent)])
    assert abs(ratio - 1) < 0.05 and offset < beam / 5, (ratio, offset)
    cal_hdr = fits.getheader(cal_img.path)
    assert cal_hdr["PEELED"] == "3C286" and cal_img.noise_jy < 1.5 * cal_hdr["THNOISE"]

    # -- the same group imaged without calibration is measurably worse
    params = work.default_params(imaging.settings)
    raw = work.image_ms(target_ms, [], os.fspath(tmp_path / "raw.fits"), params, apply_calibration=False)
    assert raw["noise_jy"] > 3 * img.noise_jy
    raw_meas = _measure(raw["path"], raw["noise_jy"], bright)
    assert max(abs(r - 1) for r, _ in raw_meas) > 0.2
