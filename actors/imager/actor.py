"""The imager: a calibrated, CLEANed FITS image (and PNG thumbnail) of every calibrated group, and image jobs.

On ``dsa.ms.written`` with ``stage = calibrated`` (from the calibrator, with the chosen ``calsets``):
``work.image_ms`` in the process pool applies exactly those sets (interpolating between two),
forms Stokes I, Briggs-weights, grids with ducc0's w-gridder, Cotton-Schwab CLEANs to 3 sigma,
restores with the fitted beam and writes ``DATA/images/<group_id>.fits`` + ``.png``. The path is
deterministic, so a redelivery rewrites the same files. It publishes ``dsa.image.ready`` (path,
mjd, noise, beam, sources above 5 sigma, pointing) and ``dsa.ms.written`` with ``stage = imaged``.
Parameters (imsize, cellsize, niter, robust, max_major) come from the configuration.

**Jobs.** ``cmd.imager.create_job`` (from ``POST /api/control/jobs/create``) allocates
``job_YYYYMMDD_NNN`` (a per-UTC-day counter in the actor's state) and publishes the job's
``dsa.job.updated`` (``pending``), answering with the id and the event's stream sequence. The
work itself starts from that pending event, which this actor also consumes (as the mosaicker
does), so it is durable: a crash mid-job redelivers it, and a finished job is not redone. A job
publishes ``running``, images each MS with the job's parameters into ``DATA/images/jobs/<job_id>/``
(with the calibration sets valid for it, found as the calibrator would), and ends ``completed``
with its outputs, or ``failed`` with the reason (no valid calibration, unreadable MS, bad
parameter). A job's images are not announced as ``dsa.image.ready``: they re-image groups the
pipeline already imaged, and the light curves must see each epoch once.

State (``DATA/imager/state.sqlite``): jobs, day counters and an outbox (the events of one step are
committed with it and published after; see ``actors/outbox.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from datetime import UTC, datetime
from typing import Any, ClassVar

from actors import outbox, pipeline_jobs
from actors.imager import commands, work
from actors.runtime import Actor
from astro import applycal
from astro.applycal import NoCalibrationError
from astro.msio import MeasurementSetError
from bus.request import CommandError, serve
from schemas.base import Event, iso
from schemas.dsa import ImageReady, MeasurementSetWritten, PipelineJobUpdated

DDL = (
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, status TEXT NOT NULL, params TEXT NOT NULL, created_at TEXT NOT NULL)""",
    pipeline_jobs.DDL,
)

#: errors that fail a job (or a group) with their message instead of being retried
DATA_ERRORS = (NoCalibrationError, MeasurementSetError, work.ParameterError, FileNotFoundError, ValueError, OSError)


def _now() -> str:
    return iso(datetime.now(UTC))


