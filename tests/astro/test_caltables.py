"""CASA calibration tables and calibration sets round-trip through python-casacore."""

from __future__ import annotations

import json

import casacore.tables as ct
import numpy as np
import pytest

from astro.caltables import CalTableError, read_calset, read_caltable, write_calset

STANDARD = {"TIME", "FIELD_ID", "SPECTRAL_WINDOW_ID", "ANTENNA1", "ANTENNA2", "INTERVAL", "SCAN_NUMBER",
            "OBSERVATION_ID", "CPARAM", "PARAMERR", "FLAG", "SNR", "WEIGHT"}


def make_set(path, mjd_mid=60600.25, phase=0.0, nant=5, nchan=8, ntime=4, gid=None, seed=0):
    rng = np.random.default_rng(seed)
    bp = (1 + 0.1 * rng.standard_normal((nant, nchan, 2))) * np.exp(1j * rng.uniform(-1, 1, (nant, nchan, 2)))
    g = np.exp(1j * phase) * np.ones((ntime, nant, 2), complex)
    g[:, 0] = 1.0
    times = mjd_mid * 86400 + (np.arange(ntime) - (ntime - 1) / 2) * 12.884902
    bpf = np.zeros(bp.shape, bool)
    bpf[3, 2, 1] = True
    names = [f"DSA-{k:03d}" for k in range(1, nant + 1)]
    m = write_calset(
        path, cal_group_id=gid or "2024-10-17T06:00:00", calibrator={"name": "3C48", "ra_deg": 24.4, "dec_deg": 33.2,
                                                                    "flux_jy": 16.0},
        antenna_names=names, antenna_positions=np.tile(np.array([-2409150.0, -4478573.0, 3838617.0]), (nant, 1)),
        freq=1.311e9 + np.arange(nchan) * 244140.625, bandpass=bp, bandpass_flags=bpf,
        bandpass_snr=np.full(bp.shape, 50.0), bandpass_err=np.full(bp.shape, 0.01), gain_times=times, gains=g,
        gain_flags=np.zeros(g.shape, bool), gain_snr=np.full(g.shape, 100.0), gain_err=np.full(g.shape, 0.01),
        refant=0, interval=12.884902, pols=["XX", "YY"], source_ms="cal.ms",
    )
    return m, bp, g, names


def test_tables_have_casa_layout(tmp_path):
    _m, bp, _g, names = make_set(tmp_path / "set")
    for tab, viscal, nrow, shape in (("bandpass.B", "B Jones", 5, (8, 2)), ("gains.G", "G Jones", 20, (1, 2))):
        with ct.table(str(tmp_path / "set" / tab), ack=False) as t:
            assert STANDARD <= set(t.colnames())
            assert t.nrows() == nrow
            kw = t.getkeywords()
            assert kw["VisCal"] == viscal and kw["ParType"] == "Complex"
            for sub in ("ANTENNA", "SPECTRAL_WINDOW", "FIELD", "OBSERVATION", "HISTORY"):
                assert sub in kw
            assert t.getcell("CPARAM", 0).shape == shape
            assert t.info()["type"] == "Calibration"
            assert t.getcolkeywords("TIME")["QuantumUnits"] == ["s"]
        with ct.table(str(tmp_path / "set" / tab / "ANTENNA"), ack=False) as a:
            assert list(a.getcol("NAME")) == names
    b = read_caltable(tmp_path / "set" / "bandpass.B")
    np.testing.assert_allclose(b.cparam, bp.astype(np.complex64), rtol=1e-6)
    assert b.flag[3, 2, 1] and b.flag.sum() == 1
    assert b.freq.size == 8


def test_calset_roundtrip_and_manifest(tmp_path):
    m, bp, g, names = make_set(tmp_path / "set", phase=0.5)
    man = json.loads((tmp_path / "set" / "calset.json").read_text())
    assert man == m
    assert man["num_targets"] == 5
    assert man["mjd_start"] < man["obs_mjd_start"] < man["mjd_mid"] < man["obs_mjd_end"] < man["mjd_end"]
    assert abs(man["mjd_end"] - man["obs_mjd_end"] - 0.5) < 1e-9
    assert man["created_at"].endswith("Z")
    cs = read_calset(tmp_path / "set")
    np.testing.assert_allclose(cs.bandpass, bp, rtol=1e-6)
    np.testing.assert_allclose(cs.gains, g, rtol=1e-6)
    assert cs.gain_times.size == 4 and cs.antenna_names == names


def test_bad_set_raises(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(CalTableError):
        read_calset(tmp_path / "x")
