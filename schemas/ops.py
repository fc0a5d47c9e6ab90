"""Operations events: dead letters, alerts and actor liveness."""

from __future__ import annotations

from schemas.base import Event


class DeadLettered(Event, frozen=True, tag="ops.deadletter"):
    """A message that could not be handled: undecodable, or failing past the delivery limit.

    The original bytes are kept (as text, or base64 when not UTF-8) so that ops can repair and
    re-publish it; the original stays in the stream too, so nothing is lost.
    """

    consumer: str
    original_subject: str
    original_seq: int
    deliveries: int
    reason: str
    payload: str
    payload_encoding: str = "utf-8"


class AlertRaised(Event, frozen=True, tag="ops.alert.raised"):
    """Something an operator should hear about. The alerter decides whether it reaches Slack."""

    alert_type: str  # ese_candidate | calibrator_missing | system_error
    severity: str  # critical | warning | info
    message: str
    source_id: str | None = None
    dedup_key: str = ""
    details: dict[str, str] = {}


class AlertSent(Event, frozen=True, tag="ops.alert.sent"):
    """One delivery attempt of an alert (successful or not): the alert history is built from these."""

    alert_id: str
    alert_type: str
    severity: str
    message: str
    channel: str
    success: bool
    source_id: str | None = None
    attempt: int = 1
    status_code: int | None = None
    error: str = ""
    sent_at: str = ""  # when the attempt was made (ISO 8601 Z); the event time if empty
    #: "slack" (a POST was made: see success), "not_configured" (no webhook: nothing was tried, and
    #: nothing failed), "dry_run" (--slack-dry-run: logged, not sent)
    delivery: str = "slack"


class ActorHeartbeat(Event, frozen=True, tag="live.actor.heartbeat"):
    """Liveness of one actor instance. Published on core NATS only: not stored in the stream."""

    role: str
    instance: str
    pid: int
    host: str
    started_at: str
    handled: int
    failed: int
    in_flight: int
    #: process CPU (% of one core) and resident memory, for actors that report them (the watcher)
    cpu_percent: float | None = None
    memory_mb: float | None = None
    #: "active", or "standby" while an instance of a single-active role waits for its lease
    state: str = "active"
