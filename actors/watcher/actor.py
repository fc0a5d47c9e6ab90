"""The watcher actor: incoming subband files -> observation groups -> Measurement Sets.

What it does, in the order the data flows:

1. **Watch** the incoming directory (:mod:`actors.watcher.inbox`: inotify wakes a scan, a periodic
   scan is the source of truth). A file is opened only once it has settled (same size and mtime at
   two scans, or unmodified for ``--watch-settle``).
2. **Check** it (:func:`actors.watcher.checks.check_subband_file`, in a thread). A bad file gets a
   ``dsa.subband.rejected`` and an ``ops.alert.raised`` (system_error) and stays where it is; it is
   judged again only if it changes. A file that is not a whole UVH5 file yet is retried at every
   scan and raises its alert once it has been stable and incomplete for ``--incomplete-alert``.
3. **Group** it (:mod:`actors.watcher.grouping`, pure). Every change of a group is published as
   ``dsa.group.updated`` carrying the whole row (state, files, missing subbands, calibrator,
   first_seen), so the edge's projection and this actor's own state are one upsert per event.
   Duplicate and late subbands are rejected with an alert; a group still collecting after
   ``--group-timeout`` fails with an alert or is converted with its missing subbands flagged
   (``--group-timeout-policy``).
4. **Convert** a pending group into one MS (:func:`actors.watcher.convert.convert_group` in the
   process pool) at ``<output_dir>/<group_id>.ms``; then ``dsa.ms.written`` (stage ``converted``)
   and the group ``completed`` (or ``failed`` with an alert).

Why conversion is driven by a consumed event. The watcher publishes ``dsa.group.updated``
(state ``pending``) and converts only when that event comes back through its own durable consumer,
acknowledging it after the ``completed``/``failed`` row is stored. A crash anywhere in between
leaves the message unacknowledged, so JetStream redelivers it (to this role's next instance); the
handler converts whatever is not yet ``completed`` or ``failed``, including a group its dead
predecessor left ``in_progress``. The MS path is deterministic and written beside its final name,
then swapped in, so a second conversion replaces the first and never leaves half an MS. Doing it
twice has the effect of doing it once.

State comes from events. At start the watcher replays its own ``dsa.group.updated`` (the last row
of each group wins), its ``dsa.subband.rejected`` (so a judged file is not judged again) and the
latest ``dsa.streaming.configured``; only then does it scan, so files already present are picked
up and a file already grouped is queued once. One watcher is active per incoming directory: the
instances started on one directory (on any host) share a lease (``actors/leased.py``) keyed on the
configured directory's resolved path; the others wait as ``standby`` and rebuild their state from
the stream when they take over.

Streaming control: ``cmd.watcher.start|stop|restart`` switch ingestion on and off (the scan stops,
and a pending conversion waits) and publish ``dsa.streaming.state``. The configuration
(input_dir, output_dir, batch_size, poll_interval) is the latest ``dsa.streaming.configured``,
which the edge publishes for ``POST /api/streaming/config``; the watcher consumes it and applies it
at once (a new input directory is watched from the next scan on).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgspec
import psutil
from nats.aio.subscription import Subscription

from actors.leased import LeasedActor
from actors.runtime import shutdown_pool
from actors.watcher import commands
from actors.watcher.checks import Expectations, SubbandFileError, SubbandInfo, check_subband_file, parse_filename
from actors.watcher.grouping import (
    Decision,
    DuplicateSubband,
    Group,
    GroupCompleted,
    GroupFailed,
    GroupFailedEvent,
    GroupingConfig,
    GroupPending,
    GroupStarted,
    GroupState,
    LateSubband,
    Rejected,
    SubbandSeen,
    Tick,
    TimeoutPolicy,
    WatcherState,
    apply,
    initial_state,
)
from actors.watcher.inbox import FileLook, Inbox, Wakeup
from bus.lease import lease_key
from bus.replay import replay
from bus.request import serve
from schemas.base import Event, iso
from schemas.dsa import (
    GroupUpdated,
    MeasurementSetWritten,
    StreamingConfigured,
    StreamingStateChanged,
    SubbandRejected,
)
from schemas.events import decode
from schemas.ops import ActorHeartbeat, AlertRaised

#: rejections that hold for one version of a file (judged again only when it changes)
FINAL_REJECTIONS = frozenset({"not_hdf5", "not_uvh5", "wrong_shape", "bad_name"})
#: rejections that keep the file out of grouping for good (the grouping state records them)
GROUPING_REJECTIONS = frozenset({"duplicate", "late"})
#: reasons that may clear by themselves (the file is still being written)
PATIENT = frozenset({"incomplete", "empty"})


@dataclass(frozen=True)
class StreamingConfig:
    input_dir: str
    output_dir: str
    batch_size: int
    poll_interval: float


def row_key(g: Group) -> tuple[Any, ...]:
    """What a ``dsa.group.updated`` row says; a new row is published when this changes."""
    return (g.state, tuple(sorted(g.files.items())), g.missing, g.reason, g.calibrator, g.ms_path)


def group_from_row(e: GroupUpdated) -> Group:
    files: dict[int, str] = {}
    for path in e.files:
        with contextlib.suppress(SubbandFileError):
            files[parse_filename(path)[2]] = path
    at = e.time.timestamp()
    anchor = datetime.strptime(e.group_id[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return Group(
        group_id=e.group_id,
        anchor_unix=anchor,
        state=GroupState(e.state),
        files=MappingProxyType(files),
        first_seen=e.first_seen or at,
        last_seen=at,
        calibrator=e.calibrator or None,
        missing=tuple(e.missing_subbands),
        reason=e.reason,
        ms_path=e.ms_path,
        updated_at=at,
    )


class WatcherActor(LeasedActor):
    role = "watcher"
    consumes = (GroupUpdated, StreamingConfigured)
    publishes = (GroupUpdated, SubbandRejected, MeasurementSetWritten, AlertRaised, StreamingStateChanged)
    #: two conversions at once on a 2-core machine; the other deliveries are quick no-ops
    concurrency = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        try:
            policy = TimeoutPolicy(s.group_timeout_policy)
        except ValueError:
            raise SystemExit(
                f"--group-timeout-policy must be one of {', '.join(p.value for p in TimeoutPolicy)}, "
                f"not {s.group_timeout_policy!r}"
            ) from None
        self.grouping = GroupingConfig(
            timeout_s=s.group_timeout_s, timeout_policy=policy, late_after_s=s.late_subband_s
        )
        self.state: WatcherState = initial_state(self.grouping)
        self.expect = Expectations()
        self.config = StreamingConfig(str(s.incoming), str(s.ms_dir), s.watch_batch_size, s.watch_poll_s)
        self.config_time: datetime | None = None
        #: the clock of grouping decisions (timeouts, late subbands); tests may move it
        self.clock: Any = time.time
        self.ingest_started_at: datetime | None = None
        self._lock = asyncio.Lock()  # one state transition (apply, publish, commit) at a time
        self._scan_lock = asyncio.Lock()  # held for a whole scan; ``stop`` waits for it
        self._running = asyncio.Event()
        self._wake = asyncio.Event()
        self._rejected: dict[str, tuple[int, int]] = {}
        self._incomplete: dict[str, tuple[tuple[int, int], float, bool]] = {}
        self._converting: set[str] = set()
        self._cal_cache: dict[tuple[float, float, float | None], str | None] = {}
        self._dir_present: bool | None = None
        self._dir_inode = 0
        self._subs: list[Subscription] = []
        self._proc = psutil.Process()
        self.inbox = Inbox(Path(self.config.input_dir), s.watch_settle_s)
        self.wakeup = Wakeup(Path(self.config.input_dir), self._wake)

    # -- lifecycle -------------------------------------------------------------------------------
    def lease_name(self) -> str:
        """One active watcher per configured incoming directory, whichever host it runs on.

        Keyed on the start-up setting (``--incoming-dir``) resolved, so two hosts mounting one
        shared path at the same place exclude each other. A later ``POST /api/streaming/config``
        moves what the active watcher scans, not its lease.
        """
        path = str(Path(self.settings.incoming).resolve())
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        return lease_key("watcher", Path(path).name or "root", digest)

    async def setup(self) -> None:
        stored = await self._rebuild()
        await self._startup_config(stored)
        for subject, fn in (
            (commands.START, self._cmd_start),
            (commands.STOP, self._cmd_stop),
            (commands.RESTART, self._cmd_restart),
        ):
            self._subs.append(await serve(self.bus.nc, subject, commands.QUEUE, commands.StreamingCommand, fn))
        await self._start_ingest()
        await self._publish_state("actor_started")
        self.spawn(self._ingest_loop(), "ingest")
        self.log.info(
            "watching",
            incoming=self.config.input_dir,
            output=self.config.output_dir,
            groups=len(self.state.groups),
            seen=len(self.state.seen_paths),
        )

    async def teardown(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self.wakeup.stop()
        with contextlib.suppress(Exception):
            self._running.clear()
            await asyncio.wait_for(self._publish_state("actor_stopped"), 2.0)

    def heartbeat(self) -> ActorHeartbeat:
        hb = super().heartbeat()
        try:
            cpu = self._proc.cpu_percent(None)
            mem = self._proc.memory_info().rss / 1e6
        except psutil.Error:
            return hb
        return msgspec.structs.replace(hb, cpu_percent=round(cpu, 1), memory_mb=round(mem, 1))

    # -- state from events -------------------------------------------------------------------------
    async def _replay(self, subject: str) -> list[Event]:
        out: list[Event] = []
        async with contextlib.aclosing(replay(self.bus.js, subject)) as messages:
            async for m in messages:
                try:
                    out.append(decode(m.data))
                except (msgspec.ValidationError, msgspec.DecodeError):
                    continue
        return out

    async def _rebuild(self) -> StreamingConfigured | None:
        """Own rows and rejections -> the grouping state; returns the latest stored configuration."""
        # three filtered replays at once (each costs a short wait when its subject is empty)
        row_events, rejected_events, config_events = await asyncio.gather(
            self._replay(GroupUpdated.subject()),
            self._replay(SubbandRejected.subject()),
            self._replay(StreamingConfigured.subject()),
        )
        rows: dict[str, GroupUpdated] = {}
        for e in row_events:
            if isinstance(e, GroupUpdated) and e.producer == self.role:
                rows[e.group_id] = e
        seen: set[str] = set()
        for e in rejected_events:
            if not isinstance(e, SubbandRejected) or e.producer != self.role:
                continue
            if e.code in GROUPING_REJECTIONS:
                seen.add(e.path)
            elif e.code in FINAL_REJECTIONS:
                self._rejected[e.path] = (e.size_bytes, e.mtime_ns)
        stored: StreamingConfigured | None = None
        for e in config_events:
            if isinstance(e, StreamingConfigured):
                stored = e
        groups = {gid: group_from_row(r) for gid, r in rows.items()}
        for g in groups.values():
            seen.update(g.files.values())
        self.state = WatcherState(config=self.grouping, groups=MappingProxyType(groups), seen_paths=frozenset(seen))
        counts = self.state.counts()
        self.log.info("state rebuilt from the stream", **counts, rejected=len(self._rejected))
        return stored

    async def _startup_config(self, stored: StreamingConfigured | None) -> None:
        """The stored configuration, unless this process was started with explicit directories."""
        s = self.settings
        if stored is None:
            cfg = self.config
        else:
            cfg = StreamingConfig(stored.input_dir, stored.output_dir, stored.batch_size, stored.poll_interval)
            if s.incoming_dir is not None:
                cfg = replace(cfg, input_dir=str(s.incoming_dir))
            if s.output_dir is not None:
                cfg = replace(cfg, output_dir=str(s.output_dir))
        if stored is None or cfg != StreamingConfig(
            stored.input_dir, stored.output_dir, stored.batch_size, stored.poll_interval
        ):
            event = await self.publish(
                StreamingConfigured(
                    input_dir=cfg.input_dir,
                    output_dir=cfg.output_dir,
                    batch_size=cfg.batch_size,
                    poll_interval=cfg.poll_interval,
                    source="startup",
                )
            )
            self.config_time = event.time
        elif stored is not None:
            self.config_time = stored.time
        self._use_config(cfg)

    def _use_config(self, cfg: StreamingConfig) -> None:
        moved = cfg.input_dir != self.config.input_dir
        self.config = cfg
        if moved:
            self.inbox = Inbox(Path(cfg.input_dir), self.settings.watch_settle_s)
            self._dir_present = None
            self._dir_inode = 0
        with contextlib.suppress(OSError):
            Path(cfg.input_dir).mkdir(parents=True, exist_ok=True)

    # -- publishing state changes ------------------------------------------------------------------
    def _row(self, g: Group) -> GroupUpdated:
        return GroupUpdated(
            group_id=g.group_id,
            state=g.state.value,
            subbands_present=g.subbands_present,
            expected_subbands=self.grouping.expected_subbands,
            has_calibrator=g.has_calibrator,
            files=list(g.ordered_files()),
            missing_subbands=list(g.missing),
            reason=g.reason,
            first_seen=g.first_seen,
            calibrator=g.calibrator or "",
            ms_path=g.ms_path,
            correlation_id=g.group_id,
        )

    async def _advance(self, event: Any) -> list[Decision]:
        """Apply one grouping event; publish every changed row and the decisions' facts, then commit.

        Publishing before committing means a failed publish leaves the state as it was: the file
        is looked at again at the next scan, the conversion is retried by redelivery.
        """
        async with self._lock:
            new, decisions = apply(self.state, event)
            for gid, g in new.groups.items():
                old = self.state.groups.get(gid)
                if old is None or row_key(old) != row_key(g):
                    await self.publish(self._row(g))
                    self.log.info("group updated", group_id=gid, state=g.state.value, subbands=g.subbands_present)
            for d in decisions:
                await self._on_decision(d)
            self.state = new
        return decisions

    async def _alert(self, message: str, key: str, severity: str = "warning", **details: str) -> None:
        await self.publish(
            AlertRaised(
                alert_type="system_error",
                severity=severity,
                message=message,
                dedup_key=f"watcher:{key}",
                details={k: str(v) for k, v in details.items()},
                correlation_id=details.get("group_id", ""),
            )
        )

    async def _on_decision(self, d: Decision) -> None:
        if isinstance(d, DuplicateSubband):
            msg = f"duplicate subband sb{d.subband:02d} for group {d.group_id}: {d.path} (already have {d.existing_path}); not queued"
            self.log.warning("duplicate subband", path=d.path, group_id=d.group_id, existing=d.existing_path)
            await self._reject(d.path, msg, "duplicate", group_id=d.group_id, subband=d.subband)
        elif isinstance(d, LateSubband):
            hours = d.delay_s / 3600.0
            if d.group_state == GroupState.COLLECTING.value:
                self.log.warning("late subband accepted", path=d.path, group_id=d.group_id, delay_s=round(d.delay_s))
                await self._alert(
                    f"subband sb{d.subband:02d} of group {d.group_id} arrived {hours:.1f} h after the group's first file",
                    f"late:{d.path}",
                    path=d.path,
                    group_id=d.group_id,
                )
                return
            msg = (
                f"late subband sb{d.subband:02d} for group {d.group_id}, which is already {d.group_state}: "
                f"{d.path} arrived {hours:.2f} h after the group's first file; not queued"
            )
            self.log.warning("late subband rejected", path=d.path, group_id=d.group_id, state=d.group_state)
            await self._reject(d.path, msg, "late", group_id=d.group_id, subband=d.subband)
        elif isinstance(d, GroupFailed):
            self.log.warning("group failed", group_id=d.group_id, reason=d.reason)
            await self._alert(f"group {d.group_id} failed: {d.reason}", f"group:{d.group_id}", group_id=d.group_id)
        elif isinstance(d, GroupPending) and d.missing:
            missing = ", ".join(f"sb{s:02d}" for s in d.missing)
            self.log.warning("group timed out; converting with flagged subbands", group_id=d.group_id, missing=missing)
            await self._alert(
                f"group {d.group_id} timed out with {len(d.subbands)}/{self.grouping.expected_subbands} subbands; "
                f"converting with {missing} flagged",
                f"partial:{d.group_id}",
                group_id=d.group_id,
            )
        elif isinstance(d, Rejected):
            self.log.warning("grouping rejected an event", reason=d.reason)

    async def _reject(
        self,
        path: str,
        message: str,
        code: str,
        *,
        group_id: str = "",
        subband: int = -1,
        look: FileLook | None = None,
        severity: str = "warning",
    ) -> None:
        await self.publish(
            SubbandRejected(
                path=path,
                reason=message,
                group_id=group_id,
                code=code,
                subband=subband,
                size_bytes=look.size if look else -1,
                mtime_ns=look.mtime_ns if look else 0,
                correlation_id=group_id,
            )
        )
        await self._alert(message, f"{code}:{path}", severity, path=path, code=code, group_id=group_id)

    async def _publish_state(self, action: str) -> int:
        running = self._running.is_set()
        event = StreamingStateChanged(
            running=running,
            action=action,
            instance=self.instance,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=iso(self.ingest_started_at) if running and self.ingest_started_at else "",
            producer=self.role,
        )
        ack = await self.bus.publish(event)
        return int(ack.seq)

    # -- ingestion ---------------------------------------------------------------------------------
    async def _start_ingest(self) -> None:
        if self._running.is_set():
            return
        self.ingest_started_at = datetime.now(UTC)
        self._running.set()
        await self.wakeup.rearm(Path(self.config.input_dir))
        self._wake.set()

    async def _stop_ingest(self) -> None:
        self._running.clear()
        async with self._scan_lock:  # the scan in progress, if any, finishes first
            pass
        await self.wakeup.stop()

    async def _ingest_loop(self) -> None:
        while True:
            await self._running.wait()
            unsettled = 0
            try:
                async with self._scan_lock:
                    if self._running.is_set():
                        unsettled = await self._scan_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("scan failed; retrying at the next one")
            wait = self.config.poll_interval if not unsettled else min(self.config.poll_interval, 1.0)
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def _scan_once(self) -> int:
        directory = self.config.input_dir
        res = await self.run_thread(self.inbox.scan)
        if not res.present:
            if self._dir_present is not False:
                self.log.error("incoming directory is missing", directory=directory)
                await self._alert(
                    f"incoming directory {directory} is missing; waiting for it to come back",
                    f"dir:{directory}",
                    "critical",
                    path=directory,
                )
                self._dir_present = False
            await self._advance(Tick(self.clock()))
            return 0
        if self._dir_present is False:
            self.log.warning("incoming directory is back", directory=directory)
            await self._alert(f"incoming directory {directory} is back", f"dir:{directory}", "info", path=directory)
        if self._dir_present is False or (self._dir_inode and res.inode != self._dir_inode):
            await self.wakeup.rearm(Path(directory))  # the old watch was on the vanished directory
        self._dir_present = True
        self._dir_inode = res.inode
        checked = 0
        for look in res.settled:
            if not self._running.is_set():
                break
            if look.path in self.state.seen_paths or self._rejected.get(look.path) == look.signature:
                continue
            if checked >= self.config.batch_size:
                self._wake.set()  # more to do: scan again at once
                break
            checked += 1
            try:
                await self._take(look)
            except Exception:  # one unreadable file (permissions, a bus hiccup) must not block the rest
                self.log.exception("could not take a file; will look again", path=look.path)
        await self._advance(Tick(self.clock()))
        return res.unsettled

    def _calibrator(self, info: SubbandInfo) -> str | None:
        key = (round(info.start_jd, 5), round(info.end_jd, 5), info.dec_deg)
        if key not in self._cal_cache:
            try:
                from actors.watcher.checks import tile_calibrator

                self._cal_cache[key] = tile_calibrator(info)
            except Exception as exc:  # no calibrator is better than no group
                self.log.warning("calibrator lookup failed", path=str(info.path), error=repr(exc))
                self._cal_cache[key] = None
        return self._cal_cache[key]

    async def _take(self, look: FileLook) -> None:
        try:
            info = await self.run_thread(check_subband_file, look.path, self.expect)
        except SubbandFileError as exc:
            await self._bad_file(look, exc)
            return
        self._incomplete.pop(look.path, None)
        calibrator = await self.run_thread(self._calibrator, info)
        await self._advance(
            SubbandSeen(
                path=look.path,
                timestamp=info.timestamp,
                unix_time=info.unix_time,
                subband=info.subband,
                at=self.clock(),
                calibrator=calibrator,
            )
        )

    async def _bad_file(self, look: FileLook, exc: SubbandFileError) -> None:
        if exc.reason == "missing":
            return
        if exc.reason in PATIENT:
            sig, since, alerted = self._incomplete.get(look.path, (None, 0.0, False))
            now = time.monotonic()
            if sig != look.signature:
                self.log.info("file not complete yet; will look again", path=look.path, reason=str(exc))
                self._incomplete[look.path] = (look.signature, now, False)
                return
            if not alerted and now - since >= self.settings.incomplete_alert_s:
                self.log.warning("file still incomplete", path=look.path, reason=str(exc))
                await self._reject(
                    look.path,
                    f"{exc} (unchanged for {now - since:.0f} s; kept, and accepted if it is completed)",
                    exc.reason,
                    look=look,
                )
                self._incomplete[look.path] = (look.signature, since, True)
            return
        self.log.warning("file rejected", path=look.path, reason=exc.reason, message=str(exc))
        subband = -1
        with contextlib.suppress(SubbandFileError):
            subband = parse_filename(look.path)[2]
        await self._reject(look.path, f"rejected {exc}; file left in place", exc.reason, subband=subband, look=look)
        self._rejected[look.path] = look.signature

    # -- consumed events: conversion and configuration --------------------------------------------
    async def handle(self, event: Event) -> None:
        if isinstance(event, StreamingConfigured):
            await self._configure(event)
        elif isinstance(event, GroupUpdated) and event.state == GroupState.PENDING.value:
            await self._convert(event.group_id)

    async def _configure(self, e: StreamingConfigured) -> None:
        if self.config_time is not None and e.time <= self.config_time:
            return  # older than the one in force (a first delivery of history)
        cfg = StreamingConfig(e.input_dir, e.output_dir, e.batch_size, e.poll_interval)
        async with self._scan_lock:
            moved = cfg.input_dir != self.config.input_dir
            self._use_config(cfg)
            self.config_time = e.time
            if moved and self._running.is_set():
                await self.wakeup.rearm(Path(cfg.input_dir))
        self._wake.set()
        self.log.info("configuration applied", **{k: str(v) for k, v in cfg.__dict__.items()}, source=e.source)

    async def _convert(self, group_id: str) -> None:
        await self._running.wait()  # stopped: the message waits (kept alive) until started
        # Under the transition lock: our own pending row can come back through the consumer before
        # the transition that published it has committed (it may still be publishing an alert).
        async with self._lock:
            g = self.state.groups.get(group_id)
        if g is None:
            self.log.warning("pending group unknown to this watcher; ignored", group_id=group_id)
            return
        if g.state not in (GroupState.PENDING, GroupState.IN_PROGRESS) or group_id in self._converting:
            return  # done already (a redelivery), or being converted here
        self._converting.add(group_id)
        try:
            await self._advance(GroupStarted(group_id, self.clock()))
            g = self.state.groups[group_id]
            from actors.watcher.convert import convert_group  # heavy (pyuvdata, casacore, numba): when needed

            try:
                info = await self.run_cpu(
                    convert_group,
                    list(g.ordered_files()),
                    self.config.output_dir,
                    missing_ok=bool(g.missing),
                    group_id=group_id,
                    expected_subbands=self.grouping.expected_subbands,
                )
            except BrokenProcessPool:
                shutdown_pool()  # a worker died (memory?): a new pool, and the event comes back
                raise
            except Exception as exc:
                reason = f"conversion failed: {exc}"
                self.log.error("conversion failed", group_id=group_id, error=repr(exc))
                await self._advance(GroupFailedEvent(group_id, self.clock(), reason))
                await self._alert(f"group {group_id} {reason}", f"convert:{group_id}", group_id=group_id)
                return
            await self.publish(
                MeasurementSetWritten(
                    path=str(info.path),
                    group_id=group_id,
                    mid_mjd=info.mid_mjd,
                    field_name=info.field_name,
                    stage="converted",
                    status="ok",
                    has_calibrator=g.has_calibrator or info.has_calibrator,
                    correlation_id=group_id,
                )
            )
            await self._advance(GroupCompleted(group_id, self.clock(), ms_path=str(info.path)))
            self.log.info("group converted", group_id=group_id, ms=str(info.path), seconds=round(info.seconds, 2))
        finally:
            self._converting.discard(group_id)

    # -- commands ----------------------------------------------------------------------------------
    async def _cmd_start(self, cmd: commands.StreamingCommand) -> dict[str, Any]:
        await self._start_ingest()
        seq = await self._publish_state("started")
        self.log.info("ingestion started", operator=cmd.operator)
        return {
            "status": "started",
            "pid": os.getpid(),
            "message": "Streaming service started successfully",
            "seq": seq,
        }

    async def _cmd_stop(self, cmd: commands.StreamingCommand) -> dict[str, Any]:
        await self._stop_ingest()
        seq = await self._publish_state("stopped")
        self.log.info("ingestion stopped", operator=cmd.operator)
        return {"status": "stopped", "message": "Streaming service stopped successfully", "seq": seq}

    async def _cmd_restart(self, cmd: commands.StreamingCommand) -> dict[str, Any]:
        await self._stop_ingest()
        self.inbox = Inbox(Path(self.config.input_dir), self.settings.watch_settle_s)
        self._dir_present = None
        await self._start_ingest()
        seq = await self._publish_state("restarted")
        self.log.info("ingestion restarted", operator=cmd.operator)
        return {
            "status": "restarted",
            "pid": os.getpid(),
            "message": "Streaming service restarted successfully",
            "seq": seq,
        }
