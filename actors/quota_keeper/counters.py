"""The quota counters every keeper shares: one JetStream KV record per user, changed by compare-and-set.

Why KV and not the keeper's SQLite file: a file is one host's, so only one keeper could admit. A KV
bucket (``QUOTA``, replicated with ``--kv-replicas``) is the cluster's, and ``update(key, value,
last=revision)`` refuses a write made from a stale read. Admission is therefore: read the user's
record and its revision, check the tier's limits, write the new record with ``last=revision``; if
another keeper wrote in between, the server answers "wrong last sequence" and we read again. Two
keepers can never both take the last slot, and the count and the job it pays for are one write.

The record holds exactly what admission checks and what a retry must find:

* ``month`` / ``count``: this UTC month's admitted files (a new month starts at 0);
* ``running``: job id -> created_at of the jobs not yet completed or failed (the concurrent limit);
* ``requests``: Idempotency-Key -> job id, so a retry on *any* keeper returns the same job, uncharged;
* ``unstored``: jobs counted whose ``seti.job.submitted`` has not been seen in the stream yet, with
  the event's bytes (a retry stores it; a sweep refunds it if it never arrives);
* ``done``: the latest finished job ids, so a late or redelivered ``seti.job.submitted`` of a job
  already finished is not counted as running again.

Everything here is derived from ``seti.job.*`` events, so a lost bucket is rebuilt from the stream
(``rebuild``) by the first keeper that starts without it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

import logs
from actors.quota_keeper.ledger import LedgerError, month_of
from bus.kv import ensure_kv, list_keys
from bus.replay import replay
from schemas.events import decode
from schemas.seti import JobCompleted, JobFailed, JobSubmitted

log = logs.get("quota_keeper.counters")

BUCKET = "QUOTA"
#: finished job ids remembered per user (a submitted event seen after its job finished is ignored)
DONE_KEPT = 200
#: CAS attempts before giving up (each conflict means another keeper made progress)
MAX_ATTEMPTS = 200
#: how long an Idempotency-Key is remembered (the edge's IDEMPOTENCY_WINDOW_S), for a rebuild
REQUEST_WINDOW_S = 86400
#: seconds after which an email claim with no published user is taken over (its keeper died)
EMAIL_CLAIM_STALE_S = 60
JOB_SUBJECTS = [JobSubmitted.subject(), JobCompleted.subject(), JobFailed.subject()]

T = TypeVar("T")
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class RequestEntry(msgspec.Struct):
    job_id: str
    at: int


class Unstored(msgspec.Struct):
    at: int
    event: bytes


class EmailClaim(msgspec.Struct):
    """``e.<sha256(email)>``: which new user took an email, and when (the address itself is not stored)."""

    user_id: str
    at: int


class UserCounts(msgspec.Struct, kw_only=True):
    month: str = ""
    count: int = 0
    running: dict[str, int] = msgspec.field(default_factory=dict)
    requests: dict[str, RequestEntry] = msgspec.field(default_factory=dict)
    unstored: dict[str, Unstored] = msgspec.field(default_factory=dict)
    done: list[str] = msgspec.field(default_factory=list)

    def used(self, now: float) -> int:
        return self.count if self.month == month_of(now) else 0

    def charge(self, created_at: int, n: int = 1) -> None:
        month = month_of(created_at)
        if month > self.month:  # a new month: the count starts again
            self.month, self.count = month, 0
        if month == self.month:
            self.count += n

    def uncharge(self, created_at: int) -> None:
        if month_of(created_at) == self.month:
            self.count = max(self.count - 1, 0)

    def finish(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self.unstored.pop(job_id, None)
        if job_id not in self.done:
            self.done.append(job_id)
            del self.done[:-DONE_KEPT]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(UserCounts)
_claim_encoder = msgspec.json.Encoder()


def key_of(user_id: str) -> str:
    """The KV key of a user (user ids are UUIDs; anything else is hashed into a valid key)."""
    if _SAFE.match(user_id):
        return f"u.{user_id}"
    return "h." + hashlib.sha256(user_id.encode()).hexdigest()


class Counters:
    """The shared per-user counters (see the module docstring)."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.conflicts = 0  # CAS retries, for the benchmark and the logs
        self.scans = 0  # readings of every record by the unstored sweep (unstored_before)
        #: the bucket (its creation, its last sequence) when a reading found no job counted and unstored
        self._nothing_unstored_at: tuple[str, int] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> Counters:
        """The bucket, created if missing; a missing bucket is rebuilt from the stream's job events."""
        try:
            await js.stream_info(f"KV_{BUCKET}")
            missing = False
        except nats.js.errors.NotFoundError:
            missing = True
        kv = await ensure_kv(js, BUCKET, replicas=replicas, description="quota counters per user (quota keeper)")
        counters = cls(kv)
        if missing:
            await counters.rebuild(js)
        return counters

    async def read(self, user_id: str) -> tuple[UserCounts, int]:
        """The user's record and its revision (0: no record, a CAS create)."""
        try:
            entry = await self.kv.get(key_of(user_id))
        except nats.js.errors.KeyDeletedError as exc:
            return UserCounts(), int(exc.entry.revision or 0) if exc.entry else 0
        except nats.js.errors.KeyNotFoundError:
            return UserCounts(), 0
        if not entry.value:
            return UserCounts(), int(entry.revision or 0)
        return _decoder.decode(entry.value), int(entry.revision or 0)

    async def change(self, user_id: str, fn: Callable[[UserCounts], tuple[T, bool]]) -> T:
        """Apply ``fn`` (returns its result and whether it changed the record) by compare-and-set.

        ``fn`` runs again on a fresh read after every conflict, so it must only look at the record;
        a ``LedgerError`` it raises (429) ends the attempt with nothing written."""
        for attempt in range(MAX_ATTEMPTS):
            record, revision = await self.read(user_id)
            result, changed = fn(record)
            if not changed:
                return result
            try:
                await self.kv.update(key_of(user_id), _encoder.encode(record), last=revision)
                return result
            except nats.js.errors.KeyWrongLastSequenceError:
                self.conflicts += 1
                # another keeper wrote first: read again, after a short jittered pause so that two
                # keepers in lock-step do not collide for ever
                await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise LedgerError(503, "the quota ledger is too busy; nothing was started, try again")

    # -- admission ---------------------------------------------------------------------------
    async def admitted(self, user_id: str, request_id: str, since: int) -> str | None:
        if not request_id:
            return None
        record, _ = await self.read(user_id)
        entry = record.requests.get(request_id)
        return entry.job_id if entry is not None and entry.at >= since else None

    async def unstored_event(self, user_id: str, job_id: str) -> bytes | None:
        record, _ = await self.read(user_id)
        entry = record.unstored.get(job_id)
        return entry.event if entry else None

    async def admit(
        self,
        user_id: str,
        job_id: str,
        now: int,
        files_per_month: int,
        max_running: int,
        *,
        request_id: str = "",
        request_window_s: int = 86400,
        event: bytes = b"",
    ) -> str:
        """Count ``job_id`` and mark it running, or raise 429; returns the job id that holds the
        request: ``job_id``, or the one an earlier admission of the same request made (a retry that
        raced us on another keeper), which is then not charged again."""

        def apply(record: UserCounts) -> tuple[str, bool]:
            if request_id and (earlier := record.requests.get(request_id)) and earlier.at >= now - request_window_s:
                return earlier.job_id, False
            _check(record, now, 1, files_per_month, max_running)
            record.charge(now)
            record.running[job_id] = now
            if request_id:
                record.requests = {r: e for r, e in record.requests.items() if e.at >= now - request_window_s}
                record.requests[request_id] = RequestEntry(job_id, now)
            if event:
                record.unstored[job_id] = Unstored(now, event)
            return job_id, True

        return await self.change(user_id, apply)

    async def admit_many(
        self, user_id: str, job_ids: list[str], now: int, files_per_month: int, max_running: int
    ) -> None:
        """A cadence: every file counted, all or none (admitted while fewer than ``max_running`` run)."""

        def apply(record: UserCounts) -> tuple[None, bool]:
            _check(record, now, len(job_ids), files_per_month, max_running)
            record.charge(now, len(job_ids))
            for job_id in job_ids:
                record.running[job_id] = now
            return None, True

        await self.change(user_id, apply)

    async def unadmit(self, user_id: str, job_id: str) -> bool:
        """Undo an admission whose event never reached the stream (nothing was started)."""

        def apply(record: UserCounts) -> tuple[bool, bool]:
            created = record.running.pop(job_id, None)
            if created is None:
                return False, False
            record.unstored.pop(job_id, None)
            record.requests = {r: e for r, e in record.requests.items() if e.job_id != job_id}
            record.uncharge(created)
            return True, True

        return await self.change(user_id, apply)

    # -- events ------------------------------------------------------------------------------
    async def submitted(self, user_id: str, job_id: str, created_at: int) -> bool:
        """A ``seti.job.submitted`` seen: stored (no longer unstored); counted if no keeper counted
        it at admission (a job from another client). False when nothing changed."""

        def apply(record: UserCounts) -> tuple[bool, bool]:
            if job_id in record.unstored:
                del record.unstored[job_id]
                return True, True
            if job_id in record.running or job_id in record.done:
                return False, False
            record.charge(created_at)
            record.running[job_id] = created_at
            return True, True

        return await self.change(user_id, apply)

    async def finished(self, user_id: str, job_id: str, *, refund: bool) -> bool:
        """A job completed or failed: no longer running; ``refund`` (a failure of the service) gives
        its count back, once. True when it was refunded."""

        def apply(record: UserCounts) -> tuple[bool, bool]:
            if job_id in record.done:
                return False, False
            created = record.running.get(job_id)
            record.finish(job_id)
            if refund and created is not None:
                record.uncharge(created)
                return True, True
            return False, True

        return await self.change(user_id, apply)

    # -- reading -----------------------------------------------------------------------------
    async def used(self, user_id: str, now: float) -> int:
        record, _ = await self.read(user_id)
        return record.used(now)

    async def running(self, user_id: str) -> int:
        record, _ = await self.read(user_id)
        return len(record.running)

    async def unstored_before(self, cutoff: int) -> list[tuple[str, str]]:
        """(user_id key, job_id) of every job counted before ``cutoff`` whose event was not seen.

        The records are read only when the bucket has changed since a reading that found no job
        unstored: every keeper sweeps every 15 s, busy or idle, and each reading makes the
        nats-server load the bucket's whole last block (every rewrite of a record is appended to
        it, up to 4 MB before another is started) and keep it cached. An idle server therefore
        never released that buffer (the fuzz run's nats-server stayed 20 % larger after 5 idle
        minutes). The bucket's last sequence comes from its stream's state, which loads nothing."""
        info = (await self.kv.status()).stream_info
        bucket_state = (str(info.created), int(info.state.last_seq or 0))  # a recreated bucket starts again
        if bucket_state == self._nothing_unstored_at:
            return []
        self.scans += 1
        out: list[tuple[str, str]] = []
        pending = False
        for name in await list_keys(self.kv):
            try:
                entry = await self.kv.get(name)
            except nats.js.errors.KeyNotFoundError:
                continue
            if not entry.value:
                continue
            record = _decoder.decode(entry.value)
            pending = pending or bool(record.unstored)
            out.extend((name, j) for j, u in record.unstored.items() if u.at < cutoff)
        # a change after `bucket_state` (even during the reading) makes the next sweep read again
        self._nothing_unstored_at = None if pending else bucket_state
        return out

    async def unadmit_key(self, key: str, job_id: str) -> bool:
        """``unadmit`` by KV key (what ``unstored_before`` lists); the key of a UUID user is its id."""
        if not key.startswith("u."):
            return False  # hashed ids cannot be reversed; such users are seeded, not API users
        return await self.unadmit(key[2:], job_id)

    # -- one user per email, across keepers ---------------------------------------------------
    async def claim_email(self, email: str, user_id: str, now: int, stale_after_s: int = EMAIL_CLAIM_STALE_S) -> bool:
        """Claim ``email`` for a new user (KV create: one keeper wins a race). The caller has caught
        up with the stream and found no user with this email, so an existing claim is either being
        created right now on another keeper, or was left by a keeper that died before publishing
        the user: past ``stale_after_s`` it is taken over (CAS on its revision)."""
        key = "e." + hashlib.sha256(email.encode()).hexdigest()
        value = _claim_encoder.encode(EmailClaim(user_id, now))
        try:
            await self.kv.create(key, value)
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(key)
        except nats.js.errors.KeyNotFoundError:
            return False  # deleted between the two calls: the caller may try again
        claim = msgspec.json.decode(entry.value or b"{}", type=EmailClaim)
        if claim.at > now - stale_after_s:
            return False
        try:
            await self.kv.update(key, value, last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        log.warning("stale email claim taken over", user_id=user_id, stale_user_id=claim.user_id)
        return True

    # -- rebuilding --------------------------------------------------------------------------
    async def rebuild(self, js: JetStreamContext, request_window_s: int = REQUEST_WINDOW_S) -> int:
        """Recompute every user's record from the stream's ``seti.job.*`` events; returns how many
        users. Run by a keeper that found the bucket missing (lost, or deleted by an operator):
        this month's counts, the running jobs, the finished ones and the Idempotency-Keys of the
        last ``request_window_s`` (``seti.job.submitted`` carries its request's key) come back."""
        records: dict[str, UserCounts] = defaultdict(UserCounts)
        events = 0
        oldest_request = int(time.time()) - request_window_s
        async for stored in replay(js, JOB_SUBJECTS):
            try:
                event = decode(stored.data)
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
            events += 1
            if isinstance(event, JobSubmitted):
                record = records[event.user_id]
                if event.job_id not in record.running and event.job_id not in record.done:
                    record.charge(event.created_at)
                    record.running[event.job_id] = event.created_at
                if event.request_id and event.created_at >= oldest_request:
                    record.requests.setdefault(event.request_id, RequestEntry(event.job_id, event.created_at))
            elif isinstance(event, JobCompleted | JobFailed):
                record = records[event.user_id]
                created = record.running.get(event.job_id)
                record.finish(event.job_id)
                if isinstance(event, JobFailed) and not event.charged and created is not None:
                    record.uncharge(created)
        written = 0
        for user_id, rebuilt in records.items():
            await self.change(user_id, functools.partial(_merge, rebuilt))
            written += 1
        if events:  # a new installation has nothing to rebuild, and nothing to warn about
            log.warning("quota counters rebuilt from the stream", users=written, events=events)
        return written


def _merge(rebuilt: UserCounts, record: UserCounts) -> tuple[None, bool]:
    """Fold a rebuilt record into what is in the bucket now (empty, unless a keeper admitted for
    this user while the stream was replayed): jobs the stream did not show yet are kept, running
    and counted, on top of the stream's figures."""
    known = set(rebuilt.running) | set(rebuilt.done)
    extra = {j: at for j, at in record.running.items() if j not in known}
    merged = UserCounts(
        month=rebuilt.month,
        count=rebuilt.count,
        running={**rebuilt.running, **extra},
        requests={**rebuilt.requests, **record.requests},
        unstored={j: u for j, u in record.unstored.items() if j in extra},
        done=rebuilt.done,
    )
    for at in extra.values():
        merged.charge(at)
    record.month, record.count, record.running = merged.month, merged.count, merged.running
    record.requests, record.unstored, record.done = merged.requests, merged.unstored, merged.done
    return None, True


def _check(record: UserCounts, now: int, n: int, files_per_month: int, max_running: int) -> None:
    used = record.used(now)
    if used + n > files_per_month:
        if n == 1:
            raise LedgerError(
                429, f"monthly limit reached: {used} of {files_per_month} files this month (resets on the 1st, UTC)"
            )
        raise LedgerError(
            429,
            f"monthly limit reached: a cadence of {n} files needs {n} of the "
            f"{files_per_month - used} left this month (resets on the 1st, UTC)",
        )
    if len(record.running) >= max_running:
        raise LedgerError(
            429,
            f"too many concurrent jobs: {len(record.running)} running (max {max_running}); wait for one to finish",
        )
