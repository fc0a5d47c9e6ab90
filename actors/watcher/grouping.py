"""The observation-group state machine of the watcher: pure, replayable, no I/O.

Subband files are gathered into *groups* (one ~5-minute tile) by the timestamp in their names,
with a tolerance (±60 s by default) around the group's anchor time, which is the timestamp of the
group's first file. A group's life:

    collecting ──all subbands──▶ pending ──GroupStarted──▶ in_progress ──▶ completed
        │                          ▲  │                                 └─▶ failed
        └──timeout──▶ failed       │  └──GroupFailedEvent──▶ failed ──GroupRetried──▶ pending
        └──timeout (policy "process_partial")──▶ pending, with the missing subbands flagged

:func:`apply` folds one event into the state and returns the new state and the *decisions* the
actor should publish (:class:`GroupPending`, :class:`GroupFailed`, :class:`DuplicateSubband`,
:class:`LateSubband`, :class:`Rejected`). Decisions are themselves appliable events, so the
actor can rebuild its state by replaying whatever it published (:func:`rebuild`); applying a
decision whose effect is already in the state changes nothing. Time never comes from a clock:
every event carries ``at`` (seconds since the epoch) and timeouts advance with :class:`Tick`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from astro.instrument import GROUP_TOLERANCE_S, N_SUBBANDS


class GroupState(StrEnum):
    COLLECTING = "collecting"
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


CLOSED_STATES = frozenset({GroupState.PENDING, GroupState.IN_PROGRESS, GroupState.COMPLETED, GroupState.FAILED})


class TimeoutPolicy(StrEnum):
    FAIL = "fail"  # a group still collecting at the timeout fails, with an alert
    PROCESS_PARTIAL = "process_partial"  # it is processed with its missing subbands flagged


@dataclass(frozen=True)
class GroupingConfig:
    expected_subbands: int = N_SUBBANDS
    tolerance_s: float = GROUP_TOLERANCE_S
    timeout_s: float = 900.0  # how long a group may stay collecting (from its first file)
    timeout_policy: TimeoutPolicy = TimeoutPolicy.FAIL
    min_subbands_partial: int = 1  # fewer present than this at the timeout: fail even if partial
    late_after_s: float = 3600.0  # a subband this long after its group's first file is "late"


# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class SubbandSeen:
    """A checked, good subband file (from :func:`actors.watcher.checks.check_subband_file`)."""

    path: str
    timestamp: str  # from the name, 'YYYY-MM-DDTHH:MM:SS'
    unix_time: float  # the same in seconds since the epoch
    subband: int
    at: float  # when the watcher saw it
    calibrator: str | None = None  # a calibrator transiting this tile, if any


@dataclass(frozen=True)
class Tick:
    """Time passes: collecting groups may time out."""

    at: float


@dataclass(frozen=True)
class GroupStarted:
    group_id: str
    at: float


@dataclass(frozen=True)
class GroupCompleted:
    group_id: str
    at: float
    ms_path: str = ""


@dataclass(frozen=True)
class GroupFailedEvent:
    """Processing of a group failed (conversion error, bad data...)."""

    group_id: str
    at: float
    reason: str


@dataclass(frozen=True)
class GroupRetried:
    """An operator (or a policy) sends a failed group back to pending."""

    group_id: str
    at: float


# --------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class GroupPending:
    """The group is ready for conversion (``missing``: subbands to flag, when partial)."""

    group_id: str
    at: float
    files: tuple[str, ...]  # ordered by subband
    subbands: tuple[int, ...]
    missing: tuple[int, ...] = ()
    has_calibrator: bool = False
    calibrator: str | None = None


@dataclass(frozen=True)
class GroupFailed:
    """The group failed before processing (timeout under the ``fail`` policy)."""

    group_id: str
    at: float
    reason: str
    missing: tuple[int, ...] = ()


@dataclass(frozen=True)
class DuplicateSubband:
    """A second, different file for a subband the group already has (not queued)."""

    group_id: str
    at: float
    subband: int
    path: str
    existing_path: str


@dataclass(frozen=True)
class LateSubband:
    """A subband for a group that is no longer collecting (not queued)."""

    group_id: str
    at: float
    subband: int
    path: str
    delay_s: float  # since the group's first file was seen
    group_state: str


@dataclass(frozen=True)
class Rejected:
    """An event that does not fit the state (unknown group, impossible transition)."""

    event: object
    reason: str


Event = SubbandSeen | Tick | GroupStarted | GroupCompleted | GroupFailedEvent | GroupRetried | GroupPending | GroupFailed | DuplicateSubband | LateSubband
Decision = GroupPending | GroupFailed | DuplicateSubband | LateSubband | Rejected


# ------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class Group:
    group_id: str
    anchor_unix: float  # the timestamp of the group's first file
    state: GroupState
    files: Mapping[int, str]  # subband -> path
    first_seen: float
    last_seen: float
    calibrator: str | None = None
    missing: tuple[int, ...] = ()  # flagged when processed partially
    reason: str = ""
    ms_path: str = ""
    updated_at: float = 0.0

    @property
    def has_calibrator(self) -> bool:
        return self.calibrator is not None

    @property
    def subbands_present(self) -> int:
        return len(self.files)

    def ordered_files(self) -> tuple[str, ...]:
        return tuple(self.files[k] for k in sorted(self.files))


@dataclass(frozen=True)
class WatcherState:
    config: GroupingConfig = field(default_factory=GroupingConfig)
    groups: Mapping[str, Group] = field(default_factory=lambda: MappingProxyType({}))
    seen_paths: frozenset[str] = frozenset()

    def counts(self) -> dict[str, int]:
        """Queue statistics as seed 000's ``GET /status`` shows them."""
        out = {s.value: 0 for s in GroupState}
        for g in self.groups.values():
            out[g.state.value] += 1
        out["total"] = len(self.groups)
        return out

    def recent(self, n: int = 20) -> list[Group]:
        """The ``n`` most recent groups by anchor time, newest first."""
        return sorted(self.groups.values(), key=lambda g: -g.anchor_unix)[:n]


