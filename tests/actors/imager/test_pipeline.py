"""End to end: calibrator MS -> calibration set -> calibrated, CLEANed FITS image of a target MS."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from actors.calibrator.solve import SolveParams, solve_calibration
from actors.imager.fitsimage import count_sources_above, find_sources, pixel_to_radec
from actors.imager.pipeline import ImagingParams, calibrate_and_image
from astro.applycal import NoCalibrationError
from astro.msio import read_ms, write_ms
from sim.synthetic import dsa_like_layout, make_synthetic, offset_source, sefd_for, transit_phase_centre

MJD_CAL = 60600.25
MJD_TGT = MJD_CAL + 1.0 / 24
ENU = dsa_like_layout(24, 16, 4, spacing=12.0, seed=7)
SIGMA = 1.0  # noise per real/imag part per visibility, Jy
# make_synthetic's default channel width and integration; the SEFD that gives SIGMA
PARAMS = ImagingParams(imsize=384, cellsize_arcsec=12.0, niter=3000, robust=0.0, threshold_sigma=3.0,
                       max_major=8, psf_size=384, nthreads=2, sefd_jy=sefd_for(SIGMA, 244140.625 * 12, 12.884902))


def _target_sources():
    ra, dec = transit_phase_centre(MJD_TGT)
    return [
        offset_source("a", ra, dec, 900, 600, 3.0),
        offset_source("b", ra, dec, -1500, -300, 2.0),
        offset_source("c", ra, dec, 300, -1700, 1.5),
    ]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    ra, dec = transit_phase_centre(MJD_CAL)
    cal = offset_source("cal", ra, dec, 200, -100, 25.0)
    dcal, _ = make_synthetic([cal], enu=ENU, nchan=16, ntime=8, sigma=SIGMA, mjd0=MJD_CAL, seed=21)
    write_ms(tmp / "cal.ms", dcal)
    info = solve_calibration(tmp / "cal.ms", cal, tmp / "calsets", SolveParams(beam="none"))
    # same instrumental gains one hour later (seed), different sky
    dt, _ = make_synthetic(_target_sources(), enu=ENU, nchan=16, ntime=8, sigma=SIGMA, mjd0=MJD_TGT, seed=21)
    write_ms(tmp / "tgt.ms", dt)
    cal_img = calibrate_and_image(tmp / "tgt.ms", [tmp / "calsets"], tmp / "tgt.fits", PARAMS)
    raw_img = calibrate_and_image(tmp / "tgt.ms", None, tmp / "tgt_raw.fits", PARAMS, apply_calibration=False)
    return tmp, info, cal_img, raw_img


def _measure(path, noise):
    img = fits.getdata(path)[0, 0]
    hdr = fits.getheader(path)
    wcs = WCS(hdr).celestial
    dets = find_sources(img, noise, 5.0)
    out = []
    for s in _target_sources():
        true = SkyCoord(s.ra_deg, s.dec_deg, unit="deg")
        best = None
        for d in dets:
            ra, dec = wcs.wcs_pix2world(d.x, d.y, 0)
            sep = true.separation(SkyCoord(float(ra), float(dec), unit="deg")).arcsec
            if best is None or sep < best[0]:
                best = (sep, d.peak)
        out.append((s, best))
    return out, hdr


def test_calibration_set_written(e2e):
    tmp, info, _, _ = e2e
    # the solve flagged the calibrator group once, for its imager too
    assert read_ms(tmp / "cal.ms").rfi_flagged.startswith("SumThreshold") and "write_flags" in info.timings
    assert info.num_targets == len(ENU)
    assert info.median_snr > 20
    assert (tmp / "calsets" / info.cal_group_id / "calset.json").is_file()
    assert info.mjd_start < MJD_TGT < info.mjd_end


def test_calibrated_image_recovers_fluxes_and_positions(e2e):
    _, _, res, _ = e2e
    meas, hdr = _measure(res.path, res.noise_jy)
    beam = np.sqrt(hdr["BMAJ"] * hdr["BMIN"]) * 3600
    for s, (sep, peak) in meas:
        assert abs(peak - s.flux_jy) < 0.05 * s.flux_jy, (s.name, peak)
        assert sep < beam / 5, (s.name, sep, beam)
    # the three sources, plus at most a few calibration-error artefacts at ~1 % of 3 Jy near them
    assert 3 <= res.n_sources_5sigma <= 8
    assert res.calsets and res.timings["clean_dirty"] > 0


def test_noise_near_thermal(e2e):
    _, _, res, _ = e2e
    assert res.noise_jy < 1.5 * res.expected_noise_jy
    assert res.noise_jy > 0.7 * res.expected_noise_jy


def test_uncalibrated_image_is_worse(e2e):
    _, _, cal, raw = e2e
    meas_raw, _ = _measure(raw.path, raw.noise_jy)
    # the sources are not recovered without calibration: peaks are far off, noise is higher
    errs = [abs((best[1] if best else 0.0) - s.flux_jy) / s.flux_jy for s, best in meas_raw]
    assert max(errs) > 0.3
    assert raw.noise_jy > 2 * cal.noise_jy


def test_fits_header_and_wcs(e2e):
    tmp, _, res, _ = e2e
    with fits.open(res.path) as hl:
        h = hl[0].header
        assert hl[0].data.shape == (1, 1, PARAMS.imsize, PARAMS.imsize)
    assert h["CTYPE1"] == "RA---SIN" and h["CTYPE2"] == "DEC--SIN"
    assert h["CTYPE3"] == "FREQ" and h["CTYPE4"] == "STOKES"
    assert h["BUNIT"] == "Jy/beam"
    for k in ("BMAJ", "BMIN", "BPA", "DATE-OBS", "NOISE", "MJD-OBS"):
        assert k in h
    assert h["BMAJ"] >= h["BMIN"] > 0
    assert abs(h["BMAJ"] * 3600 - res.beam[0]) < 1e-6
    assert abs(h["CDELT1"] * 3600 + PARAMS.cellsize_arcsec) < 1e-9
    w = WCS(h)
    assert w.naxis == 4 and w.celestial.wcs.ctype[0] == "RA---SIN"
    # our pixel convention agrees with astropy's reading of the header
    ra, dec = pixel_to_radec(100.0, 250.0, PARAMS.imsize, PARAMS.cellsize_arcsec * np.pi / 648000, (
        np.deg2rad(h["CRVAL1"]), np.deg2rad(h["CRVAL2"])))
    ra2, dec2 = w.celestial.wcs_pix2world(100.0, 250.0, 0)
    assert abs(np.rad2deg(ra) - ra2) < 1e-8 and abs(np.rad2deg(dec) - dec2) < 1e-8
    assert abs(h["MJD-OBS"] - MJD_TGT) < 0.01
    png = tmp / "tgt.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert count_sources_above(fits.getdata(res.path)[0, 0], h["NOISE"], 5) == res.n_sources_5sigma


def test_no_calibration_raises(tmp_path, e2e):
    tmp, _, _, _ = e2e
    with pytest.raises(NoCalibrationError):
        calibrate_and_image(tmp / "tgt.ms", [tmp_path / "empty"], tmp_path / "x.fits", PARAMS)
    with pytest.raises(NoCalibrationError):
        calibrate_and_image(tmp / "tgt.ms", [tmp / "calsets"], tmp_path / "x.fits",
                            ImagingParams(imsize=64, max_sep_hours=0.5))
