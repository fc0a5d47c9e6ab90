"""The de-Doppler searcher actor: ``seti.job.submitted`` in; progress, the result and the exports out.

For each job it reads the uploaded file from object storage (the file itself with the local backend,
a streamed download with S3), runs :func:`~actors.searcher.pipeline.search_file`, and publishes

1. ``seti.job.progressed``: ``ingest`` at 0 %, then ``dedoppler`` with percent = coarse channels
   searched / total, then ``classify`` at 100 % (at most one every ``PROGRESS_INTERVAL_S``, the
   latest value winning, the last one always sent);
2. ``seti.job.completed`` with ``result.to_results()`` (the seed's ``results``), as soon as the
   search is done, or ``seti.job.failed`` with the reason when the file is bad;
3. the exports, written to ``results/<user_id>/<job_id>/`` and announced by ``seti.exports.written``
   (after the completion, as the seed allows; until then the downloads answer 404).

Where the work runs. The search runs in a thread: its Taylor-tree kernels are numba ``nogil=True``
with ``prange`` (the thread-safe ``omp`` layer), so both cores are busy while the event loop keeps
acking, heartbeating and publishing progress, and the progress callback is a plain function call.
A thread also dies with the process: a searcher killed mid-job leaves no orphan burning the CPU on
a job that JetStream has meanwhile handed to another searcher. The exports (matplotlib, astropy)
hold the GIL for seconds, so they run in the runtime's process pool.

Idempotency ("completes exactly once"). Before searching, the actor reads the job's outcome record
in storage (``storage_io``): a job already complete with its exports written, or already failed, is
acknowledged and nothing is published. The completion, failure and exports events carry ids derived
from the job id, so the one window left, a crash between publishing the completion and writing the
record, is closed by JetStream's duplicate window (the id is the ``Nats-Msg-Id``).

Bad input is not retried: a :class:`~actors.searcher.filterbank.FilterbankError` (or any other
``ValueError`` from the reader or the parameters) fails the job with its message and the event is
acked. Two limits hold before and during the search: the data's DECODED size (from the header or
the dataset's shape, nothing read) against the tier's limit carried by the job
(``max_data_bytes``), so a few-kB compressed .h5 declaring gigabytes is refused at once; and
``--search-time-limit``, past which the search thread is stopped and the job failed. Anything else (storage or bus trouble) is raised so the runtime retries it; on the last
delivery the job is failed instead, so that it does not stay "processing" and hold a running slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

from actors.runtime import Actor, call_and_release
from actors.searcher import fair_share
from actors.searcher.claims import Claims
from actors.searcher.filterbank import FilterbankError, check_decoded_size, open_filterbank
from actors.searcher.pipeline import SearchResult, search_file, write_exports
from actors.searcher.storage_io import (
    InputMissing,
    Outcome,
    fetch_input,
    read_outcome,
    result_prefix,
    write_outcome,
)
from bus.consume import DEFERRALS, Defer
from schemas.base import Event
from schemas.seti import ExportsWritten, JobCompleted, JobFailed, JobProgressed, JobSubmitted
from storage import ObjectStorage, StorageUnavailable, open_storage

PROGRESS_INTERVAL_S = 0.25
#: Charging (README "Failed jobs and quotas"): the file the user sent was read and rejected, so it counts;
#: a job the service could not finish does not.
INPUT_CHARGED = "The file was read and rejected, so it counts toward this month's quota"
SERVICE_NOT_CHARGED = "A failure of the service: it is not charged to your quota"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "observatory/searcher")


def fact_id(job_id: str, fact: str) -> str:
    """The event id of one fact about one job: the same on every attempt, so JetStream stores it once."""
    return uuid.uuid5(_ID_NAMESPACE, f"{job_id}/{fact}").hex


class SearchTimeLimit(Exception):
    """The search ran past ``--search-time-limit``: the job fails (a retry would take as long)."""


class _Cancelled(Exception):
    """Raised in the search thread at the next coarse channel once the handler was cancelled."""


def warm_up(scratch: Path) -> None:
    """Search a tiny synthetic file, so numba has loaded (or compiled) the kernels before the first job."""
    from actors.searcher.synth import Tone, make_filterbank

    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        path = make_filterbank(Path(tmp) / "warmup.fil", nchans=4096, ntime=16, tones=[Tone(1399.995, 0.1, 20.0)])
        search_file(path)


def preload_exports() -> None:
    """Import what the exports need in a pool worker, so the first job's exports do not pay for it
    (the waterfalls re-read windows of the file: h5py and hdf5plugin for an .h5)."""
    import astropy.io.fits  # noqa: F401
    import h5py  # noqa: F401
    import hdf5plugin  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.figure

    import actors.searcher.export  # noqa: F401


class SearcherActor(Actor):
    role = "searcher"
    consumes: ClassVar[tuple[type[Event], ...]] = (JobSubmitted,)
    publishes: ClassVar[tuple[type[Event], ...]] = (JobProgressed, JobCompleted, JobFailed, ExportsWritten)
    #: one search at a time per process: each search already uses every core
    concurrency: ClassVar[int] = 1
    #: a job may yield its turn to other users' (fair_share); deferrals are not failed deliveries
    defers: ClassVar[bool] = True

    async def setup(self) -> None:
        self.claims = await Claims.open(
            self.bus.js,
            replicas=self.settings.kv_replicas,
            consumer=self.role,
            instance=self.instance,
            policy=fair_share.Policy(
                max_running=self.settings.fair_share_running,
                max_deferrals=self.settings.fair_share_max_deferrals,
                delay_s=self.settings.fair_share_defer_s,
            ),
        )
        self.storage: ObjectStorage = open_storage(self.settings, nc=self.bus.nc)
        self.work_dir = self.settings.data_dir / "searcher"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        warmed = await asyncio.gather(
            self.run_thread(warm_up, self.work_dir), self.run_cpu(preload_exports), return_exceptions=True
        )
        for what, outcome in zip(("kernel warm-up", "export preload"), warmed, strict=True):
            if isinstance(outcome, BaseException):  # not fatal: the first job pays for it instead
                self.log.warning(f"{what} failed", error=repr(outcome))
        self.log.info("searcher ready", warm_up_s=round(time.perf_counter() - started, 2))

    # -- whose turn (fair_share) -----------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        assert isinstance(event, JobSubmitted)
        delay = await self.claims.turn(event.user_id, event.job_id, DEFERRALS.get())
        if delay is not None:  # this user has their share of searchers while other jobs wait
            raise Defer(delay, f"user {event.user_id} has {self.claims.policy.max_running} job(s) running")
        async with self.claims.hold(event.user_id, event.job_id):
            await self._handle_job(event)

    # -- one job ---------------------------------------------------------------------------------
    async def _handle_job(self, job: JobSubmitted) -> None:
        outcome = await read_outcome(self.storage, job.user_id, job.job_id)
        if outcome is not None and (outcome.status == "failed" or outcome.exports_written):
            self.log.info("job already finished; redelivery ignored", job_id=job.job_id, status=outcome.status)
            return
        try:
            await self._run(job, outcome)
        except InputMissing as exc:
            if outcome is None:
                await self._fail(job, str(exc))
            else:
                self.log.warning("input gone before the exports of a complete job", job_id=job.job_id)
        except Exception as exc:
            delivery = self.delivery()  # decides whether an unexpected error is retried or fails the job
            if outcome is not None or delivery < self.settings.max_deliveries:
                raise  # retried by the runtime (and dead-lettered after the last delivery)
            self.log.exception("job failed on its last delivery", job_id=job.job_id, delivery=delivery)
            what = "storage unavailable" if isinstance(exc, StorageUnavailable) else "internal error"
            await self._fail(
                job,
                f"{what} after {delivery} attempts: {type(exc).__name__}: {exc}. {SERVICE_NOT_CHARGED}",
                charged=False,
            )

    async def _run(self, job: JobSubmitted, outcome: Outcome | None) -> None:
        async with fetch_input(self.storage, job.file_key, self.work_dir / "downloads") as path:
            if outcome is None:
                try:
                    info = await asyncio.to_thread(open_filterbank, path)  # the header only
                    check_decoded_size(info, job.max_data_bytes)
                    result = await self._search(job, path, report=True)
                except ValueError as exc:  # FilterbankError and bad parameters: the file will not get better
                    kind = "invalid filterbank file" if isinstance(exc, FilterbankError) else "cannot search the file"
                    await self._fail(job, f"{kind} {job.filename!r}: {exc}. {INPUT_CHARGED}")
                    return
                except SearchTimeLimit as exc:
                    await self._fail(job, str(exc))
                    return
                completed = await self.publish(
                    JobCompleted(
                        id=fact_id(job.job_id, "completed"),
                        job_id=job.job_id,
                        user_id=job.user_id,
                        completed_at=int(time.time()),
                        results=result.to_results(),
                        correlation_id=job.correlation_id or job.job_id,
                    )
                )
                outcome = Outcome(status="complete", event_id=completed.id)
                await write_outcome(self.storage, job.user_id, job.job_id, outcome)
                self.log.info(
                    "job complete",
                    job_id=job.job_id,
                    raw_hits=result.counts.get("raw_hits", 0),
                    seconds=round(result.processing_time_seconds, 2),
                )
            else:
                # Complete, but the exports were never announced (the last searcher died in between):
                # search again, quietly, only to write them.
                result = await self._search(job, path, report=False)
            keys = await self._write_exports(job, result, path)
        await self.publish(
            ExportsWritten(
                id=fact_id(job.job_id, "exports"),
                job_id=job.job_id,
                user_id=job.user_id,
                keys=keys,
                correlation_id=job.correlation_id or job.job_id,
            )
        )
        outcome.exports_written = True
        await write_outcome(self.storage, job.user_id, job.job_id, outcome)

    async def _fail(self, job: JobSubmitted, error: str, *, charged: bool = True) -> None:
        failed = await self.publish(
            JobFailed(
                id=fact_id(job.job_id, "failed"),
                job_id=job.job_id,
                user_id=job.user_id,
                completed_at=int(time.time()),
                error=error[:2000],
                charged=charged,
                correlation_id=job.correlation_id or job.job_id,
            )
        )
        await write_outcome(self.storage, job.user_id, job.job_id, Outcome(status="failed", event_id=failed.id))
        self.log.info("job failed", job_id=job.job_id, error=error)

    # -- the search, with its progress -------------------------------------------------------------
    async def _search(self, job: JobSubmitted, path: Path, *, report: bool) -> SearchResult:
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[tuple[int, int] | None] = asyncio.Queue()
        cancelled = threading.Event()

        def on_progress(done: int, total: int) -> None:  # in the search thread
            if cancelled.is_set():
                raise _Cancelled
            if report:
                loop.call_soon_threadsafe(updates.put_nowait, (done, total))

        pump: asyncio.Task[None] | None = None
        if report:
            await self._progress(job, "ingest", 0, 0)
            pump = asyncio.create_task(self._pump(job, updates), name=f"searcher:progress:{job.job_id}")
        limit = self.settings.search_time_limit_s
        try:
            return await asyncio.wait_for(
                self.run_thread(
                    call_and_release,  # a large file's search leaves a heap of fragments behind
                    search_file,
                    path,
                    max_drift=job.max_drift,
                    min_snr=job.min_snr,
                    progress=on_progress,
                ),
                limit if limit > 0 else None,
            )
        except TimeoutError:
            cancelled.set()
            raise SearchTimeLimit(
                f"the search of {job.filename!r} ran past the per-job time limit of {limit:g} s and was stopped"
            ) from None
        except BaseException:
            cancelled.set()  # a cancelled handler leaves the thread running: stop it at the next chunk
            raise
        finally:
            if pump is not None:
                # Progress scheduled by the thread is queued before its result, so this ends the pump
                # after the last update has been published, and before the completion is.
                updates.put_nowait(None)
                if cancelled.is_set():
                    pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def _pump(self, job: JobSubmitted, updates: asyncio.Queue[tuple[int, int] | None]) -> None:
        """Publish the latest progress, at most one event every ``PROGRESS_INTERVAL_S``."""
        while True:
            item = await updates.get()
            ended = item is None
            while not updates.empty():
                newer = updates.get_nowait()
                if newer is None:
                    ended = True
                else:
                    item = newer
            if item is not None:
                done, total = item
                await self._progress(job, "dedoppler" if done < total else "classify", done, total)
            if ended:
                return
            await asyncio.sleep(PROGRESS_INTERVAL_S)

    async def _progress(self, job: JobSubmitted, stage: str, done: int, total: int) -> None:
        try:
            await self.publish(
                JobProgressed(
                    job_id=job.job_id,
                    user_id=job.user_id,
                    percent=round(100.0 * done / total, 2) if total else 0.0,
                    stage=stage,
                    coarse_channels_done=done,
                    coarse_channels_total=total,
                    correlation_id=job.correlation_id or job.job_id,
                )
            )
        except Exception as exc:  # progress is advisory: never fail a search for it
            self.log.warning("progress not published", job_id=job.job_id, error=repr(exc))

    # -- exports -------------------------------------------------------------------------------------
    async def _write_exports(self, job: JobSubmitted, result: SearchResult, source: Path) -> dict[str, str]:
        out_dir = self.work_dir / "exports" / job.job_id
        try:
            paths = await self.run_cpu(write_exports, result, str(source), str(out_dir))
            prefix = result_prefix(job.user_id, job.job_id)
            keys: dict[str, str] = {}
            for fmt, file in paths.items():
                key = f"{prefix}/{Path(file).name}"
                await self.storage.put_file(key, Path(file))
                keys[fmt] = key
            return keys
        finally:
            await asyncio.to_thread(shutil.rmtree, out_dir, True)
