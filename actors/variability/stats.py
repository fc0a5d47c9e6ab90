"""Incremental light-curve statistics: constant cost per measurement, history never re-read.

A :class:`SourceStats` is a small immutable record of running sums; :func:`update` folds one
measurement (flux, error) into it and returns a new record. The quantities served to the
dashboard are derived from those sums:

``n_obs``, ``mean``, ``std``
    Unweighted, by Welford's update (sample std, ``ddof=1``).
``chi2_nu``
    ``Σ w (F − F̄_w)² / (N − 1)`` with ``w = 1/σ²`` and ``F̄_w`` the weighted mean. ``σ`` must be
    the epoch-to-epoch error (:mod:`actors.variability.errors`), not the absolute-flux error:
    noise that repeats every epoch does not scatter a light curve, and counting it made constant
    sources' χ²ν ~ 0.2-0.3 (issue 11).
``eta``
    The VAST pipeline / TraP η: ``N/(N−1) · (⟨wF²⟩ − ⟨wF⟩²/⟨w⟩)`` from running sums of
    ``w``, ``wF`` and ``wF²``. Expanding the means shows η is algebraically the same number as
    ``chi2_nu``; it is kept under its own name because VAST and TraP users look for it. Naive
    sums of ``wF²`` cancel catastrophically for a bright steady source, so the record keeps the
    weighted mean and the weighted sum of squared deviations (West 1979) instead, and exposes
    ``sum_w``, ``sum_wf`` and ``sum_wf2`` as properties derived from them.
``v``
    The coefficient of variation ``std / mean``.
``sigma_deviation``
    The largest ``|deviation|`` seen so far, where each measurement's deviation is taken
    against a *baseline* of the earlier epochs (see :func:`deviation` and ``ese.py`` for why).

The baseline is a second running accumulator (mean, scatter, mean squared error) that absorbs
a measurement only while it is still short (``min_baseline`` epochs) or when the measurement is
within ``clip_sigma`` of it. An extreme scattering event therefore does not drag the baseline
along with it while it lasts, and the deviation of later event epochs stays measured against
the quiescent flux. This is online sigma clipping: still O(1), but order-dependent, which is
why :func:`merge` (for combining partial light curves) documents that the baseline it returns
is a pooled approximation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MIN_BASELINE_EPOCHS = 5
BASELINE_CLIP_SIGMA = 4.0


class StatsError(ValueError):
    """A measurement or stored record cannot be used; the message names the problem."""


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Running sums for one source's light curve. Build with ``SourceStats()`` and :func:`update`."""

    n_obs: int = 0
    mean: float = 0.0  # unweighted running mean (Jy)
    m2: float = 0.0  # Σ (F − mean)²
    sum_w: float = 0.0  # Σ 1/σ²
    wmean: float = 0.0  # weighted mean
    wm2: float = 0.0  # Σ w (F − wmean)²
    n_base: int = 0  # baseline accumulator (clipped)
    base_mean: float = 0.0
    base_m2: float = 0.0
    base_err2: float = 0.0  # mean σ² of the baseline epochs
    sigma_deviation: float = 0.0  # max |deviation| so far
    last_deviation: float = math.nan  # signed deviation of the latest measurement (NaN: no baseline)

    # -- derived quantities -------------------------------------------------------------
    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n_obs - 1)) if self.n_obs > 1 else math.nan

    @property
    def chi2_nu(self) -> float:
        return self.wm2 / (self.n_obs - 1) if self.n_obs > 1 else math.nan

    @property
    def eta(self) -> float:
        """VAST/TraP η = N/(N−1) (⟨wF²⟩ − ⟨wF⟩²/⟨w⟩); equal to ``chi2_nu``."""
        return self.chi2_nu

    @property
    def v(self) -> float:
        return self.std / self.mean if self.n_obs > 1 and self.mean != 0 else math.nan

    @property
    def sum_wf(self) -> float:
        return self.wmean * self.sum_w

    @property
    def sum_wf2(self) -> float:
        return self.wm2 + self.sum_w * self.wmean**2

    @property
    def base_std(self) -> float:
        return math.sqrt(self.base_m2 / (self.n_base - 1)) if self.n_base > 1 else math.nan

    # -- storage --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (NaN becomes None) for storage."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceStats:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise StatsError(f"unknown statistics field(s): {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            if f.name in ("n_obs", "n_base"):
                kw[f.name] = int(v)
            else:
                kw[f.name] = math.nan if v is None else float(v)
        return cls(**kw)

    def summary(self) -> dict[str, float | int | None]:
        """The figures the dashboard shows (seed 000 ``variability_stats``), fluxes in mJy."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "n_obs": self.n_obs,
            "mean_flux_mjy": clean(self.mean * 1e3) if self.n_obs else None,
            "std_flux_mjy": clean(self.std * 1e3),
            "chi2_nu": clean(self.chi2_nu),
            "eta": clean(self.eta),
            "v": clean(self.v),
            "sigma_deviation": self.sigma_deviation,
        }


def _check(flux: float, err: float) -> None:
    if not math.isfinite(flux):
        raise StatsError(f"flux must be finite, got {flux!r}")
    if not (math.isfinite(err) and err > 0):
        raise StatsError(f"flux error must be finite and positive, got {err!r}")


def deviation(baseline: SourceStats, flux: float, err: float, *, sys_frac: float = 0.0) -> float:
    """Signed deviation, in σ, of a new measurement from the baseline of earlier epochs.

    The predicted scatter of a new measurement about the baseline mean is the source's intrinsic
    scatter (baseline variance minus the baseline epochs' mean σ², floored at 0), plus this
    measurement's own σ², plus the uncertainty of the baseline mean (the larger of the baseline
    variance and its epochs' mean σ², over n: a baseline that happens to scatter less than its
    errors must not shrink the test), plus an optional fractional systematic term. Using the
    measurement's own error keeps the test right for an epoch measured at the edge of the primary
    beam; using the baseline's scatter keeps it right when quoted errors are too small. NaN when the
    baseline has < 2 epochs.
    """
    _check(flux, err)
    n = baseline.n_base
    if n < 2:
        return math.nan
    var_b = baseline.base_m2 / (n - 1)
    intrinsic = max(0.0, var_b - baseline.base_err2)
    var = intrinsic + err * err + max(var_b, baseline.base_err2) / n + (sys_frac * baseline.base_mean) ** 2
    return (flux - baseline.base_mean) / math.sqrt(var)


def update(
    stats: SourceStats,
    flux: float,
    err: float,
    *,
    min_baseline: int = MIN_BASELINE_EPOCHS,
    clip_sigma: float = BASELINE_CLIP_SIGMA,
) -> SourceStats:
    """Fold one measurement (Jy, Jy) into ``stats``; O(1) whatever the light curve's length."""
    _check(flux, err)
    n = stats.n_obs + 1
    d = flux - stats.mean
    mean = stats.mean + d / n
    m2 = stats.m2 + d * (flux - mean)

    w = 1.0 / (err * err)
    sum_w = stats.sum_w + w
    dw = flux - stats.wmean
    wmean = stats.wmean + dw * (w / sum_w)
    wm2 = stats.wm2 + w * dw * (flux - wmean)

    dev = deviation(stats, flux, err) if stats.n_base >= min_baseline else math.nan
    sigma_dev = stats.sigma_deviation
    if not math.isnan(dev):
        sigma_dev = max(sigma_dev, abs(dev))

    n_base, base_mean, base_m2, base_err2 = stats.n_base, stats.base_mean, stats.base_m2, stats.base_err2
    if math.isnan(dev) or abs(dev) < clip_sigma:
        n_base += 1
        db = flux - base_mean
        base_mean += db / n_base
        base_m2 += db * (flux - base_mean)
        base_err2 += (err * err - base_err2) / n_base

    return SourceStats(
        n_obs=n,
        mean=mean,
        m2=m2,
        sum_w=sum_w,
        wmean=wmean,
        wm2=wm2,
        n_base=n_base,
        base_mean=base_mean,
        base_m2=base_m2,
        base_err2=base_err2,
        sigma_deviation=sigma_dev,
        last_deviation=dev,
    )


