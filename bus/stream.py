"""The event stream: every stored event of the platform, in one JetStream stream.

One stream rather than one per domain, because the edge projects all of them in one order and
``replay`` can interleave DSA and SETI facts as they happened. Subjects outside it (``cmd.>`` for
request/reply commands, ``live.>`` for heartbeats) are never stored.

Every process that writes reconciles the stream *towards* its settings at start, and only ever
upwards: a replica count or a retention that an operator raised by hand (``nats stream edit``)
is kept, with a warning that the settings say less, because the operator's change is the newer
decision and lowering replicas silently on a cluster is how a stream loses its redundancy.
Processes that only read (``replay``) never modify the stream at all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

import logs

STREAM = "EVENTS"
SUBJECTS = ["dsa.>", "seti.>", "ops.>"]
DUPLICATE_WINDOW_S = 120.0

log = logs.get("bus.stream")


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """What the settings ask of the stream: retention by age and size, and replicas."""

    max_age_days: float = 90.0
    max_bytes: int = -1
    replicas: int = 1


def stream_config(policy: StreamPolicy = StreamPolicy()) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=list(SUBJECTS),
        retention=RetentionPolicy.LIMITS,  # consumers never delete: the stream is the record
        storage=StorageType.FILE,
        max_age=policy.max_age_days * 86400.0 if policy.max_age_days > 0 else None,
        max_bytes=policy.max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=max(1, policy.replicas),
    )


def _unlimited_if_none(value: float | int | None) -> float:
    """JetStream spells 'no limit' as 0/None (age) or -1 (bytes): order them as infinity."""
    if value is None or value <= 0:
        return float("inf")
    return float(value)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What start-up should do to an existing stream: the config to send (None: leave it) and why."""

    update: StreamConfig | None
    changes: list[str]
    drift: list[str]


def reconcile(current: StreamConfig, wanted: StreamConfig) -> Reconciliation:
    """Move ``current`` towards ``wanted`` without lowering anything an operator raised.

    Pure, so the rules are tested without a server: subjects are only added; replicas, age and
    size limits only go up (a value the settings ask for below the stream's is reported as drift
    and kept); everything else of the stream (storage, discard, its other options) is left as
    the server has it.
    """
    changes: list[str] = []
    drift: list[str] = []
    new = replace(current)

    have = list(current.subjects or [])
    missing = [s for s in wanted.subjects or [] if s not in have]
    if missing:
        new.subjects = have + missing
        changes.append(f"subjects += {missing}")

    cur_r, want_r = current.num_replicas or 1, wanted.num_replicas or 1
    if want_r > cur_r:
        new.num_replicas = want_r
        changes.append(f"replicas {cur_r} -> {want_r}")
    elif want_r < cur_r:
        drift.append(f"replicas: the stream has {cur_r}, the settings ask {want_r}; kept {cur_r}")

    cur_age, want_age = _unlimited_if_none(current.max_age), _unlimited_if_none(wanted.max_age)
    if want_age > cur_age:
        new.max_age = wanted.max_age
        changes.append(f"max_age {current.max_age} -> {wanted.max_age} s")
    elif want_age < cur_age:
        drift.append(
            f"max_age: the stream keeps {current.max_age or 'forever'} s, the settings ask {wanted.max_age} s; kept"
        )

    cur_bytes, want_bytes = _unlimited_if_none(current.max_bytes), _unlimited_if_none(wanted.max_bytes)
    if want_bytes > cur_bytes:
        new.max_bytes = wanted.max_bytes
        changes.append(f"max_bytes {current.max_bytes} -> {wanted.max_bytes}")
    elif want_bytes < cur_bytes:
        drift.append(f"max_bytes: the stream keeps {current.max_bytes}, the settings ask {wanted.max_bytes}; kept")

    return Reconciliation(new if changes else None, changes, drift)


async def ensure_stream(js: JetStreamContext, policy: StreamPolicy = StreamPolicy(), *, manage: bool = True) -> None:
    """Create the stream, or reconcile an existing one upwards; with ``manage=False`` only look.

    A read-only process (``replay``) passes ``manage=False``: it reports drift but never
    creates or edits the stream, so inspecting a system cannot change it.
    """
    wanted = stream_config(policy)
    try:
        info = await js.stream_info(STREAM)
    except nats.js.errors.NotFoundError:
        if not manage:
            log.warning("the event stream does not exist yet; nothing to read", stream=STREAM)
            return
        await js.add_stream(wanted)
        log.info("event stream created", stream=STREAM, replicas=wanted.num_replicas, max_age_s=wanted.max_age)
        return
    plan = reconcile(info.config, wanted)
    for line in plan.drift:
        log.warning("event stream differs from the settings", stream=STREAM, drift=line)
    if plan.update is None:
        return
    if not manage:
        log.warning("read-only: the event stream was left as it is", stream=STREAM, would_change=plan.changes)
        return
    await js.update_stream(plan.update)
    for line in plan.changes:
        log.info("event stream changed", stream=STREAM, change=line)