def _iso_to_unix(ts: str) -> float:
    return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def initial_state(config: GroupingConfig | None = None) -> WatcherState:
    return WatcherState(config=config or GroupingConfig())


def _with_group(state: WatcherState, g: Group, seen: Iterable[str] = ()) -> WatcherState:
    groups = dict(state.groups)
    groups[g.group_id] = g
    return replace(state, groups=MappingProxyType(groups), seen_paths=state.seen_paths | frozenset(seen))


def find_group(state: WatcherState, unix_time: float) -> Group | None:
    """The group whose anchor is nearest ``unix_time`` within the tolerance, if any."""
    best: Group | None = None
    for g in state.groups.values():
        d = abs(g.anchor_unix - unix_time)
        if d <= state.config.tolerance_s and (best is None or d < abs(best.anchor_unix - unix_time)):
            best = g
    return best


def _pending(g: Group, at: float, cfg: GroupingConfig) -> GroupPending:
    missing = tuple(s for s in range(cfg.expected_subbands) if s not in g.files)
    return GroupPending(
        group_id=g.group_id,
        at=at,
        files=g.ordered_files(),
        subbands=tuple(sorted(g.files)),
        missing=missing,
        has_calibrator=g.has_calibrator,
        calibrator=g.calibrator,
    )


# ------------------------------------------------------------------------------------ apply


