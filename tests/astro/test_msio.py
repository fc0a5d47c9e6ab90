"""Measurement Set round trip through python-casacore."""

from __future__ import annotations

import numpy as np
import pytest

from astro.msio import MeasurementSetError, read_ms, write_column, write_flags, write_ms
from sim.synthetic import make_synthetic, offset_source, transit_phase_centre


def test_write_read_roundtrip(tmp_path):
    ra0, dec0 = transit_phase_centre()
    d, _ = make_synthetic([offset_source("s", ra0, dec0, 100, 50, 2.0)], nchan=6, ntime=3, include_autos=True)
    d.flags[1, 3, 2, 0] = True
    write_ms(tmp_path / "a.ms", d)
    r = read_ms(tmp_path / "a.ms")
    assert r.vis.shape == d.vis.shape
    np.testing.assert_allclose(r.vis, d.vis)
    np.testing.assert_array_equal(r.flags, d.flags)
    np.testing.assert_allclose(r.uvw, d.uvw)
    np.testing.assert_allclose(r.time, d.time)
    np.testing.assert_allclose(r.freq, d.freq)
    np.testing.assert_array_equal(r.ant1, d.ant1)
    assert r.corr_types == [9, 12]
    assert r.antenna_names == d.antenna_names
    np.testing.assert_allclose(r.phase_dir, d.phase_dir)
    np.testing.assert_allclose(r.antenna_positions, d.antenna_positions)
    assert r.parallel_hand_indices() == [0, 1]

    corrected = (r.vis * 2).astype(np.complex64)
    write_column(tmp_path / "a.ms", r, corrected)
    c = read_ms(tmp_path / "a.ms", datacolumn="CORRECTED_DATA")
    np.testing.assert_allclose(c.vis, corrected)


def test_rfi_flags_written_once_are_read_back(tmp_path):
    ra0, dec0 = transit_phase_centre()
    d, _ = make_synthetic([offset_source("s", ra0, dec0, 100, 50, 2.0)], nchan=6, ntime=3)
    write_ms(tmp_path / "f.ms", d)
    r = read_ms(tmp_path / "f.ms")
    assert r.rfi_flagged == ""
    flags = np.random.default_rng(1).random(r.vis.shape) < 0.1
    write_flags(tmp_path / "f.ms", r, flags, "SumThreshold chi1=7")
    again = read_ms(tmp_path / "f.ms")
    assert again.rfi_flagged == "SumThreshold chi1=7"
    np.testing.assert_array_equal(again.flags, flags)
    with pytest.raises(MeasurementSetError):
        write_flags(tmp_path / "f.ms", r, flags[:1], "x")


def test_unsorted_rows_are_regularised(tmp_path):
    import casacore.tables as ct

    ra0, dec0 = transit_phase_centre()
    d, _ = make_synthetic([offset_source("s", ra0, dec0, 0, 0, 1.0)], nchan=4, ntime=3)
    write_ms(tmp_path / "b.ms", d)
    # reverse the row order and drop one row
    with ct.table(str(tmp_path / "b.ms"), ack=False) as t:
        perm = np.arange(t.nrows())[::-1][1:]
        t.selectrows(perm).copy(str(tmp_path / "c.ms"), deep=True).close()
    r = read_ms(tmp_path / "c.ms")
    assert r.vis.shape == d.vis.shape
    assert r.flags[-1, -1].all()  # the dropped (last) row is flagged
    np.testing.assert_allclose(r.vis[0, 0], d.vis[0, 0])


def test_missing_ms_raises(tmp_path):
    with pytest.raises(MeasurementSetError):
        read_ms(tmp_path / "nope.ms")
