"""Pipeline control jobs, shared by the actors that run them (imager, mosaicker).

A job id is ``<prefix>_YYYYMMDD_NNN`` from a per-UTC-day counter kept in the running actor's own
state, as seed 000 shows them (``job_20251024_001``, ``mosaic_20251024_001``); a job's life is a
series of ``dsa.job.updated`` events, each carrying the whole job so a projection is one upsert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from schemas.dsa import PipelineJobUpdated

DDL = "CREATE TABLE IF NOT EXISTS day_counters (day TEXT PRIMARY KEY, n INTEGER NOT NULL)"


async def next_job_id(db: aiosqlite.Connection, prefix: str, now: datetime) -> str:
    """The next id of the UTC day of ``now`` (inside the caller's transaction)."""
    day = now.strftime("%Y%m%d")
    await db.execute("INSERT INTO day_counters VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET n = n + 1", (day,))
    async with db.execute("SELECT n FROM day_counters WHERE day = ?", (day,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    return f"{prefix}_{day}_{int(row[0]):03d}"


def job_event(
    producer: str, job_type: str, job_id: str, status: str, created_at: str, params: dict[str, Any], **kw: Any
) -> PipelineJobUpdated:
    return PipelineJobUpdated(
        job_id=job_id,
        job_type=job_type,
        status=status,
        created_at=created_at,
        parameters=params,
        producer=producer,
        correlation_id=job_id,
        **kw,
    )