def apply(state: WatcherState, event: Event) -> tuple[WatcherState, list[Decision]]:
    """Fold one event into the state; returns the new state and the decisions to publish."""
    if isinstance(event, SubbandSeen):
        return _on_subband(state, event)
    if isinstance(event, Tick):
        return _on_tick(state, event.at)
    if isinstance(event, GroupPending):
        return _on_pending_fact(state, event)
    if isinstance(event, GroupFailed):
        return _set_state(state, event.group_id, GroupState.FAILED, event.at, event, reason=event.reason,
                          allowed={GroupState.COLLECTING, GroupState.PENDING, GroupState.FAILED})
    if isinstance(event, GroupStarted):
        return _set_state(state, event.group_id, GroupState.IN_PROGRESS, event.at, event,
                          allowed={GroupState.PENDING, GroupState.IN_PROGRESS})
    if isinstance(event, GroupCompleted):
        return _set_state(state, event.group_id, GroupState.COMPLETED, event.at, event, ms_path=event.ms_path,
                          allowed={GroupState.PENDING, GroupState.IN_PROGRESS, GroupState.COMPLETED})
    if isinstance(event, GroupFailedEvent):
        return _set_state(state, event.group_id, GroupState.FAILED, event.at, event, reason=event.reason,
                          allowed={GroupState.PENDING, GroupState.IN_PROGRESS, GroupState.FAILED})
    if isinstance(event, GroupRetried):
        st, dec = _set_state(state, event.group_id, GroupState.PENDING, event.at, event,
                             allowed={GroupState.FAILED, GroupState.PENDING})
        g = st.groups.get(event.group_id)
        if g is not None and not dec:
            return st, [_pending(g, event.at, st.config)]
        return st, dec
    if isinstance(event, DuplicateSubband | LateSubband):
        # facts the state already reflects (the file was recorded as seen, nothing queued)
        return replace(state, seen_paths=state.seen_paths | {event.path}), []
    return state, [Rejected(event, f"unknown event type {type(event).__name__}")]


def rebuild(events: Iterable[Event], config: GroupingConfig | None = None) -> WatcherState:
    """The state after replaying ``events`` in order (their decisions are discarded)."""
    st = initial_state(config)
    for ev in events:
        st, _ = apply(st, ev)
    return st


def outstanding(state: WatcherState) -> list[GroupPending]:
    """Pending groups (to re-queue after a restart; conversion is idempotent)."""
    return [_pending(g, g.updated_at, state.config) for g in state.groups.values() if g.state is GroupState.PENDING]


def _on_subband(state: WatcherState, ev: SubbandSeen) -> tuple[WatcherState, list[Decision]]:
    cfg = state.config
    if ev.path in state.seen_paths:
        return state, []  # a file seen twice is queued once
    if not 0 <= ev.subband < cfg.expected_subbands:
        return replace(state, seen_paths=state.seen_paths | {ev.path}), [
            Rejected(ev, f"subband {ev.subband} outside 0..{cfg.expected_subbands - 1}")
        ]
    g = find_group(state, ev.unix_time)
    if g is None:
        g = Group(
            group_id=ev.timestamp,
            anchor_unix=ev.unix_time,
            state=GroupState.COLLECTING,
            files=MappingProxyType({ev.subband: ev.path}),
            first_seen=ev.at,
            last_seen=ev.at,
            calibrator=ev.calibrator,
            updated_at=ev.at,
        )
        return _maybe_complete(_with_group(state, g, [ev.path]), g, ev.at)
    if ev.subband in g.files:
        st = replace(state, seen_paths=state.seen_paths | {ev.path})
        return st, [DuplicateSubband(g.group_id, ev.at, ev.subband, ev.path, g.files[ev.subband])]
    if g.state is not GroupState.COLLECTING:
        st = replace(state, seen_paths=state.seen_paths | {ev.path})
        return st, [LateSubband(g.group_id, ev.at, ev.subband, ev.path, ev.at - g.first_seen, g.state.value)]
    files = dict(g.files)
    files[ev.subband] = ev.path
    g2 = replace(
        g,
        files=MappingProxyType(files),
        last_seen=ev.at,
        calibrator=g.calibrator or ev.calibrator,
        updated_at=ev.at,
    )
    decisions: list[Decision] = []
    if ev.at - g.first_seen >= cfg.late_after_s:
        # still collecting, but this one came very late: accept it and say so
        decisions.append(LateSubband(g.group_id, ev.at, ev.subband, ev.path, ev.at - g.first_seen, g.state.value))
    st, more = _maybe_complete(_with_group(state, g2, [ev.path]), g2, ev.at)
    return st, decisions + more


