"""The quota keeper actor: the one place that decides who may do what, and counts it.

Commands (request/reply, queue group ``quota_keeper``): ``admit``, ``create_key``, ``revoke_key``,
``create_user``, ``set_tier``. Each answers with the stream sequence of the fact it published, so
the edge can wait until its own projection has applied it (read-your-writes).

Admission publishes ``seti.job.submitted`` itself, after counting the job: a job is counted if and
only if it was submitted (a failed publish undoes the count and answers 500).

Consumed: ``seti.job.submitted`` (jobs from other clients share the accounting and the history),
``seti.job.completed`` / ``failed`` (no longer running; history pruned to the tier's limit, oldest
finished first) and ``seti.exports.written`` (result files, removed after the tier's retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec

from actors.quota_keeper import commands, keys, tiers
from actors.quota_keeper.counters import Counters
from actors.quota_keeper.directory import Directory
from actors.quota_keeper.ledger import Key, Ledger, LedgerError
from actors.runtime import Actor
from bus.request import CommandError, serve
from bus.stream import STREAM
from schemas.base import Event, encode
from schemas.events import decode
from schemas.ops import DeadLettered
from schemas.seti import (
    CadenceSubmitted,
    ExportsExpired,
    ExportsWritten,
    JobCompleted,
    JobFailed,
    JobsPruned,
    JobSubmitted,
    KeyCreated,
    KeyRevoked,
    UserUpdated,
)
from storage import MB, ObjectStorage, StorageError, open_storage

T = TypeVar("T")


UNSTORED_SWEEP_S = 15.0
UNSTORED_AFTER_S = 90.0  # past the longest publish retry of an admission (60 s without a deadline)


class QuotaKeeperActor(Actor):
    role = "quota_keeper"
    consumes: ClassVar[tuple[type[Event], ...]] = (
        JobSubmitted,
        JobCompleted,
        JobFailed,
        ExportsWritten,
        DeadLettered,
    )
    publishes: ClassVar[tuple[type[Event], ...]] = (
        JobSubmitted,
        CadenceSubmitted,
        UserUpdated,
        KeyCreated,
        KeyRevoked,
        JobsPruned,
        ExportsExpired,
    )

    #: where this instance keeps its projection (tests running two keepers in one data dir set it)
    ledger_path: Path | None = None

    async def setup(self) -> None:
        self.ledger = Ledger(self.ledger_path or self.settings.data_dir / "quota_keeper" / "ledger.sqlite")
        await self.ledger.open()
        self.counters = await Counters.open(self.bus.js, self.settings.kv_replicas)
        self.directory = Directory(self.bus.js, self.ledger)
        await self.directory.start()
        self.storage: ObjectStorage = open_storage(self.settings, nc=self.bus.nc)
        self._subs = []
        handlers: dict[str, tuple[type[Any], Callable[[Any], Awaitable[dict[str, Any]]]]] = {
            "admit": (commands.Admit, self.admit),
            "admit_cadence": (commands.AdmitCadence, self.admit_cadence),
            "create_key": (commands.CreateKey, self.create_key),
            "revoke_key": (commands.RevokeKey, self.revoke_key),
            "create_user": (commands.CreateUser, self.create_user),
            "set_tier": (commands.SetTier, self.set_tier),
        }
        for verb, (payload_type, handler) in handlers.items():
            sub = await serve(
                self.bus.nc, commands.subject(verb), commands.QUEUE, payload_type, _ledger_errors(handler)
            )
            self._subs.append(sub)
        self.spawn(self._retention_loop(), "retention")
        self.spawn(self._unstored_loop(), "unstored")

    async def teardown(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await self.directory.stop()
        await self.ledger.close()

    async def _publish(self, event: Event, deadline_s: float = 60.0) -> int:
        event = msgspec.structs.replace(event, producer=self.role)
        ack = await self.bus.publish(event, deadline_s=deadline_s)
        return int(ack.seq)

    # -- commands ----------------------------------------------------------------------------
    #: admissions this instance answered (how a test sees that a queue group spread a burst)
    admissions = 0

    async def admit(self, cmd: commands.Admit) -> dict[str, Any]:
        self.admissions += 1
        now = int(time.time())
        earlier = await self.counters.admitted(cmd.user_id, cmd.request_id, now - cmd.request_window_s)
        if earlier is not None:  # a retry: the same job, not charged again
            return await self._replayed(cmd, earlier)
        user = await self.directory.user(cmd.user_id)
        if user is None:
            raise CommandError(403, "unknown user", "FORBIDDEN")
        tier = tiers.get(user.tier)
        try:
            size = await self.storage.head(cmd.file_key)
        except StorageError as exc:
            raise CommandError(400, f"invalid file_key: {exc.message}", "INVALID_FILE_KEY") from None
        if size is None:
            raise CommandError(404, f"file not found in storage (upload first): {cmd.file_key}", "FILE_NOT_FOUND")
        if size > tier.max_file_mb * MB:
            raise CommandError(
                413,
                f"file is {size / MB:.1f} MB; the {tier.name} tier allows {tier.max_file_mb} MB per file",
                "FILE_TOO_LARGE",
            )
        if cmd.deadline and time.time() > cmd.deadline:
            # the edge has answered 503 already: admitting now would charge a job the client
            # was told did not start, and will start again
            raise CommandError(503, "admission came too late; nothing was started", "ADMISSION_EXPIRED")
        job_id = str(uuid.uuid4())
        event = JobSubmitted(
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"observatory/job-submitted/{job_id}").hex,
            job_id=job_id,
            user_id=cmd.user_id,
            file_key=cmd.file_key,
            filename=cmd.filename,
            source_name=cmd.source_name,
            file_size=size,
            created_at=now,
            max_drift=cmd.max_drift,
            min_snr=cmd.min_snr,
            max_data_bytes=tier.max_file_mb * MB,
            request_id=cmd.request_id,
            correlation_id=job_id,
            producer=self.role,
        )
        holder = await self.counters.admit(
            cmd.user_id,
            job_id,
            now,
            tier.files_per_month,
            tiers.MAX_RUNNING_JOBS,
            request_id=cmd.request_id,
            request_window_s=cmd.request_window_s,
            event=encode(event),
        )
        if holder != job_id:  # the same request, admitted on another keeper while we checked
            return await self._replayed(cmd, holder)
        try:
            # within the caller's deadline: a job stored after the edge gave up would run, and be
            # charged, for a client that was told to try again
            seq = await self._publish(event, _remaining(cmd.deadline))
        except Exception as exc:
            await self.counters.unadmit(cmd.user_id, job_id)
            self.log.error("job submission failed; admission undone", job_id=job_id, error=repr(exc))
            raise CommandError(
                500, "pipeline failed to start; the job was not counted", "PIPELINE_START_FAILED"
            ) from None
        self.log.info("job admitted", job_id=job_id, user_id=cmd.user_id, file_size=size)
        return {"job_id": job_id, "created_at": now, "file_size": size, "seq": seq}

    async def _replayed(self, cmd: commands.Admit, job_id: str) -> dict[str, Any]:
        unstored = await self.counters.unstored_event(cmd.user_id, job_id)
        if unstored is not None:
            # counted, but a keeper died before its event was stored (or before it was seen):
            # store it now; the same event id makes a second copy a no-op in the stream
            await self._publish(decode(unstored), _remaining(cmd.deadline))
        self.log.info("admission replayed", job_id=job_id, user_id=cmd.user_id)
        return {"job_id": job_id, "replayed": True}

    async def admit_cadence(self, cmd: commands.AdmitCadence) -> dict[str, Any]:
        """Admit a cadence: every file is checked and counted like one ``admit``, all or none; then one
        ``seti.job.submitted`` per file and a ``seti.cadence.submitted`` naming them, in that order."""
        user = await self.directory.user(cmd.user_id)
        if user is None:
            raise CommandError(403, "unknown user", "FORBIDDEN")
        tier = tiers.get(user.tier)
        sizes = []
        for f in cmd.files:
            size = await self.storage.head(f.file_key)
            if size is None:
                raise CommandError(404, f"file not found in storage (upload first): {f.file_key}", "FILE_NOT_FOUND")
            if size > tier.max_file_mb * MB:
                raise CommandError(
                    413,
                    f"{f.filename} is {size / MB:.1f} MB; the {tier.name} tier allows {tier.max_file_mb} MB per file",
                    "FILE_TOO_LARGE",
                )
            sizes.append(size)
        now = int(time.time())
        cadence_id = str(uuid.uuid4())
        job_ids = [str(uuid.uuid4()) for _ in cmd.files]
        await self.counters.admit_many(cmd.user_id, job_ids, now, tier.files_per_month, tiers.MAX_RUNNING_JOBS)
        published = 0
        try:
            for job_id, f, size in zip(job_ids, cmd.files, sizes, strict=True):
                await self._publish(
                    JobSubmitted(
                        job_id=job_id,
                        user_id=cmd.user_id,
                        file_key=f.file_key,
                        filename=f.filename,
                        source_name=cmd.source_name if f.on else f"{cmd.source_name} (OFF)",
                        file_size=size,
                        created_at=now,
                        max_drift=cmd.max_drift,
                        min_snr=cmd.min_snr,
                        max_data_bytes=tier.max_file_mb * MB,
                        correlation_id=cadence_id,
                    )
                )
                published += 1
            seq = await self._publish(
                CadenceSubmitted(
                    cadence_id=cadence_id,
                    user_id=cmd.user_id,
                    job_ids=job_ids,
                    file_keys=[f.file_key for f in cmd.files],
                    filenames=[f.filename for f in cmd.files],
                    on=[f.on for f in cmd.files],
                    source_name=cmd.source_name,
                    created_at=now,
                    max_drift=cmd.max_drift,
                    min_snr=cmd.min_snr,
                    filter_level=cmd.filter_level,
                    correlation_id=cadence_id,
                )
            )
        except Exception as exc:
            for job_id in job_ids[published:]:
                await self.counters.unadmit(cmd.user_id, job_id)
            self.log.error("cadence submission failed", cadence_id=cadence_id, error=repr(exc))
            raise CommandError(
                500,
                f"pipeline failed to start; {published} of {len(job_ids)} searches were started and counted",
                "PIPELINE_START_FAILED",
            ) from None
        self.log.info("cadence admitted", cadence_id=cadence_id, user_id=cmd.user_id, files=len(job_ids))
        return {"job_id": cadence_id, "job_ids": job_ids, "created_at": now, "seq": seq}

    async def create_key(self, cmd: commands.CreateKey) -> dict[str, Any]:
        user = await self.directory.user(cmd.user_id)
        if user is None:
            raise CommandError(403, "unknown user", "FORBIDDEN")
        if not tiers.get(user.tier).can_create_keys:
            raise CommandError(403, "Free tier cannot create API keys — upgrade required", "UPGRADE_REQUIRED")
        return await self._add_key(user.user_id, cmd.key_id, cmd.key_hash, cmd.name, cmd.ttl_days)

    async def _add_key(self, user_id: str, key_id: str, key_hash: str, name: str, ttl_days: int) -> dict[str, Any]:
        try:
            keys.check_ttl(ttl_days)
        except ValueError as exc:
            raise CommandError(400, str(exc), "INVALID_TTL") from None
        now = int(time.time())
        key = Key(key_id, user_id, name, now, now + ttl_days * 86400, None)
        await self.ledger.add_key(key, key_hash)
        seq = await self._publish(
            KeyCreated(
                key_id=key_id,
                user_id=user_id,
                name=name,
                key_hash=key_hash,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
        )
        return {"key_id": key_id, "created_at": key.created_at, "expires_at": key.expires_at, "seq": seq}

    async def revoke_key(self, cmd: commands.RevokeKey) -> dict[str, Any]:
        key = await self.directory.key(cmd.key_id)
        if key is None:
            raise CommandError(404, f"API key {cmd.key_id!r} not found", "KEY_NOT_FOUND")
        if key.user_id != cmd.user_id:
            raise CommandError(403, "this API key belongs to a different user", "FORBIDDEN")
        if key.revoked_at is not None:
            # already revoked (and, published first, already in the stream): nothing new to say
            return {"key_id": cmd.key_id, "already_revoked": True}
        now = int(time.time())
        # The fact first, with an id derived from the key: a keeper that dies before the ledger
        # write publishes it again on the client's retry, and JetStream stores it once.
        seq = await self._publish(
            KeyRevoked(
                id=uuid.uuid5(uuid.NAMESPACE_URL, f"observatory/key-revoked/{cmd.key_id}").hex,
                key_id=cmd.key_id,
                user_id=cmd.user_id,
                revoked_at=now,
            )
        )
        await self.ledger.revoke_key(cmd.key_id, now)
        return {"key_id": cmd.key_id, "seq": seq}

    async def create_user(self, cmd: commands.CreateUser) -> dict[str, Any]:
        tier = _tier(cmd.tier)
        if cmd.role not in tiers.ROLES:
            raise CommandError(400, f"unknown role {cmd.role!r}; known: {', '.join(tiers.ROLES)}", "INVALID_ROLE")
        email = cmd.email.strip().lower()
        if "@" not in email:
            raise CommandError(400, f"not an email address: {cmd.email!r}", "INVALID_EMAIL")
        await self.directory.catch_up()  # an email taken on another keeper is taken here too
        if await self.ledger.user_by_email(email) is not None:
            raise LedgerError(409, f"a user with email {email!r} already exists")
        user_id, now = str(uuid.uuid4()), int(time.time())
        if not await self.counters.claim_email(email, user_id, now):  # another keeper is creating it now
            raise LedgerError(409, f"a user with email {email!r} already exists")
        user = await self.ledger.create_user(user_id, email, tier.name, cmd.role, now)
        await self._publish(_user_event(user))
        key = await self._add_key(user.user_id, cmd.key_id, cmd.key_hash, cmd.key_name, cmd.ttl_days)
        return {"user_id": user.user_id, "email": email, "tier": tier.name, "role": user.role, **key}

    async def set_tier(self, cmd: commands.SetTier) -> dict[str, Any]:
        tier = _tier(cmd.tier)
        await self.directory.catch_up()
        user = await self.ledger.set_tier(cmd.email.strip().lower(), tier.name)
        seq = await self._publish(_user_event(user))
        return {"user_id": user.user_id, "email": user.email, "tier": user.tier, "role": user.role, "seq": seq}

    # -- events ------------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        if isinstance(event, JobSubmitted):
            await self.counters.submitted(event.user_id, event.job_id, event.created_at)
            await self.ledger.record_submitted(event.job_id, event.user_id, event.file_key, event.created_at)
            await self._prune(event.user_id)
        elif isinstance(event, JobCompleted | JobFailed):
            state = "complete" if isinstance(event, JobCompleted) else "failed"
            await self.ledger.finish(event.job_id, event.user_id, state, event.completed_at)
            refund = isinstance(event, JobFailed) and not event.charged
            if await self.counters.finished(event.user_id, event.job_id, refund=refund):
                self.log.info("failed by the service: not charged", job_id=event.job_id)
            await self._prune(event.user_id)
        elif isinstance(event, ExportsWritten):
            await self.ledger.record_exports(event.job_id, event.user_id, event.keys)
        elif isinstance(event, DeadLettered):
            await self._fail_dead_lettered_job(event)

    async def _fail_dead_lettered_job(self, dead: DeadLettered) -> None:
        """A job whose submission the searcher dead-lettered (it crashed the searcher on every
        delivery) would otherwise stay "processing" for ever, holding one of its user's running
        slots. Fail it, with the reason; the id is derived from the job so it is stored once."""
        if dead.consumer != "searcher" or dead.original_subject != JobSubmitted.subject():
            return
        try:
            job = decode(dead.payload.encode())
        except (msgspec.ValidationError, msgspec.DecodeError):
            return  # undecodable: there is no job to fail
        if not isinstance(job, JobSubmitted):
            return
        failed = JobFailed(
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"observatory/dead-letter/{job.job_id}").hex,
            job_id=job.job_id,
            user_id=job.user_id,
            completed_at=int(time.time()),
            error=f"the job could not be processed after {dead.deliveries} attempts: {dead.reason}; "
            "a failure of the service, so it is not charged to your quota",
            charged=False,
            correlation_id=job.correlation_id or job.job_id,
        )
        await self._publish(failed)
        self.log.warning("dead-lettered job failed", job_id=job.job_id, deliveries=dead.deliveries)

    async def _prune(self, user_id: str) -> None:
        user = await self.directory.user(user_id)
        limit = tiers.get(user.tier).history_limit if user else tiers.TIERS["free"].history_limit
        victims = await self.ledger.to_prune(user_id, limit)
        if not victims:
            return
        for job in victims:
            await self._remove_files(job.exports)
        await self._publish(JobsPruned(user_id=user_id, job_ids=[j.job_id for j in victims]))
        await self.ledger.mark_pruned([j.job_id for j in victims])
        self.log.info("job history pruned", user_id=user_id, jobs=len(victims), limit=limit)

    async def _remove_files(self, exports: dict[str, str]) -> None:
        for key in set(exports.values()):
            try:
                await self.storage.delete(key)
            except Exception as exc:  # a missing file is already gone; anything else is retried next sweep
                self.log.warning("could not remove result file", key=key, error=repr(exc))

    # -- retention ---------------------------------------------------------------------------
    async def sweep(self, now: int | None = None) -> int:
        """Remove result files older than their owner's tier keeps them; return how many jobs."""
        now = int(time.time()) if now is None else now
        retention = {t.name: t.retention_days for t in tiers.TIERS.values()}
        expired = await self.ledger.expired_results(now, retention)
        for job in expired:
            await self._remove_files(job.exports)
            await self._publish(ExportsExpired(job_id=job.job_id, user_id=job.user_id, correlation_id=job.job_id))
            await self.ledger.mark_exports_removed(job.job_id)
        if expired:
            self.log.info("expired results removed", jobs=len(expired))
        return len(expired)

    async def _unstored_loop(self) -> None:
        while True:
            await asyncio.sleep(UNSTORED_SWEEP_S)
            try:
                await self.refund_unstored()
            except Exception:
                self.log.exception("unstored-admission sweep failed")

    async def refund_unstored(self, older_than_s: float = UNSTORED_AFTER_S) -> list[str]:
        """Refund jobs counted here whose ``seti.job.submitted`` never reached the stream.

        A keeper killed between counting a job and storing its event leaves such a job: charged,
        holding a running slot, and never run; its client was answered 503 ("nothing started").
        Only when this role's consumer has caught up (nothing pending) is "not seen" the same as
        "not stored", and only past the longest publish a command may still be retrying.
        """
        info = await self.bus.js.consumer_info(STREAM, self.consumer_spec().name)
        if info.num_pending or info.num_ack_pending:
            return []
        refunded = []
        for key, job_id in await self.counters.unstored_before(int(time.time() - older_than_s)):
            if await self.counters.unadmit_key(key, job_id):
                refunded.append(job_id)
                self.log.warning("admitted job never reached the stream: refunded", job_id=job_id)
        return refunded

    async def sweep_uploads(self) -> int:
        """Remove uploads abandoned in the local store (``LocalStorage.sweep_abandoned``); the
        object stores' own lifecycle rules do it for S3, so other backends have nothing to do here."""
        sweep = getattr(self.storage, "sweep_abandoned", None)
        if sweep is None:
            return 0
        removed = int(await asyncio.to_thread(sweep))
        if removed:
            self.log.info("abandoned uploads removed", removed=removed)
        return removed

    async def _retention_loop(self) -> None:
        while True:
            for what, step in (("retention", self.sweep), ("abandoned-upload", self.sweep_uploads)):
                try:
                    await step()
                except Exception:
                    self.log.exception(f"{what} sweep failed")
            await asyncio.sleep(self.settings.retention_sweep_s)


def _remaining(deadline: float) -> float:
    """Seconds a publish may retry for a command with this deadline (0: the caller waits a minute)."""
    return max(0.5, deadline - time.time()) if deadline else 60.0


def _tier(name: str) -> tiers.Tier:
    try:
        return tiers.get(name)
    except ValueError as exc:
        raise CommandError(400, str(exc), "INVALID_TIER") from None


def _user_event(user: Any) -> UserUpdated:
    return UserUpdated(
        user_id=user.user_id, email=user.email, tier=user.tier, role=user.role, created_at=user.created_at
    )


def _ledger_errors(
    handler: Callable[[T], Awaitable[dict[str, Any]]],
) -> Callable[[T], Awaitable[dict[str, Any]]]:
    async def wrapped(payload: T) -> dict[str, Any]:
        try:
            return await handler(payload)
        except LedgerError as exc:
            raise CommandError(exc.status, exc.message) from None

    return wrapped
