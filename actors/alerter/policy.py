"""Which alerts go out: de-duplication per event and rate limits per (type, severity).

Pure state transitions: every function takes the current :class:`PolicyState` and the time
(POSIX seconds, passed in, never read from a clock) and returns a new state, so the policy is
tested without sleeping and the actor can persist or rebuild the state as it likes.

De-duplication. An alert with a key (by default ``"<type>:<source_id>"``) is sent once; while
that key stays *active* further alerts with it are dropped as duplicates. The actor calls
:func:`release` when the event is over (the ESE candidate is resolved or marked a false
positive, the calibrator is seen again), after which a new event alerts again. Alerts
without a source and without an explicit key are never de-duplicated.

Rate limits. Each (type, severity) pair has a token bucket (``capacity`` alerts at once,
refilled at ``capacity`` per ``per_seconds``). An alert that finds its bucket empty is
suppressed and tallied (its key still becomes active: it is the same event, and the summary
names it). :func:`due_summaries` turns each tally, ``summary_after_s`` after its first
suppression, into one summary alert of the same type and severity, which is not itself rate
limited (there is at most one per pair per interval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType


class AlertType(StrEnum):
    ESE_CANDIDATE = "ese_candidate"
    CALIBRATOR_MISSING = "calibrator_missing"
    SYSTEM_ERROR = "system_error"


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


DEFAULT_SEVERITY: Mapping[AlertType, Severity] = MappingProxyType(
    {
        AlertType.ESE_CANDIDATE: Severity.CRITICAL,
        AlertType.CALIBRATOR_MISSING: Severity.WARNING,
        AlertType.SYSTEM_ERROR: Severity.ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert to deliver. ``fields`` are (label, value) pairs shown in the Slack message."""

    alert_type: AlertType
    message: str
    severity: Severity | None = None
    source_id: str | None = None
    dedup_key: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    is_summary: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "alert_type", AlertType(self.alert_type))
        sev = DEFAULT_SEVERITY[self.alert_type] if self.severity is None else Severity(self.severity)
        object.__setattr__(self, "severity", sev)
        if not self.message.strip():
            raise ValueError("alert message must not be empty")

    @property
    def level(self) -> Severity:
        assert self.severity is not None  # set in __post_init__
        return self.severity

    @property
    def key(self) -> str | None:
        if self.is_summary:
            return None
        if self.dedup_key is not None:
            return self.dedup_key
        return f"{self.alert_type}:{self.source_id}" if self.source_id else None

    @property
    def bucket(self) -> tuple[str, str]:
        return (str(self.alert_type), str(self.level))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Token bucket: at most ``capacity`` at once, refilled at ``capacity`` per ``per_seconds``."""

    capacity: float
    per_seconds: float

    def __post_init__(self) -> None:
        if not (self.capacity >= 1 and self.per_seconds > 0):
            raise ValueError(f"rate limit needs capacity ≥ 1 and a positive period, got {self}")

    @property
    def rate(self) -> float:
        return self.capacity / self.per_seconds


DEFAULT_LIMITS: Mapping[tuple[str, str], RateLimit] = MappingProxyType(
    {
        ("ese_candidate", "critical"): RateLimit(10, 3600),
        ("calibrator_missing", "warning"): RateLimit(3, 3600),
        ("system_error", "error"): RateLimit(5, 600),
    }
)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    limits: Mapping[tuple[str, str], RateLimit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    default_limit: RateLimit = RateLimit(5, 600)
    summary_after_s: float = 600.0
    summary_max_sources: int = 10

    def limit_for(self, bucket: tuple[str, str]) -> RateLimit:
        return self.limits.get(bucket, self.default_limit)


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Suppressed:
    count: int
    first_at: float
    last_at: float
    source_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyState:
    """Everything the policy remembers. Treat as immutable; the functions return new states."""

    active: frozenset[str] = frozenset()
    buckets: Mapping[tuple[str, str], Bucket] = field(default_factory=dict)
    suppressed: Mapping[tuple[str, str], Suppressed] = field(default_factory=dict)


class Verdict(StrEnum):
    SEND = "send"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"


def _refill(bucket: Bucket | None, limit: RateLimit, now: float) -> Bucket:
    if bucket is None:
        return Bucket(limit.capacity, now)
    elapsed = max(0.0, now - bucket.updated_at)  # a clock stepping back never mints tokens
    return Bucket(min(limit.capacity, bucket.tokens + elapsed * limit.rate), max(now, bucket.updated_at))


def decide(
    state: PolicyState, alert: Alert, now: float, config: PolicyConfig = PolicyConfig()
) -> tuple[PolicyState, Verdict]:
    """Whether to send ``alert`` at time ``now``, and the state after deciding."""
    if not math.isfinite(now):
        raise ValueError(f"time must be finite, got {now!r}")
    key = alert.key
    if key is not None and key in state.active:
        return state, Verdict.DUPLICATE
    active = state.active | {key} if key is not None else state.active
    b = alert.bucket
    bucket = _refill(state.buckets.get(b), config.limit_for(b), now)
    if bucket.tokens >= 1.0:
        buckets = {**state.buckets, b: Bucket(bucket.tokens - 1.0, bucket.updated_at)}
        return replace(state, active=active, buckets=buckets), Verdict.SEND
    prev = state.suppressed.get(b)
    ids = prev.source_ids if prev else ()
    if alert.source_id and alert.source_id not in ids and len(ids) < config.summary_max_sources:
        ids = (*ids, alert.source_id)
    tally = Suppressed(
        count=(prev.count if prev else 0) + 1,
        first_at=prev.first_at if prev else now,
        last_at=now,
        source_ids=ids,
    )
    return (
        replace(
            state,
            active=active,
            buckets={**state.buckets, b: bucket},
            suppressed={**state.suppressed, b: tally},
        ),
        Verdict.RATE_LIMITED,
    )


def release(state: PolicyState, key: str) -> PolicyState:
    """The event behind ``key`` is over (or its alert could not be delivered): allow a new one."""
    if key not in state.active:
        return state
    return replace(state, active=state.active - {key})


def release_source(state: PolicyState, alert_type: AlertType | str, source_id: str) -> PolicyState:
    return release(state, f"{AlertType(alert_type)}:{source_id}")


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def due_summaries(
    state: PolicyState, now: float, config: PolicyConfig = PolicyConfig()
) -> tuple[PolicyState, list[Alert]]:
    """Summary alerts for tallies at least ``summary_after_s`` old; those tallies are cleared."""
    out: list[Alert] = []
    keep: dict[tuple[str, str], Suppressed] = {}
    for (atype, sev), s in state.suppressed.items():
        if now - s.first_at < config.summary_after_s:
            keep[(atype, sev)] = s
            continue
        plural = "" if s.count == 1 else "s"
        msg = (
            f"{s.count} {atype} alert{plural} ({sev}) suppressed by the rate limit "
            f"between {_utc(s.first_at)} and {_utc(s.last_at)}"
        )
        fields: list[tuple[str, str]] = [("suppressed", str(s.count))]
        if s.source_ids:
            more = s.count - len(s.source_ids)
            names = ", ".join(s.source_ids) + (f" and {more} more" if more > 0 else "")
            fields.append(("sources", names))
        out.append(
            Alert(
                alert_type=AlertType(atype),
                severity=Severity(sev),
                message=msg,
                fields=tuple(fields),
                is_summary=True,
            )
        )
    if not out:
        return state, out
    return replace(state, suppressed=keep), out
