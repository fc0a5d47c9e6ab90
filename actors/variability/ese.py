"""Extreme-scattering-event (ESE) candidates: when to flag a source, and the candidate lifecycle.

Why the deviation is measured against a baseline of *earlier* epochs
--------------------------------------------------------------------
The obvious test, "flag when a measurement is more than 5σ from the source's mean, σ being the
light curve's standard deviation", cannot work on a short light curve. For any N numbers,
``max |x_i − x̄| / s ≤ (N − 1)/√N`` (Samuelson's inequality, ``s`` with ``ddof = 1``): the
outlier itself inflates both the mean and the scatter it is compared with. The bound reaches 5
only at N = 27, so a 5σ self-referenced test is blind for the first four weeks of daily epochs,
however deep the dip.

So each new measurement is compared with the statistics of the epochs *before* it
(:func:`actors.variability.stats.deviation`), which it cannot have contaminated:

    dev = (F − F̄_base) / sqrt(σ_int² + σ_F² + max(s_base², ⟨σ²⟩_base)/n_base [+ (f_sys F̄_base)²])

``σ_F`` is this measurement's epoch-to-epoch error (:mod:`actors.variability.errors`: thermal noise
and flux scale, not the repeating sidelobes), ``s_base`` the baseline scatter, ``⟨σ²⟩_base`` the baseline
epochs' mean squared error, ``σ_int² = max(0, s_base² − ⟨σ²⟩_base)`` the scatter those errors do not
explain, and the third term the uncertainty of the baseline mean. For a constant source with honest
errors ``dev`` is close to a unit normal, so 5σ keeps its usual meaning (about 6 × 10⁻⁷ per
measurement, two-sided). The baseline also stops absorbing measurements that deviate by more than
``BASELINE_CLIP_SIGMA`` once it is established, so an event lasting many epochs keeps being measured
against quiescence.

A minimum number of baseline epochs is still required: the scatter term is estimated from the
baseline, and with few epochs that estimate is poor (a sample variance from three epochs is below a
quarter of the truth 22 % of the time, from five 9 %, from ten 1.3 %), which for sources whose
scatter is dominated by calibration rather than thermal noise would turn ordinary epochs into 5σ
events. Five epochs by default, ten for the conservative preset.

Lifecycle
---------
``active`` → ``resolved`` | ``false_positive``, by an operator. Further deviant epochs of an
active candidate extend it (last detection, maximum deviation, extreme flux); a deviant epoch
of a source whose last candidate is closed opens a new candidate. All functions here are pure
and return new records.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from actors.variability.stats import MIN_BASELINE_EPOCHS, SourceStats, deviation


class CandidateStatus(StrEnum):
    ACTIVE = "active"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


class TransitionError(ValueError):
    """A status change the lifecycle does not allow."""


@dataclass(frozen=True, slots=True)
class EseConfig:
    """How eagerly to flag: threshold in σ, baseline epochs required, fractional systematic."""

    threshold_sigma: float = 5.0
    min_baseline_epochs: int = MIN_BASELINE_EPOCHS
    sys_frac: float = 0.0

    def __post_init__(self) -> None:
        if not self.threshold_sigma > 0:
            raise ValueError(f"threshold_sigma must be positive, got {self.threshold_sigma}")
        if self.min_baseline_epochs < 2:
            raise ValueError(f"min_baseline_epochs must be at least 2, got {self.min_baseline_epochs}")
        if not self.sys_frac >= 0:
            raise ValueError(f"sys_frac must be non-negative, got {self.sys_frac}")


PRESETS: dict[str, EseConfig] = {
    "conservative": EseConfig(threshold_sigma=6.0, min_baseline_epochs=10, sys_frac=0.0),
    "moderate": EseConfig(threshold_sigma=5.0, min_baseline_epochs=5, sys_frac=0.0),
    "sensitive": EseConfig(threshold_sigma=4.0, min_baseline_epochs=4, sys_frac=0.0),
}
DEFAULT_PRESET = "moderate"


def preset(name: str) -> EseConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown ESE preset {name!r}; choose one of {sorted(PRESETS)}") from None


@dataclass(frozen=True, slots=True)
class Detection:
    """The test of one measurement against the baseline (``sigma_dev`` is signed; NaN: no test)."""

    sigma_dev: float
    flux_jy: float
    err_jy: float
    baseline_flux_jy: float
    flagged: bool


def evaluate(baseline: SourceStats, flux: float, err: float, config: EseConfig = EseConfig()) -> Detection:
    """Test a measurement against the source's statistics *before* it is folded in."""
    if baseline.n_base < config.min_baseline_epochs:
        dev = math.nan
    else:
        dev = deviation(baseline, flux, err, sys_frac=config.sys_frac)
    flagged = not math.isnan(dev) and abs(dev) >= config.threshold_sigma
    return Detection(dev, flux, err, baseline.base_mean, flagged)


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class EseCandidate:
    """One candidate, with the fields of seed 000's ``/ese/candidates`` (bar the storage id).

    ``max_sigma_dev`` is the largest |deviation|; ``peak_flux_jy`` is the flux of that epoch,
    the extreme of the event (below the baseline for a dip, above it for a brightening).
    """

    source_id: str
    ra_deg: float
    dec_deg: float
    first_detection_at: datetime
    last_detection_at: datetime
    max_sigma_dev: float
    baseline_flux_jy: float
    peak_flux_jy: float
    status: CandidateStatus = CandidateStatus.ACTIVE
    notes: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status is CandidateStatus.ACTIVE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["first_detection_at"] = _iso(self.first_detection_at)
        d["last_detection_at"] = _iso(self.last_detection_at)
        d["status"] = str(self.status)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EseCandidate:
        return cls(
            source_id=str(d["source_id"]),
            ra_deg=float(d["ra_deg"]),
            dec_deg=float(d["dec_deg"]),
            first_detection_at=_parse(d["first_detection_at"]),
            last_detection_at=_parse(d["last_detection_at"]),
            max_sigma_dev=float(d["max_sigma_dev"]),
            baseline_flux_jy=float(d["baseline_flux_jy"]),
            peak_flux_jy=float(d["peak_flux_jy"]),
            status=CandidateStatus(d.get("status", "active")),
            notes=d.get("notes"),
        )


