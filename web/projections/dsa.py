"""DSA-110 read models: the processing queue, calibration sets and Measurement Sets."""

from __future__ import annotations

from typing import Any

import aiosqlite

from schemas.base import iso
from schemas.dsa import (
    CalibrationSetSolved,
    GroupUpdated,
    MeasurementSetWritten,
    StreamingConfigured,
    StreamingStateChanged,
)
from web.projections.store import ProjectionStore, ddl, projects

ddl(
    """CREATE TABLE IF NOT EXISTS groups (
        group_id TEXT PRIMARY KEY, state TEXT NOT NULL, subbands_present INTEGER NOT NULL,
        expected_subbands INTEGER NOT NULL, has_calibrator INTEGER NOT NULL, reason TEXT NOT NULL,
        updated_at TEXT NOT NULL, seq INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS groups_state ON groups(state)",
    """CREATE TABLE IF NOT EXISTS calibration_sets (
        cal_group_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, num_targets INTEGER NOT NULL,
        path TEXT NOT NULL, valid_from_mjd REAL NOT NULL, valid_to_mjd REAL NOT NULL, calibrator TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS measurement_sets (
        path TEXT PRIMARY KEY, group_id TEXT NOT NULL, stage TEXT NOT NULL, status TEXT NOT NULL,
        mid_mjd REAL NOT NULL, field_name TEXT NOT NULL, updated_at TEXT NOT NULL)""",
)

QUEUE_STATES = ("pending", "in_progress", "completed", "failed", "collecting")


@projects(GroupUpdated)
async def project_group(db: aiosqlite.Connection, e: GroupUpdated, seq: int) -> None:
    await db.execute(
        """INSERT INTO groups VALUES (?,?,?,?,?,?,?,?)
           ON CONFLICT(group_id) DO UPDATE SET state=excluded.state, subbands_present=excluded.subbands_present,
             expected_subbands=excluded.expected_subbands, has_calibrator=excluded.has_calibrator,
             reason=excluded.reason, updated_at=excluded.updated_at, seq=excluded.seq""",
        (
            e.group_id,
            e.state,
            e.subbands_present,
            e.expected_subbands,
            int(e.has_calibrator),
            e.reason,
            iso(e.time),
            seq,
        ),
    )


@projects(CalibrationSetSolved)
async def project_calibration_set(db: aiosqlite.Connection, e: CalibrationSetSolved, seq: int) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO calibration_sets VALUES (?,?,?,?,?,?,?)",
        (e.cal_group_id, e.created_at, e.num_targets, e.path, e.valid_from_mjd, e.valid_to_mjd, e.calibrator),
    )


@projects(MeasurementSetWritten)
async def project_ms(db: aiosqlite.Connection, e: MeasurementSetWritten, seq: int) -> None:
    await db.execute(
        """INSERT INTO measurement_sets VALUES (?,?,?,?,?,?,?)
           ON CONFLICT(path) DO UPDATE SET stage=excluded.stage, status=excluded.status,
             mid_mjd=excluded.mid_mjd, field_name=excluded.field_name, updated_at=excluded.updated_at""",
        (e.path, e.group_id, e.stage, e.status, e.mid_mjd, e.field_name, iso(e.time)),
    )


async def pipeline_status(store: ProjectionStore) -> dict[str, Any]:
    """The body of ``GET /api/status``, exactly as seed 000 shows it (three reads of one batch)."""
    async with store.consistent():
        return await _pipeline_status(store)


async def _pipeline_status(store: ProjectionStore) -> dict[str, Any]:
    counts = {state: 0 for state in QUEUE_STATES}
    for row in await store.fetchall("SELECT state, COUNT(*) FROM groups GROUP BY state"):
        if row[0] in counts:
            counts[row[0]] = row[1]
    queue = {"total": sum(counts.values()), **counts}
    # Seed 000's three fields, then the validity window and calibrator the dashboard shows.
    cal_sets = [
        {
            "cal_group_id": r[0],
            "created_at": r[1],
            "num_targets": r[2],
            "valid_from_mjd": r[3],
            "valid_to_mjd": r[4],
            "calibrator": r[5],
        }
        for r in await store.fetchall(
            "SELECT cal_group_id, created_at, num_targets, valid_from_mjd, valid_to_mjd, calibrator "
            "FROM calibration_sets ORDER BY created_at DESC LIMIT 50"
        )
    ]
    recent = [
        {
            "group_id": r[0],
            "state": r[1],
            "subbands_present": r[2],
            "expected_subbands": r[3],
            "has_calibrator": bool(r[4]),
        }
        for r in await store.fetchall(
            "SELECT group_id, state, subbands_present, expected_subbands, has_calibrator FROM groups "
            "ORDER BY group_id DESC LIMIT 20"
        )
    ]
    return {"queue": queue, "calibration_sets": cal_sets, "recent_groups": recent}


# -- the streaming service (the watcher): its configuration, its ingestion state, the MS list ------
ddl(
    """CREATE TABLE IF NOT EXISTS streaming_config (
        id INTEGER PRIMARY KEY CHECK (id = 1), input_dir TEXT NOT NULL, output_dir TEXT NOT NULL,
        batch_size INTEGER NOT NULL, poll_interval REAL NOT NULL, source TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS streaming_state (
        instance TEXT PRIMARY KEY, running INTEGER NOT NULL, action TEXT NOT NULL, pid INTEGER NOT NULL,
        host TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL, seq INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS measurement_sets_mjd ON measurement_sets(mid_mjd)",
)


@projects(StreamingConfigured)
async def project_streaming_config(db: aiosqlite.Connection, e: StreamingConfigured, seq: int) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO streaming_config VALUES (1,?,?,?,?,?,?)",
        (e.input_dir, e.output_dir, e.batch_size, e.poll_interval, e.source, iso(e.time)),
    )


@projects(StreamingStateChanged)
async def project_streaming_state(db: aiosqlite.Connection, e: StreamingStateChanged, seq: int) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO streaming_state VALUES (?,?,?,?,?,?,?,?)",
        (e.instance, int(e.running), e.action, e.pid, e.host, e.started_at, iso(e.time), seq),
    )


async def streaming_config(store: ProjectionStore) -> dict[str, Any] | None:
    row = await store.fetchone("SELECT input_dir, output_dir, batch_size, poll_interval FROM streaming_config")
    if row is None:
        return None
    return {"input_dir": row[0], "output_dir": row[1], "batch_size": row[2], "poll_interval": row[3]}


async def streaming_states(store: ProjectionStore) -> list[dict[str, Any]]:
    """The last ingestion state of every watcher instance, most recent first."""
    return [
        {"instance": r[0], "running": bool(r[1]), "action": r[2], "pid": r[3], "started_at": r[4], "updated_at": r[5]}
        for r in await store.fetchall(
            "SELECT instance, running, action, pid, started_at, updated_at FROM streaming_state ORDER BY seq DESC"
        )
    ]


async def queue_stats(store: ProjectionStore) -> dict[str, int]:
    """The streaming service's queue: groups not finished (collecting, pending, in progress)."""
    counts = dict.fromkeys(("collecting", "pending", "in_progress"), 0)
    for row in await store.fetchall(
        "SELECT state, COUNT(*) FROM groups WHERE state IN ('collecting','pending','in_progress') GROUP BY state"
    ):
        counts[row[0]] = row[1]
    return {"total": sum(counts.values()), "pending": counts["pending"], "processing": counts["in_progress"]}


async def ms_list(
    store: ProjectionStore, stage: str | None, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Measurement Sets, newest (by mid MJD) first, with the seed's fields."""
    where, args = [], []
    if stage:
        where.append("stage = ?")
        args.append(stage)
    if status:
        where.append("status = ?")
        args.append(status)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    async with store.consistent():
        total_row = await store.fetchone(f"SELECT COUNT(*) FROM measurement_sets{clause}", tuple(args))  # noqa: S608
        rows = await store.fetchall(
            f"SELECT path, stage, status, mid_mjd, field_name FROM measurement_sets{clause} "  # noqa: S608
            "ORDER BY mid_mjd DESC, path LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
    items = [{"path": r[0], "stage": r[1], "status": r[2], "mid_mjd": r[3], "field_name": r[4]} for r in rows]
    return items, int(total_row[0]) if total_row else 0
