from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from actors.variability.ese import (
    PRESETS,
    CandidateStatus,
    EseCandidate,
    EseConfig,
    TransitionError,
    evaluate,
    mark_false_positive,
    preset,
    resolve,
    step,
    transition,
)
from actors.variability.stats import SourceStats, update

T0 = datetime(2025, 10, 24, 12, 0, tzinfo=UTC)


def _run(flux, err, config: EseConfig = EseConfig(), source_id: str = "NVSS J000000.0+400000"):
    """Feed a light curve through evaluate → step → update; return the candidates and flags."""
    stats = SourceStats()
    cand: EseCandidate | None = None
    opened, flagged = [], []
    for i, (f, e) in enumerate(zip(flux, err, strict=True)):
        det = evaluate(stats, float(f), float(e), config)
        up = step(cand, det, source_id=source_id, ra_deg=10.0, dec_deg=40.0, at=T0 + timedelta(days=i))
        cand = up.candidate
        if up.opened:
            opened.append(i)
        if det.flagged:
            flagged.append(i)
        stats = update(stats, float(f), float(e))
    return cand, opened, flagged, stats


def test_self_referenced_test_cannot_fire_early_but_baseline_test_does():
    """Samuelson: with N epochs max|x − x̄|/s ≤ (N − 1)/√N, < 5 until N = 27."""
    flux = np.array([0.100, 0.101, 0.099, 0.100, 0.102, 0.098, 0.100, 0.101, 0.099, 0.050])
    err = np.full(flux.size, 0.001)
    self_ref = np.max(np.abs(flux - flux.mean())) / flux.std(ddof=1)
    assert self_ref <= (flux.size - 1) / math.sqrt(flux.size) < 5
    cand, opened, flagged, _ = _run(flux, err)
    assert opened == [9] and flagged == [9]
    assert cand is not None and cand.is_active
    assert cand.max_sigma_dev > 20
    assert cand.peak_flux_jy == pytest.approx(0.05)
    assert cand.baseline_flux_jy == pytest.approx(0.1, abs=0.002)


def test_injected_dip_is_one_candidate_extended_over_the_event():
    rng = np.random.default_rng(3)
    n = 40
    err = np.full(n, 0.002)
    truth = np.full(n, 0.1)
    truth[20:26] = [0.08, 0.06, 0.05, 0.05, 0.06, 0.08]  # ESE-like dip
    flux = truth + rng.normal(0, err)
    cand, opened, flagged, stats = _run(flux, err)
    assert opened == [20]  # one candidate, opened on the first deviant epoch
    assert set(range(20, 26)) <= set(flagged)
    assert set(flagged) <= set(range(20, 26))
    assert cand is not None
    assert cand.first_detection_at == T0 + timedelta(days=20)
    assert cand.last_detection_at == T0 + timedelta(days=25)
    assert cand.peak_flux_jy < 0.06
    assert stats.sigma_deviation == pytest.approx(cand.max_sigma_dev, rel=1e-9)


def test_no_false_positives_among_many_constant_sources():
    """2000 constant sources × 40 epochs with heteroscedastic errors: none flagged at 5σ."""
    rng = np.random.default_rng(11)
    n_src, n_ep = 2000, 40
    true_flux = rng.uniform(0.005, 0.5, n_src)
    err = rng.uniform(0.5e-3, 3e-3, (n_src, n_ep))  # e.g. sources drifting through the beam
    flux = true_flux[:, None] + rng.normal(0, err)
    mod, sens = PRESETS["moderate"], PRESETS["sensitive"]
    n_mod = n_sens = 0
    n_tests = 0
    for i in range(n_src):
        s = SourceStats()
        for f, e in zip(flux[i], err[i], strict=True):
            n_mod += evaluate(s, f, e, mod).flagged
            n_sens += evaluate(s, f, e, sens).flagged
            n_tests += s.n_base >= sens.min_baseline_epochs
            s = update(s, f, e)
    assert n_mod == 0
    # 4σ two-sided is 6.3e-5 per test for a unit normal; a small excess is allowed for the
    # estimated baseline, nothing like the (N−1)/√N-style breakdown.
    assert n_sens <= 6.3e-5 * n_tests * 4 + 3


