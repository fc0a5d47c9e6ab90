"""The mosaicker: hourly mosaics from 12 consecutive tiles, and mosaics on request.

State (``DATA/mosaicker/state.sqlite``): every image it has seen (from ``dsa.image.ready``: path,
MJD, pointing, noise), the jobs, and an outbox of events (see ``actors/outbox.py``).

Every mosaic is a *job*, and a job is started by its own ``dsa.job.updated`` event with status
``pending`` (``job_type = "mosaic"``), which this actor also consumes. So the work itself is
durable: if the process dies mid-mosaic, JetStream redelivers the pending event to another
instance, and a job already completed is not redone (jobs are keyed by id, output paths are
deterministic and written atomically).

* **Hourly.** On each image the unassigned images are split into runs of consecutive tiles
  (``linear.hourly_groups``: no gap over 10 min, one declination strip); each complete group of
  12 is assigned to a job ``mosaic_hourly_<name>`` in the same transaction that queues its pending
  event, so a tile is never in two hourly mosaics and a redelivered image starts nothing new.
* **On request.** ``cmd.mosaicker.generate`` (from ``POST /api/mosaics/generate`` or ``GET
  /api/mosaics/query``) allocates ``mosaic_YYYYMMDD_NNN`` (a per-UTC-day counter), queues the
  pending event and answers with the id. The tiles are the images of the window when the job runs.

A job then publishes ``running``, builds the mosaic in the process pool (``jobs.build_mosaic``:
FITS, noise map and PNG thumbnail under ``DATA/mosaics``), and publishes ``dsa.mosaic.ready``
(n_images, n_sources, noise_jy) and ``completed`` — or ``failed`` with the reason when the inputs
cannot be mosaicked (no tiles in the window, unreadable files).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from actors import outbox, pipeline_jobs
from actors.mosaicker import commands, jobs
from actors.mosaicker.linear import MosaicError, hourly_groups, mosaic_name
from actors.runtime import Actor
from astro.restored_image import ImageError, read_pointing
from bus.request import CommandError, serve
from schemas.base import Event, iso
from schemas.dsa import ImageReady, MosaicReady, PipelineJobUpdated

HOURLY_TILES = 12

DDL = (
    """CREATE TABLE IF NOT EXISTS images (
        path TEXT PRIMARY KEY, mjd REAL NOT NULL, ra_deg REAL NOT NULL, dec_deg REAL NOT NULL,
        noise_jy REAL NOT NULL, hourly_job TEXT)""",
    "CREATE INDEX IF NOT EXISTS images_mjd ON images(mjd)",
    "CREATE INDEX IF NOT EXISTS images_unassigned ON images(hourly_job, mjd)",
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    pipeline_jobs.DDL,
)


@dataclass(frozen=True, slots=True)
class _Img:
    path: str
    mjd: float
    dec_deg: float
    noise_jy: float


def _now() -> str:
    return iso(datetime.now(UTC))


class MosaickerActor(Actor):
    role = "mosaicker"
    consumes: ClassVar[tuple[type[Event], ...]] = (ImageReady, PipelineJobUpdated)
    publishes: ClassVar[tuple[type[Event], ...]] = (PipelineJobUpdated, MosaicReady)
    #: a long mosaic must not hold up the recording of new images (or another job)
    concurrency = 3

    async def setup(self) -> None:
        self.db = await self.open_state(DDL)
        self.lock = asyncio.Lock()
        self._sub = await serve(self.bus.nc, commands.GENERATE, commands.QUEUE, commands.Generate, self.generate)

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        await self.db.close()

    async def handle(self, event: Event) -> None:
        if isinstance(event, ImageReady):
            await self._on_image(event)
        elif isinstance(event, PipelineJobUpdated) and event.job_type == "mosaic" and event.status == "pending":
            await self._run_job(event)


    def _job_event(self, job_id: str, status: str, created_at: str, params: dict[str, Any], **kw: Any) -> Event:
        return pipeline_jobs.job_event(self.role, "mosaic", job_id, status, created_at, params, **kw)

    # -- images and hourly groups --------------------------------------------------------------
    async def _on_image(self, event: ImageReady) -> None:
        pointing = await self.run_thread(read_pointing, event.path)
        async with self.lock:
            await self.db.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,NULL)",
                (event.path, event.mjd, pointing.ra_deg, pointing.dec_deg, event.noise_jy),
            )
            free = [
                _Img(r[0], r[1], r[2], r[3])
                for r in await self.db.execute_fetchall(
                    "SELECT path, mjd, dec_deg, noise_jy FROM images WHERE hourly_job IS NULL ORDER BY mjd"
                )
            ]
            for group in hourly_groups(free, HOURLY_TILES):
                name = mosaic_name(group[0].mjd, group[-1].mjd)
                job_id = f"mosaic_hourly_{name}"
                params: dict[str, Any] = {
                    "kind": "hourly",
                    "name": name,
                    "start_mjd": group[0].mjd,
                    "end_mjd": group[-1].mjd,
                    "images": [g.path for g in group],
                }
                created = _now()
                await self.db.executemany(
                    "UPDATE images SET hourly_job = ? WHERE path = ?", [(job_id, g.path) for g in group]
                )
                await self.db.execute(
                    "INSERT OR IGNORE INTO jobs VALUES (?, 'hourly', 'pending', ?, ?)",
                    (job_id, json.dumps(params), created),
                )
                await outbox.put(self.db, self._job_event(job_id, "pending", created, params))
                self.log.info("hourly mosaic queued", job_id=job_id, tiles=len(group))
            await self.db.commit()
            await outbox.flush(self.db, self.bus)

    # -- requests ------------------------------------------------------------------------------
    async def generate(self, cmd: commands.Generate) -> dict[str, Any]:
        if not cmd.start_mjd < cmd.end_mjd:
            raise CommandError(422, "start_mjd must be before end_mjd", "VALIDATION_ERROR")
        now = datetime.now(UTC)
        params: dict[str, Any] = {
            "kind": "request",
            "start_mjd": cmd.start_mjd,
            "end_mjd": cmd.end_mjd,
            "dec_min": cmd.dec_min,
            "dec_max": cmd.dec_max,
            "operator": cmd.operator,
        }
        async with self.lock:
            job_id = await pipeline_jobs.next_job_id(self.db, "mosaic", now)
            created = iso(now)
            await self.db.execute(
                "INSERT INTO jobs VALUES (?, 'request', 'pending', ?, ?)", (job_id, json.dumps(params), created)
            )
            ev = self._job_event(job_id, "pending", created, params)
            await outbox.put(self.db, ev)
            await self.db.commit()
            seqs = await outbox.flush(self.db, self.bus)
        self.log.info("mosaic job created", job_id=job_id, operator=cmd.operator)
        return {"job_id": job_id, "seq": seqs.get(ev.id, 0)}

    # -- jobs ----------------------------------------------------------------------------------
    async def _run_job(self, event: PipelineJobUpdated) -> None:
        job_id = event.job_id
        params = dict(event.parameters)
        async with self.lock:
            rows = list(await self.db.execute_fetchall("SELECT status FROM jobs WHERE job_id = ?", (job_id,)))
            if rows and rows[0][0] in ("completed", "failed"):
                return
            if not rows:  # a job another client published straight to the stream
                await self.db.execute(
                    "INSERT INTO jobs VALUES (?, ?, 'pending', ?, ?)",
                    (job_id, str(params.get("kind", "request")), json.dumps(params), event.created_at),
                )
            await self.db.execute("UPDATE jobs SET status = 'running' WHERE job_id = ?", (job_id,))
            await outbox.put(self.db, self._job_event(job_id, "running", event.created_at, params))
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
            tiles = await self._tiles(params)
        kind = "hourly" if params.get("kind") == "hourly" else "request"
        name = str(params.get("name") or job_id)
        try:
            if not tiles:
                raise MosaicError("no images in the requested time and declination range")
            products = await self.run_cpu(
                jobs.build_mosaic,
                [t.path for t in tiles],
                [t.noise_jy for t in tiles],
                str(self.settings.mosaic_dir),
                name,
            )
        except (MosaicError, ImageError, OSError) as exc:
            await self._finish(job_id, event.created_at, params, None, f"{type(exc).__name__}: {exc}")
            return
        ready = MosaicReady(
            name=products["name"],
            path=products["path"],
            start_mjd=products["start_mjd"],
            end_mjd=products["end_mjd"],
            n_images=products["n_images"],
            n_sources=products["n_sources"],
            noise_jy=products["noise_jy"],
            thumbnail_path=products["thumbnail_path"],
            noise_path=products["noise_path"],
            job_id=job_id,
            kind=kind,
            dec_min_deg=products["dec_min_deg"],
            dec_max_deg=products["dec_max_deg"],
            producer=self.role,
            correlation_id=job_id,
        )
        await self._finish(job_id, event.created_at, params, ready, "")
        self.log.info("mosaic written", job_id=job_id, path=ready.path, n_images=ready.n_images)

    async def _tiles(self, params: dict[str, Any]) -> list[_Img]:
        if params.get("kind") == "hourly":
            paths = [str(p) for p in params.get("images", [])]  # type: ignore[union-attr]
            marks = ",".join("?" * len(paths))
            rows = await self.db.execute_fetchall(
                f"SELECT path, mjd, dec_deg, noise_jy FROM images WHERE path IN ({marks}) ORDER BY mjd",  # noqa: S608
                tuple(paths),
            )
        else:
            sql = "SELECT path, mjd, dec_deg, noise_jy FROM images WHERE mjd >= ? AND mjd <= ?"
            args: list[Any] = [float(params["start_mjd"]), float(params["end_mjd"])]
            if params.get("dec_min") is not None:
                sql += " AND dec_deg >= ?"
                args.append(float(params["dec_min"]))
            if params.get("dec_max") is not None:
                sql += " AND dec_deg <= ?"
                args.append(float(params["dec_max"]))
            rows = await self.db.execute_fetchall(sql + " ORDER BY mjd", tuple(args))
        return [_Img(r[0], r[1], r[2], r[3]) for r in rows]

    async def _finish(
        self, job_id: str, created_at: str, params: dict[str, Any], ready: MosaicReady | None, error: str
    ) -> None:
        status = "completed" if ready is not None else "failed"
        async with self.lock:
            await self.db.execute("UPDATE jobs SET status = ? WHERE job_id = ?", (status, job_id))
            if ready is not None:
                await outbox.put(self.db, ready)
            await outbox.put(
                self.db,
                self._job_event(job_id, status, created_at, params, completed_at=_now(), error=error),
            )
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
        if error:
            self.log.warning("mosaic job failed", job_id=job_id, error=error)