def _combine(na: float, ma: float, m2a: float, nb: float, mb: float, m2b: float) -> tuple[float, float]:
    n = na + nb
    if n == 0:
        return 0.0, 0.0
    delta = mb - ma
    return ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def merge(a: SourceStats, b: SourceStats) -> SourceStats:
    """Statistics of the union of two disjoint sets of measurements (Chan et al. 1979).

    Exact for n_obs, mean, std, chi2_nu, eta and v. The baseline is the pooled union of the
    two baselines, which is what a single pass would give unless clipping decisions depended
    on the order; ``sigma_deviation`` is the larger of the two and ``last_deviation`` is b's.
    """
    mean, m2 = _combine(a.n_obs, a.mean, a.m2, b.n_obs, b.mean, b.m2)
    wmean, wm2 = _combine(a.sum_w, a.wmean, a.wm2, b.sum_w, b.wmean, b.wm2)
    base_mean, base_m2 = _combine(a.n_base, a.base_mean, a.base_m2, b.n_base, b.base_mean, b.base_m2)
    nb = a.n_base + b.n_base
    base_err2 = (a.base_err2 * a.n_base + b.base_err2 * b.n_base) / nb if nb else 0.0
    return SourceStats(
        n_obs=a.n_obs + b.n_obs,
        mean=mean,
        m2=m2,
        sum_w=a.sum_w + b.sum_w,
        wmean=wmean,
        wm2=wm2,
        n_base=nb,
        base_mean=base_mean,
        base_m2=base_m2,
        base_err2=base_err2,
        sigma_deviation=max(a.sigma_deviation, b.sigma_deviation),
        last_deviation=b.last_deviation if b.n_obs else a.last_deviation,
    )
