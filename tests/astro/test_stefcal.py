"""StEFCal recovers per-antenna gains and bandpasses within the noise."""

from __future__ import annotations

import numpy as np
import pytest

from astro.skymodel import source_model_vis
from astro.stefcal import choose_refant, solve_bandpass, solve_cells, solve_gains
from sim.synthetic import dsa_like_layout, make_synthetic, offset_source, transit_phase_centre


@pytest.fixture(scope="module")
def calobs():
    ra0, dec0 = transit_phase_centre()
    src = [offset_source("cal", ra0, dec0, 300.0, -200.0, 15.0), offset_source("weak", ra0, dec0, -900, 400, 2.0)]
    d, truth = make_synthetic(src, enu=dsa_like_layout(12, 8, 2), nchan=16, ntime=8, sigma=0.5, seed=11)
    model = source_model_vis(d.uvw, d.freq, src, d.phase_dir)
    return d, truth, model


def _refer(g, ref):
    return g * np.conj(g[:, ref : ref + 1]) / np.abs(g[:, ref : ref + 1])


def test_bandpass_and_gains_recovered(calobs):
    d, truth, model = calobs
    bp = solve_bandpass(d.vis, d.flags, model, d.ant1, d.ant2, d.nant, d.weight, refant=0)
    g = solve_gains(d.vis, d.flags, model, d.ant1, d.ant2, d.nant, d.weight, bandpass=bp.gains, refant=0)
    bp = solve_bandpass(d.vis, d.flags, model, d.ant1, d.ant2, d.nant, d.weight, refant=0, time_gains=g.gains)
    g = solve_gains(d.vis, d.flags, model, d.ant1, d.ant2, d.nant, d.weight, bandpass=bp.gains, refant=0)
    assert bp.gains.shape == (1, d.nant, d.nchan, 2)
    assert g.gains.shape == (d.ntime, d.nant, 1, 2)
    assert not bp.flags.any() and not g.flags.any()
    assert (bp.niter > 0).all() and (g.niter > 0).all()
    total = bp.gains[0][None] * g.gains  # [nt, nant, nchan, npol]
    true = _refer(truth.gains, 0)
    err = np.abs(total / true - 1)
    # per-sample noise 0.5 vs a 15 Jy source over ~21 baselines: expect ~1 % errors
    assert np.median(err) < 0.01
    assert err.max() < 0.06
    # reference antenna has zero phase
    np.testing.assert_allclose(np.angle(g.gains[:, 0]), 0, atol=1e-9)
    # formal errors are of the right size
    assert 0.3 < np.median(err) / np.median(bp.err[0]) < 3


def test_flagged_antenna_is_flagged_not_fatal(calobs):
    d, _, model = calobs
    flags = d.flags.copy()
    bad = (d.ant1 == 5) | (d.ant2 == 5)
    flags[:, bad] = True
    sol = solve_cells(d.vis, flags, model, d.ant1, d.ant2, d.nant, d.weight, tbin=None, cbin=1)
    assert sol.flags[:, 5].all()
    assert not sol.flags[:, [0, 1, 2, 6]].any()
    np.testing.assert_array_equal(sol.gains[:, 5], 1.0)


def test_choose_refant_avoids_flagged(calobs):
    d, _, _ = calobs
    flags = np.zeros(d.vis.shape, bool)
    flags[:, (d.ant1 == 0) | (d.ant2 == 0)] = True
    assert choose_refant(flags, d.ant1, d.ant2, d.nant) != 0
