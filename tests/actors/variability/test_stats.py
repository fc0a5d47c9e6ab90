from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest

from actors.variability.stats import SourceStats, StatsError, deviation, merge, update


def _fold(flux, err, stats: SourceStats | None = None) -> SourceStats:
    s = stats or SourceStats()
    for f, e in zip(flux, err, strict=True):
        s = update(s, float(f), float(e))
    return s


def _batch(flux: np.ndarray, err: np.ndarray) -> dict[str, float]:
    w = 1 / err**2
    n = flux.size
    wmean = np.sum(w * flux) / np.sum(w)
    # η exactly as the VAST pipeline writes it.
    eta = n / (n - 1) * (np.mean(w * flux**2) - np.mean(w * flux) ** 2 / np.mean(w))
    return {
        "mean": flux.mean(),
        "std": flux.std(ddof=1),
        "chi2_nu": np.sum(w * (flux - wmean) ** 2) / (n - 1),
        "eta": eta,
        "v": flux.std(ddof=1) / flux.mean(),
        "sum_w": np.sum(w),
        "sum_wf": np.sum(w * flux),
        "sum_wf2": np.sum(w * flux**2),
    }


def test_incremental_equals_batch():
    rng = np.random.default_rng(4)
    err = rng.uniform(0.001, 0.004, 200)
    flux = 0.05 + rng.normal(0, err) + 0.01 * np.sin(np.arange(200) / 7)
    s = _fold(flux, err)
    b = _batch(flux, err)
    assert s.n_obs == 200
    for k, v in b.items():
        assert getattr(s, k) == pytest.approx(v, rel=1e-9), k
    assert s.eta == pytest.approx(s.chi2_nu)


def test_bright_steady_source_is_numerically_stable():
    """Naive Σ wF² − (Σ wF)²/Σ w would lose every digit here; the record must not."""
    rng = np.random.default_rng(0)
    err = np.full(5000, 1e-3)
    flux = 1.0e4 + rng.normal(0, 1e-3, 5000)
    s = _fold(flux, err)
    assert s.chi2_nu == pytest.approx(1.0, abs=0.06)
    assert s.std == pytest.approx(1e-3, rel=0.05)


def test_small_samples_and_validation():
    s = SourceStats()
    assert math.isnan(s.std) and math.isnan(s.chi2_nu) and math.isnan(s.v)
    s1 = update(s, 0.1, 0.01)
    assert s1.n_obs == 1 and s1.mean == 0.1 and math.isnan(s1.std)
    assert math.isnan(s1.last_deviation)
    for bad in ((math.nan, 0.01), (0.1, 0.0), (0.1, -1.0), (0.1, math.inf)):
        with pytest.raises(StatsError):
            update(s1, *bad)


def test_update_is_constant_size_and_does_not_mutate():
    s = _fold(np.ones(10), np.full(10, 0.1))
    before = s.to_dict()
    s2 = update(s, 1.0, 0.1)
    assert s.to_dict() == before
    assert len(fields(s2)) == len(fields(SourceStats))
    big = SourceStats(n_obs=10**9, mean=1.0, m2=1e7, sum_w=1e11, wmean=1.0, wm2=1e9,
                      n_base=10**9, base_mean=1.0, base_m2=1e7, base_err2=0.01)
    assert update(big, 1.0, 0.1).n_obs == 10**9 + 1


def test_merge_equals_single_pass():
    rng = np.random.default_rng(9)
    err = rng.uniform(0.001, 0.003, 90)
    flux = 0.2 + rng.normal(0, err)
    whole = _fold(flux, err)
    m = merge(_fold(flux[:40], err[:40]), _fold(flux[40:], err[40:]))
    for k in ("n_obs", "mean", "std", "chi2_nu", "eta", "v", "sum_w", "sum_wf", "sum_wf2"):
        assert getattr(m, k) == pytest.approx(getattr(whole, k), rel=1e-9), k
    assert m.n_base == whole.n_base
    assert m.base_mean == pytest.approx(whole.base_mean)
    empty_first = merge(SourceStats(), whole)
    assert empty_first.n_obs == 90 and empty_first.mean == pytest.approx(whole.mean)
    assert empty_first.chi2_nu == pytest.approx(whole.chi2_nu)


def test_serialisation_round_trip_through_json():
    s = _fold([0.1, 0.12, 0.11], [0.01, 0.01, 0.02])
    d = json.loads(json.dumps(s.to_dict()))
    assert d["last_deviation"] is None  # NaN is stored as null
    back = SourceStats.from_dict(d)
    assert back.n_obs == s.n_obs and back.wm2 == s.wm2 and math.isnan(back.last_deviation)
    with pytest.raises(StatsError, match="unknown"):
        SourceStats.from_dict({"n_obs": 1, "flux": 2})
    summ = s.summary()
    assert set(summ) >= {"n_obs", "mean_flux_mjy", "std_flux_mjy", "chi2_nu", "sigma_deviation"}
    assert summ["mean_flux_mjy"] == pytest.approx(110.0)


def test_deviation_uses_the_earlier_epochs_and_both_error_terms():
    base = _fold([1.0, 1.02, 0.98, 1.01, 0.99], [0.01] * 5)
    # Scatter ≈ errors → little intrinsic term; predictive σ² ≈ err² + max(var, ⟨σ²⟩)/n.
    var_b = np.var([1.0, 1.02, 0.98, 1.01, 0.99], ddof=1)
    expected = (0.9 - 1.0) / math.sqrt(max(0.0, var_b - 1e-4) + 0.02**2 + max(var_b, 1e-4) / 5)
    assert deviation(base, 0.9, 0.02) == pytest.approx(expected)
    # A fractional systematic widens it.
    assert abs(deviation(base, 0.9, 0.02, sys_frac=0.05)) < abs(expected)
    assert math.isnan(deviation(_fold([1.0], [0.01]), 2.0, 0.01))


def test_sigma_deviation_and_clipped_baseline():
    flux = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 0.6, 0.6, 0.6, 1.0]
    s = SourceStats()
    devs = []
    for f in flux:
        s = update(s, f, 0.01)
        devs.append(s.last_deviation)
    assert all(math.isnan(d) for d in devs[:5])  # baseline still short
    assert devs[7] < -20 and devs[9] < -20  # the event stays measured against quiescence
    assert s.n_base == 8  # the three event epochs were not absorbed
    assert s.base_mean == pytest.approx(1.0, abs=0.01)
    assert s.sigma_deviation == pytest.approx(max(abs(d) for d in devs if not math.isnan(d)))
    assert s.n_obs == len(flux)