def _maybe_complete(state: WatcherState, g: Group, at: float) -> tuple[WatcherState, list[Decision]]:
    if g.state is GroupState.COLLECTING and len(g.files) >= state.config.expected_subbands:
        g2 = replace(g, state=GroupState.PENDING, updated_at=at, missing=())
        return _with_group(state, g2), [_pending(g2, at, state.config)]
    return state, []


def _on_tick(state: WatcherState, now: float) -> tuple[WatcherState, list[Decision]]:
    cfg = state.config
    decisions: list[Decision] = []
    st = state
    for g in sorted(state.groups.values(), key=lambda x: x.anchor_unix):
        if g.state is not GroupState.COLLECTING or now - g.first_seen < cfg.timeout_s:
            continue
        missing = tuple(s for s in range(cfg.expected_subbands) if s not in g.files)
        waited = now - g.first_seen
        if cfg.timeout_policy is TimeoutPolicy.PROCESS_PARTIAL and len(g.files) >= cfg.min_subbands_partial:
            g2 = replace(g, state=GroupState.PENDING, missing=missing, updated_at=now)
            st = _with_group(st, g2)
            decisions.append(_pending(g2, now, cfg))
        else:
            reason = (
                f"timed out after {waited:.0f} s with {len(g.files)}/{cfg.expected_subbands} subbands "
                f"(missing {', '.join(f'sb{s:02d}' for s in missing)})"
            )
            g2 = replace(g, state=GroupState.FAILED, missing=missing, reason=reason, updated_at=now)
            st = _with_group(st, g2)
            decisions.append(GroupFailed(g.group_id, now, reason, missing))
    return st, decisions


def _on_pending_fact(state: WatcherState, ev: GroupPending) -> tuple[WatcherState, list[Decision]]:
    g = state.groups.get(ev.group_id)
    if g is None:
        # a replayed decision for a group whose files we did not replay: recreate it from the fact
        g = Group(
            group_id=ev.group_id,
            anchor_unix=_iso_to_unix(ev.group_id),
            state=GroupState.PENDING,
            files=MappingProxyType(dict(zip(ev.subbands, ev.files, strict=True))),
            first_seen=ev.at,
            last_seen=ev.at,
            calibrator=ev.calibrator,
            missing=ev.missing,
            updated_at=ev.at,
        )
        return _with_group(state, g, ev.files), []
    if g.state is GroupState.COLLECTING:
        files = dict(g.files)
        files.update(zip(ev.subbands, ev.files, strict=True))
        g2 = replace(g, state=GroupState.PENDING, files=MappingProxyType(files), missing=ev.missing, updated_at=ev.at)
        return _with_group(state, g2, ev.files), []
    if g.state is GroupState.FAILED:
        # a retry (GroupRetried published as pending)
        return _with_group(state, replace(g, state=GroupState.PENDING, reason="", updated_at=ev.at)), []
    return state, []  # already pending or beyond: nothing to do


def _set_state(
    state: WatcherState,
    group_id: str,
    new: GroupState,
    at: float,
    event: object,
    *,
    allowed: set[GroupState],
    reason: str | None = None,
    ms_path: str | None = None,
) -> tuple[WatcherState, list[Decision]]:
    g = state.groups.get(group_id)
    if g is None:
        return state, [Rejected(event, f"unknown group {group_id}")]
    if g.state not in allowed:
        return state, [Rejected(event, f"group {group_id} is {g.state.value}; cannot become {new.value}")]
    if g.state is new and (reason is None or reason == g.reason) and (ms_path is None or ms_path == g.ms_path):
        return state, []  # idempotent replay
    g2 = replace(
        g,
        state=new,
        updated_at=at,
        reason=reason if reason is not None else ("" if new is not GroupState.FAILED else g.reason),
        ms_path=ms_path if ms_path is not None else g.ms_path,
    )
    return _with_group(state, g2), []