def test_presets_order_by_sensitivity_and_minimum_baseline():
    base = SourceStats()
    for f in [1.0] * 12:
        base = update(base, f, 0.01)
    # Baseline scatter is zero, so dev = Δ / sqrt(err² + 0) with err = 0.01.
    def flags(delta: float) -> dict[str, bool]:
        return {k: evaluate(base, 1.0 + delta, 0.01, v).flagged for k, v in PRESETS.items()}

    assert flags(0.045) == {"conservative": False, "moderate": False, "sensitive": True}
    assert flags(-0.055) == {"conservative": False, "moderate": True, "sensitive": True}
    assert flags(0.065) == {"conservative": True, "moderate": True, "sensitive": True}
    assert preset("moderate") == EseConfig()
    with pytest.raises(ValueError, match="unknown ESE preset"):
        preset("paranoid")
    short = SourceStats()
    for f in [1.0] * 4:
        short = update(short, f, 0.01)
    assert math.isnan(evaluate(short, 2.0, 0.01).sigma_dev)  # moderate needs 5 baseline epochs
    assert evaluate(short, 2.0, 0.01, preset("sensitive")).flagged
    with pytest.raises(ValueError):
        EseConfig(min_baseline_epochs=1)


def _cand() -> EseCandidate:
    cand, *_ = _run([1.0] * 6 + [0.5], [0.01] * 7)
    assert cand is not None
    return cand


def test_lifecycle_transitions():
    c = _cand()
    assert c.status is CandidateStatus.ACTIVE
    r = resolve(c, "scintillation ruled out")
    assert r.status is CandidateStatus.RESOLVED and r.notes == "scintillation ruled out"
    assert c.status is CandidateStatus.ACTIVE  # pure: the input is unchanged
    assert resolve(r) is r  # idempotent retry
    fp = mark_false_positive(c)
    assert fp.status is CandidateStatus.FALSE_POSITIVE and fp.notes is None
    with pytest.raises(TransitionError):
        transition(r, "false_positive")
    with pytest.raises(TransitionError):
        transition(fp, CandidateStatus.ACTIVE)
    with pytest.raises(TransitionError, match="unknown"):
        transition(c, "closed")


def test_a_closed_candidate_is_not_extended_a_new_one_opens():
    c = resolve(_cand())
    s = SourceStats()
    for f in [1.0, 1.01, 0.99, 1.0, 1.0, 1.01]:
        s = update(s, f, 0.01)
    det = evaluate(s, 0.4, 0.01)
    up = step(c, det, source_id=c.source_id, ra_deg=c.ra_deg, dec_deg=c.dec_deg, at=T0 + timedelta(days=30))
    assert up.opened and up.candidate is not None and up.candidate.is_active
    assert up.candidate.first_detection_at == T0 + timedelta(days=30)
    quiet = evaluate(s, 1.0, 0.01)
    up2 = step(up.candidate, quiet, source_id=c.source_id, ra_deg=0, dec_deg=0, at=T0 + timedelta(days=31))
    assert not up2.changed and up2.candidate is up.candidate
    with pytest.raises(ValueError, match="timezone"):
        step(None, det, source_id="x", ra_deg=0, dec_deg=0, at=datetime(2025, 1, 1))


def test_candidate_dict_has_the_seed_fields_and_round_trips():
    c = _cand()
    d = c.to_dict()
    assert set(d) == {
        "source_id", "ra_deg", "dec_deg", "first_detection_at", "last_detection_at",
        "max_sigma_dev", "baseline_flux_jy", "peak_flux_jy", "status", "notes",
    }
    assert d["status"] == "active" and d["first_detection_at"].endswith("Z")
    assert EseCandidate.from_dict(d) == c