class ImagerActor(Actor):
    role = "imager"
    consumes: ClassVar[tuple[type[Event], ...]] = (MeasurementSetWritten, PipelineJobUpdated)
    publishes: ClassVar[tuple[type[Event], ...]] = (ImageReady, MeasurementSetWritten, PipelineJobUpdated)

    async def setup(self) -> None:
        self.settings.image_dir.mkdir(parents=True, exist_ok=True)
        self.db = await self.open_state(DDL)
        self.lock = asyncio.Lock()
        self.defaults = work.default_params(self.settings)
        self._sub = await serve(self.bus.nc, commands.CREATE_JOB, commands.QUEUE, commands.CreateJob, self.create_job)

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.db.close()

    async def handle(self, event: Event) -> None:
        if isinstance(event, MeasurementSetWritten) and event.stage == "calibrated" and event.status == "ok":
            await self._image_group(event)
        elif isinstance(event, PipelineJobUpdated) and event.job_type == "image" and event.status == "pending":
            await self._run_job(event)

    # -- the pipeline ----------------------------------------------------------------------------
    async def _image_group(self, event: MeasurementSetWritten) -> None:
        if not event.calsets:
            # the calibrator never sends this; an event from elsewhere without sets is not imaged
            self.log.error("calibrated event without calibration sets: not imaged", group_id=event.group_id)
            return
        out = work.image_path(self.settings.image_dir, event.group_id)
        cid = event.correlation_id or event.group_id
        try:
            r = await self.run_cpu(work.image_ms, event.path, list(event.calsets), out, self.defaults)
        except DATA_ERRORS as exc:
            self.log.error("group not imaged", group_id=event.group_id, error=f"{type(exc).__name__}: {exc}")
            await self.publish(event.at_stage("calibrated", "failed"))
            return
        ready = ImageReady(
            path=r["path"],
            group_id=event.group_id,
            mjd=r["mjd"],
            noise_jy=r["noise_jy"],
            bmaj_deg=r["bmaj_deg"],
            bmin_deg=r["bmin_deg"],
            bpa_deg=r["bpa_deg"],
            n_sources_5sigma=r["n_sources_5sigma"],
            ms_path=event.path,
            thumbnail_path=r["thumbnail_path"],
            ra_deg=r["ra_deg"],
            dec_deg=r["dec_deg"],
            producer=self.role,
            correlation_id=cid,
        )
        # deterministic ids would need the stream's dedup window to outlive a redelivery; the
        # image is deterministic instead, so a repeated ImageReady names the same file
        await self.publish(ready)
        await self.publish(event.at_stage("imaged"))
        self.log.info(
            "image written",
            group_id=event.group_id,
            path=r["path"],
            noise_mjy=round(r["noise_jy"] * 1e3, 3),
            n_sources_5sigma=r["n_sources_5sigma"],
            seconds=round(sum(r["timings"].values()), 2),
        )

    # -- jobs ------------------------------------------------------------------------------------
    def _job_event(self, job_id: str, status: str, created_at: str, params: dict[str, Any], **kw: Any) -> Event:
        return pipeline_jobs.job_event(self.role, "image", job_id, status, created_at, params, **kw)

    async def create_job(self, cmd: commands.CreateJob) -> dict[str, Any]:
        if cmd.job_type != "image":
            raise CommandError(422, f"job_type must be 'image', not {cmd.job_type!r}", "VALIDATION_ERROR")
        if not cmd.ms_paths:
            raise CommandError(422, "ms_paths must name at least one Measurement Set", "VALIDATION_ERROR")
        try:
            checked = work.check_parameters(cmd.parameters)
        except work.ParameterError as exc:
            raise CommandError(422, str(exc), "VALIDATION_ERROR") from None
        now = datetime.now(UTC)
        params: dict[str, Any] = {"ms_paths": list(cmd.ms_paths), **checked}
        if cmd.operator:
            params["operator"] = cmd.operator
        async with self.lock:
            job_id = await pipeline_jobs.next_job_id(self.db, "job", now)
            created = iso(now)
            await self.db.execute("INSERT INTO jobs VALUES (?, 'pending', ?, ?)", (job_id, json.dumps(params), created))
            ev = self._job_event(job_id, "pending", created, params)
            await outbox.put(self.db, ev)
            await self.db.commit()
            seqs = await outbox.flush(self.db, self.bus)
        self.log.info("image job created", job_id=job_id, ms=len(cmd.ms_paths), operator=cmd.operator)
        return {"job_id": job_id, "seq": seqs.get(ev.id, 0)}

    async def _run_job(self, event: PipelineJobUpdated) -> None:
        job_id = event.job_id
        params = dict(event.parameters)
        async with self.lock:
            rows = list(await self.db.execute_fetchall("SELECT status FROM jobs WHERE job_id = ?", (job_id,)))
            if rows and rows[0][0] in ("completed", "failed"):
                await outbox.flush(self.db, self.bus)
                return
            if not rows:  # a job another client published straight to the stream
                await self.db.execute(
                    "INSERT INTO jobs VALUES (?, 'pending', ?, ?)", (job_id, json.dumps(params), event.created_at)
                )
            await self.db.execute("UPDATE jobs SET status = 'running' WHERE job_id = ?", (job_id,))
            await outbox.put(self.db, self._job_event(job_id, "running", event.created_at, params))
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
        outputs: list[str] = []
        error = ""
        try:
            raw_paths = params.get("ms_paths", [])
            ms_paths = [str(p) for p in raw_paths] if isinstance(raw_paths, list) else []
            if not ms_paths:
                raise work.ParameterError("the job names no Measurement Sets")
            job_params = {k: v for k, v in params.items() if k in work.JOB_PARAMETERS}
            fields = work.imaging_params(self.defaults, job_params)
            for ms in ms_paths:
                if not os.path.isdir(ms):
                    raise FileNotFoundError(f"Measurement Set {ms} does not exist")
                mjd = await self.run_thread(_ms_mid_mjd, ms)
                calsets = await self.run_thread(
                    applycal.choose_calsets, os.fspath(self.settings.calset_dir), mjd, self.settings.cal_max_sep_hours
                )
                if not calsets:
                    raise NoCalibrationError(
                        f"{os.path.basename(ms)}: no calibration set within {self.settings.cal_max_sep_hours:g} h"
                    )
                name = os.path.splitext(os.path.basename(ms.rstrip("/")))[0]
                out = work.image_path(self.settings.image_dir, name, job_id)
                r = await self.run_cpu(work.image_ms, ms, calsets, out, fields)
                outputs.append(r["path"])
        except Exception as exc:  # a job ends, failed with its reason, whatever went wrong in it
            error = f"{type(exc).__name__}: {exc}"
        status = "failed" if error else "completed"
        async with self.lock:
            await self.db.execute("UPDATE jobs SET status = ? WHERE job_id = ?", (status, job_id))
            await outbox.put(
                self.db,
                self._job_event(
                    job_id, status, event.created_at, params, completed_at=_now(), error=error, outputs=outputs
                ),
            )
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
        self.log.info("image job finished", job_id=job_id, status=status, error=error, images=len(outputs))



def _ms_mid_mjd(ms: str) -> float:
    import casacore.tables as ct
    import numpy as np

    with ct.table(ms, ack=False) as t:
        times = np.unique(t.getcol("TIME"))
    if times.size == 0:
        raise MeasurementSetError(f"Measurement Set {ms} has no rows")
    return float(0.5 * (times[0] + times[-1]) / 86400.0)
