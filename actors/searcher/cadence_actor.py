"""The cadence actor: ``seti.cadence.submitted`` in; the cadence job's completion and exports out.

The searches of a cadence's files are ordinary jobs, run by the searchers in parallel (the quota
keeper submitted one per file).  This actor waits for all of them: each searcher records its job's
outcome in storage (``storage_io``) and writes the job's ``.dat``, whose key follows from the
uploaded file's name.  When every search has its exports, it reads the ``.dat`` files, applies the
filter levels and writes the events exactly as ``run.py events`` does (:func:`.events.run_events`'s
parts), so the same files give the same events through the API and the command line.  Then it
publishes ``seti.job.completed`` and ``seti.exports.written`` for the cadence's own job id.

If a search fails, the cadence fails with that file's reason.  A cadence whose searches have not
all finished within ``WAIT_LIMIT_S`` fails too, rather than hold a consumer for ever.  Everything it
publishes has an id derived from the cadence, so a redelivered cadence is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from actors.runtime import Actor
from actors.searcher.actor import fact_id
from actors.searcher.storage_io import Outcome, fetch_input, read_outcome, result_prefix, write_outcome
from schemas.base import Event
from schemas.seti import CADENCE_EXPORT_FILES, CadenceSubmitted, ExportsWritten, JobCompleted, JobFailed
from storage import ObjectStorage, open_storage

POLL_S = 0.5
WAIT_LIMIT_S = 6 * 3600.0


def dat_key(user_id: str, job_id: str, file_key: str) -> str:
    """Where the searcher put a job's ``.dat``: named after the uploaded file, as turboSETI names it."""
    stem = PurePosixPath(file_key.rsplit("/", 1)[-1]).stem or "input"
    return f"{result_prefix(user_id, job_id)}/{stem}.dat"


class CadenceActor(Actor):
    role = "cadence"
    consumes: ClassVar[tuple[type[Event], ...]] = (CadenceSubmitted,)
    publishes: ClassVar[tuple[type[Event], ...]] = (JobCompleted, JobFailed, ExportsWritten)
    #: cadences mostly wait for their searches: several at once
    concurrency: ClassVar[int] = 4

    async def setup(self) -> None:
        self.storage: ObjectStorage = open_storage(self.settings, nc=self.bus.nc)
        self.work_dir = self.settings.data_dir / "cadence"
        self.work_dir.mkdir(parents=True, exist_ok=True)

    async def handle(self, event: Event) -> None:
        assert isinstance(event, CadenceSubmitted)
        c = event
        done = await read_outcome(self.storage, c.user_id, c.cadence_id)
        if done is not None:
            return  # already finished: a redelivery
        started = time.monotonic()
        while True:
            outcomes = [await read_outcome(self.storage, c.user_id, j) for j in c.job_ids]
            failed = [(n, o) for n, o in zip(c.filenames, outcomes, strict=True) if o is not None and o.status == "failed"]
            if failed:
                await self._fail(c, f"the search of {failed[0][0]!r} failed; see its job for the reason")
                return
            if all(o is not None and o.exports_written for o in outcomes):
                break
            if time.monotonic() - started > WAIT_LIMIT_S:
                await self._fail(c, f"the searches did not finish within {WAIT_LIMIT_S / 3600:.0f} h")
                return
            await asyncio.sleep(POLL_S)
        await self._events(c)

    async def _events(self, c: CadenceSubmitted) -> None:
        work = self.work_dir / c.cadence_id
        work.mkdir(parents=True, exist_ok=True)
        try:
            dats: list[str] = []
            for job_id, key in zip(c.job_ids, c.file_keys, strict=True):
                data = await self.storage.get_bytes(dat_key(c.user_id, job_id, key))
                if data is None:
                    await self._fail(c, f"the hits of {key.rsplit('/', 1)[-1]!r} are missing from storage")
                    return
                dats.append(data.decode())
            async with contextlib.AsyncExitStack() as stack:
                sources = [
                    await stack.enter_async_context(fetch_input(self.storage, key, work / "inputs" / str(i)))
                    for i, key in enumerate(c.file_keys)
                ]
                try:
                    summary, files = await self.run_cpu(_event_step, dats, [str(s) for s in sources], c.on,
                                                        c.filter_level, str(work / "out"))
                except ValueError as exc:  # an unreadable .dat or a file that is not one cadence
                    await self._fail(c, f"the event step failed: {exc}")
                    return
            prefix = result_prefix(c.user_id, c.cadence_id)
            keys: dict[str, str] = {}
            for fmt, path in files.items():
                key = f"{prefix}/{Path(path).name}"
                await self.storage.put_file(key, Path(path))
                keys[fmt] = key
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        await self.publish(
            JobCompleted(
                id=fact_id(c.cadence_id, "completed"),
                job_id=c.cadence_id,
                user_id=c.user_id,
                completed_at=int(time.time()),
                results=summary,
                correlation_id=c.cadence_id,
            )
        )
        await self.publish(
            ExportsWritten(id=fact_id(c.cadence_id, "exports"), job_id=c.cadence_id, user_id=c.user_id, keys=keys,
                           correlation_id=c.cadence_id)
        )
        await write_outcome(self.storage, c.user_id, c.cadence_id,
                            Outcome(status="complete", event_id=fact_id(c.cadence_id, "completed"), exports_written=True))
        self.log.info("cadence complete", cadence_id=c.cadence_id, events=summary.get("events"))

    async def _fail(self, c: CadenceSubmitted, error: str) -> None:
        failed = await self.publish(
            JobFailed(id=fact_id(c.cadence_id, "failed"), job_id=c.cadence_id, user_id=c.user_id,
                      completed_at=int(time.time()), error=error[:2000], correlation_id=c.cadence_id)
        )
        await write_outcome(self.storage, c.user_id, c.cadence_id, Outcome(status="failed", event_id=failed.id))
        self.log.info("cadence failed", cadence_id=c.cadence_id, error=error)


def _event_step(
    dats: list[str], sources: list[str], on: list[bool], filter_level: int, out_dir: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """In a pool worker: the filter levels and the exports; returns the job's results and format → file."""
    from actors.searcher.cadence import find_events, read_dat
    from actors.searcher.events import write_events

    out = Path(out_dir)
    outcome = find_events([read_dat(d) for d in dats], on, filter_level=filter_level)
    paths = write_events(outcome, [Path(s) for s in sources], out)
    plots = [p for k, p in paths.items() if k.startswith("plot:")]
    files = {"events_csv": str(paths["events_csv"]), "events_json": str(paths["events_json"])}
    if plots:
        zpath = out / CADENCE_EXPORT_FILES["events_plots"]
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as z:
            for p in plots:
                z.write(p, arcname=p.name)
        files["events_plots"] = str(zpath)
    doc = json.loads(paths["events_json"].read_text())
    summary = {
        "cadence": True,
        "filter_level": filter_level,
        "files": doc["files"],
        "level1_hits": doc["counts"]["level1"],
        "level2_hits": doc["counts"]["level2"],
        "events": doc["counts"]["events"],
        "candidates": doc["counts"]["candidates"],
        "top_events": [
            {k: e[k] for k in ("hit_id", "frequency_mhz", "drift_rate", "snr", "classification", "reason")}
            for e in doc["events"][:20]
        ],
    }
    return summary, files
