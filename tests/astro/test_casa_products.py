"""What CASA reads from the project's products, checked with python-casacore and astropy (issue 11).

The tests cannot run CASA; they check the things CASA looks at, against its documented conventions:

* MS OBSERVATION.TELESCOPE_NAME is the key CASA looks up in its Observatories table (casadata
  ``geodetic/Observatories``; python-casacore ships the same table) to find the array's position:
  an unknown name made verbose ``listobs`` fail and ``tclean`` fall back to the first antenna.
  The instrument's own name stays readable (INSTRUMENT keyword, PROJECT, FITS TELESCOP).
* Calibration tables (CASA's "NewCalTable"): solution TIMEs at full precision, so ``applycal`` and
  the project's own apply agree on every integration; no CASA_Version keyword borrowed from a
  CASA that did not write them.
* FITS images: RADESYS 'ICRS' (the data and the catalogue are ICRS, not FK5 J2000).
"""

from __future__ import annotations

from pathlib import Path

import casacore.tables as ct
import numpy as np
from astropy.coordinates import EarthLocation
from astropy.wcs import WCS
from casacore.measures import measures

from actors.imager.clean import Beam
from actors.imager.fitsimage import make_header
from astro.applycal import interpolate_calibration
from astro.caltables import read_calset, write_calset
from astro.msio import CASA_OBSERVATORY, read_ms, write_ms
from sim.synthetic import make_synthetic, offset_source, transit_phase_centre


def _observatory_offset_m(telescope_name: str, antenna_itrf: np.ndarray) -> float:
    """Distance from the observatory position casacore's Observatories table gives for the name
    to the antennas' centroid (raises if the table does not know the name)."""
    dm = measures()
    assert telescope_name in dm.get_observatories(), f"{telescope_name!r} is not in the Observatories table"
    pos = dm.measure(dm.observatory(telescope_name), "ITRF")
    loc = EarthLocation.from_geodetic(pos["m0"]["value"] * 180 / np.pi, pos["m1"]["value"] * 180 / np.pi, pos["m2"]["value"])
    xyz = np.array([loc.x.value, loc.y.value, loc.z.value])
    return float(np.linalg.norm(antenna_itrf.mean(axis=0) - xyz))


def test_ms_names_an_observatory_casa_knows(tmp_path: Path) -> None:
    ra0, dec0 = transit_phase_centre()
    data, _truth = make_synthetic([offset_source("s", ra0, dec0, 100, 50, 2.0)], nchan=4, ntime=3)
    ms = tmp_path / "syn.ms"
    write_ms(ms, data)
    with ct.table(str(ms / "OBSERVATION"), ack=False) as ot:
        names = list(ot.getcol("TELESCOPE_NAME"))
        assert names == [CASA_OBSERVATORY]
        assert ot.getkeyword("INSTRUMENT") == "DSA-110"
        assert list(ot.getcol("PROJECT")) == ["DSA-110"]
    with ct.table(str(ms / "ANTENNA"), ack=False) as at:
        ant = np.asarray(at.getcol("POSITION"))
    assert _observatory_offset_m(names[0], ant) < 2000.0  # CASA's OVRO position is the DSA-110 site
    assert read_ms(ms).telescope == "DSA-110"  # the instrument name for the FITS header


def _calset_with_a_gain_ramp(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    nant, nchan, ntime = 4, 6, 5
    rng = np.random.default_rng(3)
    bp = (1 + 0.05 * rng.standard_normal((nant, nchan, 2))) * np.exp(1j * rng.uniform(-1, 1, (nant, nchan, 2)))
    # solution times with sub-millisecond parts, as the mean of an MS's integration times has them
    times = 60600.25 * 86400 + 0.000437 + np.arange(ntime) * 12.884902
    ramp = np.linspace(-0.8, 0.8, ntime)[:, None, None] * np.arange(nant)[None, :, None]
    g = np.exp(1j * ramp) * np.linspace(1.0, 1.3, ntime)[:, None, None] * np.ones((ntime, nant, 2))
    g[:, 0] = 1.0
    names = [f"DSA-{k:03d}" for k in range(1, nant + 1)]
    freq = 1.311e9 + np.arange(nchan) * 244140.625
    write_calset(
        path, cal_group_id="2024-10-17T06:00:00",
        calibrator={"name": "3C48", "ra_deg": 24.4, "dec_deg": 33.2, "flux_jy": 16.0},
        antenna_names=names, antenna_positions=np.tile(np.array([-2409150.0, -4478573.0, 3838617.0]), (nant, 1)),
        freq=freq, bandpass=bp, bandpass_flags=np.zeros(bp.shape, bool), bandpass_snr=np.full(bp.shape, 50.0),
        bandpass_err=np.full(bp.shape, 0.01), gain_times=times, gains=g, gain_flags=np.zeros(g.shape, bool),
        gain_snr=np.full(g.shape, 100.0), gain_err=np.full(g.shape, 0.01), refant=0, interval=12.884902,
        pols=["XX", "YY"], source_ms="cal.ms",
    )
    return times, g, names, freq


def test_caltable_times_at_full_precision_and_every_integration_gets_its_gain(tmp_path: Path) -> None:
    times, g, names, freq = _calset_with_a_gain_ramp(tmp_path / "set")
    with ct.table(str(tmp_path / "set" / "gains.G"), ack=False) as t:
        written = np.unique(t.getcol("TIME"))
        kw = t.getkeywords()
    np.testing.assert_array_equal(written, times)
    cs = read_calset(tmp_path / "set")
    np.testing.assert_array_equal(cs.gain_times, times)  # not rounded to 1 ms
    # the data's own integrations, the last one included: each gets its own solution (before,
    # the last integration fell outside the rounded table and got the mean gain)
    gains, flags = interpolate_calibration([tmp_path / "set"], times, names, freq)
    assert not flags.any()
    time_gain = gains[:, :, 0, :] / cs.bandpass[None, :, 0, :]
    np.testing.assert_allclose(time_gain, g, rtol=1e-6, atol=1e-6)
    assert abs(np.angle(time_gain[-1, 3, 0]) - 0.8 * 3) < 1e-5
    # CASA's cal-table keywords, and none it did not write
    assert kw["ParType"] == "Complex" and kw["VisCal"] == "G Jones"
    assert "CASA_Version" not in kw
    with ct.table(str(tmp_path / "set" / "gains.G" / "OBSERVATION"), ack=False) as ot:
        assert list(ot.getcol("TELESCOPE_NAME")) == [CASA_OBSERVATORY]
        assert ot.getkeyword("INSTRUMENT") == "DSA-110"


def test_fits_frame_is_icrs() -> None:
    ra0, dec0 = transit_phase_centre()
    arcsec = np.pi / 180 / 3600
    h = make_header(256, 3 * arcsec, (ra0, dec0), 1.405e9, 187.5e6, 60600.25, Beam(30 * arcsec, 14 * arcsec, 0.1), 1e-3)
    assert h["RADESYS"] == "ICRS"
    assert "EQUINOX" not in h
    assert h["TELESCOP"] == "DSA-110"
    assert WCS(h).celestial.world_axis_object_components[0][0] == "celestial"
    assert WCS(h).celestial.pixel_to_world(128, 128).frame.name == "icrs"
