"""Phase-only self-calibration: it removes the phase drift a calibration set leaves behind, and
refuses to act where it would fit noise or a sky the model does not have."""

from __future__ import annotations

import numpy as np
import pytest

from actors.imager.selfcal import average_parallel_hands, solve_phases
from astro.msio import VisData
from astro.skymodel import point_source_vis, radec_to_lmn
from sim.synthetic import dsa_like_layout, make_synthetic, offset_source, transit_phase_centre

SIGMA = 1.0
NTIME = 8


def _sources(scale: float = 1.0):
    ra, dec = transit_phase_centre()
    return [offset_source("a", ra, dec, 900, 600, 3.0 * scale), offset_source("b", ra, dec, -1500, -300, 2.0 * scale)]


def _drifted(sources) -> tuple[VisData, np.ndarray]:
    """Calibrated data of `sources` with the phases of a drifted instrument: per antenna and feed an
    offset of ~0.3 rad and a slope of up to 0.1 rad over the group. Returns (data, phases [t, a, p])."""
    d, _ = make_synthetic(sources, enu=dsa_like_layout(16, 10, 2, seed=3), nchan=16, ntime=NTIME, sigma=SIGMA,
                          gains=False, seed=5)
    rng = np.random.default_rng(8)
    off = rng.normal(0, 0.3, (d.nant, 2))
    slope = rng.uniform(-0.1, 0.1, (d.nant, 2))
    phase = off[None] + slope[None] * np.linspace(-0.5, 0.5, NTIME)[:, None, None]
    g = np.exp(1j * phase)  # [t, a, p]
    d.vis *= (g[:, d.ant1] * np.conj(g[:, d.ant2]))[:, :, None, :].astype(np.complex64)
    return d, phase


def _model(d: VisData, sources) -> np.ndarray:
    """Stokes I model [ntime * ncross, nchan] of `sources`, rows as ParallelHands lays them out."""
    cross = d.ant1 != d.ant2
    lmn = radec_to_lmn(np.deg2rad([s.ra_deg for s in sources]), np.deg2rad([s.dec_deg for s in sources]), *d.phase_dir)
    m = point_source_vis(d.uvw[:, cross], d.freq, lmn, np.stack([s.flux(d.freq) for s in sources]))[..., 0]
    return m.reshape(-1, d.nchan)


def _coherence(vis: np.ndarray, model: np.ndarray) -> float:
    """Re <V, M> / <M, M>: the fraction of the model's flux the data keep (1 = no decorrelation)."""
    return float(np.real(np.vdot(model, vis)) / np.real(np.vdot(model, model)))


def test_drifted_phases_are_solved_and_the_flux_comes_back() -> None:
    src = _sources()
    d, truth = _drifted(src)
    hands = average_parallel_hands(d, 2)
    model = _model(d, src)
    # the model at the averaged channels (same averaging as the data)
    model_avg = model.reshape(-1, d.nchan // 2, 2).mean(axis=2)
    before, _ = hands.stokes_i()
    sol = solve_phases(hands, model_avg, solint=2, noise_var=SIGMA**2)
    after, _ = hands.stokes_i(sol.gains)
    assert sol.solint == 2 and sol.median_snr > 20 and sol.explained > 0.95
    assert _coherence(before, model_avg) < 0.95
    assert _coherence(after, model_avg) == pytest.approx(1.0, abs=0.01)
    # the solved phases are the drift, up to the reference antenna's phase (per feed)
    ref = int(np.argmin(np.abs(np.angle(sol.gains)).sum(axis=(0, 2))))
    want = truth - truth[:, ref : ref + 1, :]
    err = np.angle(np.exp(1j * (np.angle(sol.gains) - want)))
    assert np.sqrt(np.mean(err**2)) < 0.05
    assert np.all(np.abs(sol.gains) == pytest.approx(1.0))  # phase only: the flux scale is the set's
    # the residual is the noise of Stokes I (sigma / sqrt(2) per part, / sqrt(2) more for 2 channels)
    resid = after - model_avg
    assert np.std(resid.real) == pytest.approx(SIGMA / 2, rel=0.1)


def test_a_faint_field_is_left_alone() -> None:
    src = _sources(scale=0.003)  # SNR per antenna ~1
    d, _ = _drifted(src)
    hands = average_parallel_hands(d, 1)
    sol = solve_phases(hands, _model(d, src), solint=2, noise_var=SIGMA**2)
    assert sol.solint == 0 and np.all(sol.gains == 1.0)
    assert any("median SNR" in h for h in sol.history)


def test_a_model_that_lacks_the_bright_source_is_refused() -> None:
    ra, dec = transit_phase_centre()
    bright = offset_source("outside", ra, dec, -4000, 2500, 30.0)  # outside the image: not in the model
    src = _sources()
    d, _ = _drifted([*src, bright])
    hands = average_parallel_hands(d, 1)
    sol = solve_phases(hands, _model(d, src), solint=2, noise_var=SIGMA**2)
    assert sol.solint == 0, sol.history
    assert any("explains" in h for h in sol.history)
    # with the source in the model (peeled: its visibilities are known) it is accepted
    sol = solve_phases(hands, _model(d, [*src, bright]), solint=2, noise_var=SIGMA**2)
    assert sol.solint == 2 and sol.explained > 0.95
