"""Control jobs of every type (image, mosaic, ...) from ``dsa.job.updated``: the read model of
``GET /api/control/jobs``.

One keyed upsert per event (the event carries the whole job), so a replayed or duplicated event
cannot leave a job half-updated. A job's row never goes back from a final state: a late
``running`` redelivered after ``completed`` is ignored.
"""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from schemas.dsa import PipelineJobUpdated
from web.projections.store import ProjectionStore, ddl, projects

ddl(
    """CREATE TABLE IF NOT EXISTS pipeline_jobs (
        job_id TEXT PRIMARY KEY, job_type TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
        completed_at TEXT, parameters TEXT NOT NULL, error TEXT NOT NULL, outputs TEXT NOT NULL,
        seq INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS pipeline_jobs_status ON pipeline_jobs(status, created_at)",
    "CREATE INDEX IF NOT EXISTS pipeline_jobs_created ON pipeline_jobs(created_at)",
)

FINAL = ("completed", "failed")
JOB_STATUSES = ("pending", "running", "completed", "failed")


@projects(PipelineJobUpdated, topics=("status", "jobs"))
async def project_job(db: aiosqlite.Connection, e: PipelineJobUpdated, seq: int) -> None:
    await db.execute(
        """INSERT INTO pipeline_jobs VALUES (?,?,?,?,?,?,?,?,?)
           ON CONFLICT(job_id) DO UPDATE SET job_type=excluded.job_type, status=excluded.status,
             completed_at=excluded.completed_at, parameters=excluded.parameters, error=excluded.error,
             outputs=excluded.outputs, seq=excluded.seq
           WHERE pipeline_jobs.status NOT IN ('completed', 'failed') OR excluded.status IN ('completed', 'failed')""",
        (
            e.job_id,
            e.job_type,
            e.status,
            e.created_at,
            e.completed_at,
            json.dumps(e.parameters, default=str),
            e.error,
            json.dumps(e.outputs),
            seq,
        ),
    )


async def list_jobs(
    store: ProjectionStore, status: str | None = None, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """The body of ``GET /api/control/jobs`` (seed 000): newest first."""
    where, args = ("WHERE status = ?", (status,)) if status else ("", ())
    async with store.consistent():
        total_row = await store.fetchone(f"SELECT COUNT(*) FROM pipeline_jobs {where}", args)  # noqa: S608
        rows = await store.fetchall(
            f"SELECT job_id, job_type, status, created_at, completed_at FROM pipeline_jobs {where} "  # noqa: S608
            "ORDER BY created_at DESC, job_id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
    jobs = [{"job_id": r[0], "job_type": r[1], "status": r[2], "created_at": r[3], "completed_at": r[4]} for r in rows]
    return {"jobs": jobs, "total": int(total_row[0]) if total_row else 0, "limit": limit, "offset": offset}
