"""SETI read models: users and key hashes (for authentication), jobs, exports, usage and reports.

The edge authenticates every request from ``seti_keys`` here, never by asking the quota keeper, so
a revocation takes effect on each edge process as soon as it has applied ``seti.key.revoked``.
Usage is counted from ``seti.job.submitted`` the same way the quota keeper counts it (one per job,
in the UTC month of ``created_at``), so ``GET /usage`` is a read of this projection too.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

import aiosqlite

from schemas.seti import (
    CadenceSubmitted,
    ExportsExpired,
    ExportsWritten,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobsPruned,
    JobSubmitted,
    KeyCreated,
    KeyRevoked,
    ReportSubmitted,
    UserUpdated,
)
from web.projections.store import ddl, projects

ddl(
    """CREATE TABLE IF NOT EXISTS seti_users (
        user_id TEXT PRIMARY KEY, email TEXT NOT NULL, tier TEXT NOT NULL, role TEXT NOT NULL,
        created_at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS seti_keys (
        key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, key_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS seti_keys_hash ON seti_keys(key_hash)",
    "CREATE INDEX IF NOT EXISTS seti_keys_user ON seti_keys(user_id)",
    """CREATE TABLE IF NOT EXISTS seti_jobs (
        job_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, status TEXT NOT NULL, source_name TEXT NOT NULL,
        filename TEXT NOT NULL, file_key TEXT NOT NULL, file_size INTEGER NOT NULL, created_at INTEGER NOT NULL,
        completed_at INTEGER, percent REAL NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT '',
        coarse_done INTEGER NOT NULL DEFAULT 0, coarse_total INTEGER NOT NULL DEFAULT 0, results TEXT,
        error TEXT, max_drift REAL NOT NULL, min_snr REAL NOT NULL, exports_expired INTEGER NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS seti_jobs_user ON seti_jobs(user_id, created_at)",
    """CREATE TABLE IF NOT EXISTS seti_exports (
        job_id TEXT NOT NULL, format TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (job_id, format))""",
    """CREATE TABLE IF NOT EXISTS seti_usage (
        user_id TEXT NOT NULL, month TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (user_id, month))""",
    """CREATE TABLE IF NOT EXISTS seti_reports (
        report_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, job_id TEXT NOT NULL, error_type TEXT NOT NULL,
        description TEXT NOT NULL, metadata TEXT NOT NULL, created_at TEXT NOT NULL)""",
)

NO_TOPICS: tuple[str, ...] = ()

#: Called with a job id after a projection below changed that job's row or exports (inside the
#: batch's transaction, on the edge's own connection). The per-job live views
#: (``web.routes.seti_live``) listen here; a listener must be quick and must not raise.
job_listeners: list[Callable[[str], None]] = []


def _job_changed(*job_ids: str) -> None:
    for listener in list(job_listeners):
        for job_id in job_ids:
            with contextlib.suppress(Exception):
                listener(job_id)


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


@projects(UserUpdated, topics=NO_TOPICS)
async def project_user(db: aiosqlite.Connection, e: UserUpdated, seq: int) -> None:
    await db.execute(
        """INSERT INTO seti_users VALUES (?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET
             email=excluded.email, tier=excluded.tier, role=excluded.role""",
        (e.user_id, e.email, e.tier, e.role, e.created_at),
    )


@projects(KeyCreated, topics=NO_TOPICS)
async def project_key_created(db: aiosqlite.Connection, e: KeyCreated, seq: int) -> None:
    await db.execute(
        "INSERT OR IGNORE INTO seti_keys VALUES (?,?,?,?,?,?,NULL)",
        (e.key_id, e.user_id, e.name, e.key_hash, e.created_at, e.expires_at),
    )


@projects(KeyRevoked, topics=NO_TOPICS)
async def project_key_revoked(db: aiosqlite.Connection, e: KeyRevoked, seq: int) -> None:
    await db.execute(
        "UPDATE seti_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (e.revoked_at, e.key_id)
    )


@projects(JobSubmitted, topics=NO_TOPICS)
async def project_job_submitted(db: aiosqlite.Connection, e: JobSubmitted, seq: int) -> None:
    cur = await db.execute(
        """INSERT OR IGNORE INTO seti_jobs (job_id, user_id, status, source_name, filename, file_key, file_size,
             created_at, max_drift, min_snr, seq) VALUES (?,?,'submitted',?,?,?,?,?,?,?,?)""",
        (
            e.job_id,
            e.user_id,
            e.source_name,
            e.filename,
            e.file_key,
            e.file_size,
            e.created_at,
            e.max_drift,
            e.min_snr,
            seq,
        ),
    )
    if cur.rowcount:
        await db.execute(
            "INSERT INTO seti_usage VALUES (?,?,1) ON CONFLICT(user_id, month) DO UPDATE SET count=count+1",
            (e.user_id, month_of(e.created_at)),
        )
    _job_changed(e.job_id)


@projects(CadenceSubmitted, topics=NO_TOPICS)
async def project_cadence_submitted(db: aiosqlite.Connection, e: CadenceSubmitted, seq: int) -> None:
    """A cadence is a job of its own (its events), shown and downloaded like any; its files' searches
    are the jobs that count toward usage, so the cadence itself does not."""
    await db.execute(
        """INSERT OR IGNORE INTO seti_jobs (job_id, user_id, status, source_name, filename, file_key, file_size,
             created_at, max_drift, min_snr, seq) VALUES (?,?,'processing',?,?,?,?,?,?,?,?)""",
        (
            e.cadence_id,
            e.user_id,
            e.source_name,
            f"cadence of {len(e.job_ids)} files: " + ", ".join(e.filenames),
            "",
            0,
            e.created_at,
            e.max_drift,
            e.min_snr,
            seq,
        ),
    )
    _job_changed(e.cadence_id)


@projects(JobProgressed, topics=NO_TOPICS)
async def project_job_progressed(db: aiosqlite.Connection, e: JobProgressed, seq: int) -> None:
    await db.execute(
        """UPDATE seti_jobs SET status='processing', percent=?, stage=?, coarse_done=?, coarse_total=?, seq=?
           WHERE job_id=? AND (status='submitted' OR (status='processing' AND percent<=?))""",
        # never backwards: a redelivered job's new searcher starts again at 0 %, and the user was
        # already shown more; its progress shows again once it passes what was shown
        (e.percent, e.stage, e.coarse_channels_done, e.coarse_channels_total, seq, e.job_id, e.percent),
    )
    _job_changed(e.job_id)


@projects(JobCompleted, topics=NO_TOPICS)
async def project_job_completed(db: aiosqlite.Connection, e: JobCompleted, seq: int) -> None:
    await db.execute(
        """UPDATE seti_jobs SET status='complete', completed_at=?, results=?, error=NULL, percent=100, seq=?
           WHERE job_id=?""",
        (e.completed_at, json.dumps(e.results), seq, e.job_id),
    )
    _job_changed(e.job_id)


@projects(JobFailed, topics=NO_TOPICS)
async def project_job_failed(db: aiosqlite.Connection, e: JobFailed, seq: int) -> None:
    async with db.execute("SELECT status, user_id, created_at FROM seti_jobs WHERE job_id=?", (e.job_id,)) as cur:
        before = await cur.fetchone()
    await db.execute(
        "UPDATE seti_jobs SET status='failed', completed_at=?, error=?, seq=? WHERE job_id=? AND status!='complete'",
        (e.completed_at, e.error, seq, e.job_id),
    )
    if not e.charged and before is not None and before[0] not in ("complete", "failed"):
        # failed by the service: the file is given back (once: the job is failed from now on)
        await db.execute(
            "UPDATE seti_usage SET count=MAX(count-1, 0) WHERE user_id=? AND month=?",
            (before[1], month_of(before[2])),
        )
    _job_changed(e.job_id)


@projects(ExportsWritten, topics=NO_TOPICS)
async def project_exports(db: aiosqlite.Connection, e: ExportsWritten, seq: int) -> None:
    await db.executemany(
        "INSERT OR REPLACE INTO seti_exports VALUES (?,?,?)", [(e.job_id, fmt, key) for fmt, key in e.keys.items()]
    )
    _job_changed(e.job_id)


@projects(ExportsExpired, topics=NO_TOPICS)
async def project_exports_expired(db: aiosqlite.Connection, e: ExportsExpired, seq: int) -> None:
    await db.execute("DELETE FROM seti_exports WHERE job_id=?", (e.job_id,))
    await db.execute("UPDATE seti_jobs SET exports_expired=1 WHERE job_id=?", (e.job_id,))
    _job_changed(e.job_id)


@projects(JobsPruned, topics=NO_TOPICS)
async def project_jobs_pruned(db: aiosqlite.Connection, e: JobsPruned, seq: int) -> None:
    ids = [(j,) for j in e.job_ids]
    await db.executemany("DELETE FROM seti_jobs WHERE job_id=?", ids)
    await db.executemany("DELETE FROM seti_exports WHERE job_id=?", ids)
    _job_changed(*e.job_ids)


@projects(ReportSubmitted, topics=NO_TOPICS)
async def project_report(db: aiosqlite.Connection, e: ReportSubmitted, seq: int) -> None:
    await db.execute(
        "INSERT OR IGNORE INTO seti_reports VALUES (?,?,?,?,?,?,?)",
        (
            e.report_id,
            e.user_id,
            e.job_id,
            e.error_type,
            e.description,
            json.dumps(e.metadata),
            e.time.isoformat(),
        ),
    )