@dataclass(frozen=True, slots=True)
class CandidateUpdate:
    """Result of :func:`step`: the source's current candidate and what happened to it."""

    candidate: EseCandidate | None
    opened: bool = False  # a new candidate (alert-worthy)
    changed: bool = False  # opened or extended (worth an ``ese_update``)


def step(
    current: EseCandidate | None,
    detection: Detection,
    *,
    source_id: str,
    ra_deg: float,
    dec_deg: float,
    at: datetime,
) -> CandidateUpdate:
    """Apply one tested measurement to the source's latest candidate (None if it has none)."""
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    if not detection.flagged:
        return CandidateUpdate(current)
    sig = abs(detection.sigma_dev)
    if current is None or not current.is_active:
        cand = EseCandidate(
            source_id=source_id,
            ra_deg=ra_deg,
            dec_deg=dec_deg,
            first_detection_at=at,
            last_detection_at=at,
            max_sigma_dev=sig,
            baseline_flux_jy=detection.baseline_flux_jy,
            peak_flux_jy=detection.flux_jy,
        )
        return CandidateUpdate(cand, opened=True, changed=True)
    stronger = sig > current.max_sigma_dev
    cand = replace(
        current,
        last_detection_at=max(current.last_detection_at, at),
        max_sigma_dev=sig if stronger else current.max_sigma_dev,
        peak_flux_jy=detection.flux_jy if stronger else current.peak_flux_jy,
    )
    return CandidateUpdate(cand, opened=False, changed=True)


def transition(candidate: EseCandidate, status: CandidateStatus | str, notes: str | None = None) -> EseCandidate:
    """Operator status change: only ``active`` → ``resolved`` | ``false_positive``.

    Setting the status a candidate already has is a no-op (an idempotent retry), though new
    notes are kept. ``notes=None`` keeps existing notes.
    """
    try:
        new = CandidateStatus(status)
    except ValueError:
        raise TransitionError(
            f"unknown candidate status {status!r}; use one of {[s.value for s in CandidateStatus]}"
        ) from None
    if new is candidate.status:
        return candidate if notes is None else replace(candidate, notes=notes)
    if candidate.status is not CandidateStatus.ACTIVE or new is CandidateStatus.ACTIVE:
        raise TransitionError(f"candidate for {candidate.source_id} is {candidate.status}; cannot become {new}")
    return replace(candidate, status=new, notes=candidate.notes if notes is None else notes)


def resolve(candidate: EseCandidate, notes: str | None = None) -> EseCandidate:
    return transition(candidate, CandidateStatus.RESOLVED, notes)


def mark_false_positive(candidate: EseCandidate, notes: str | None = None) -> EseCandidate:
    return transition(candidate, CandidateStatus.FALSE_POSITIVE, notes)
