"""DSA-110 read models: the processing queue, calibration sets and Measurement Sets."""

from __future__ import annotations

from typing import Any

import aiosqlite

from schemas.base import iso
from schemas.dsa import CalibrationSetSolved, GroupUpdated, MeasurementSetWritten
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
    """The body of ``GET /api/status``, exactly as seed 000 shows it."""
    counts = {state: 0 for state in QUEUE_STATES}
    for row in await store.fetchall("SELECT state, COUNT(*) FROM groups GROUP BY state"):
        if row[0] in counts:
            counts[row[0]] = row[1]
    queue = {"total": sum(counts.values()), **counts}
    cal_sets = [
        {"cal_group_id": r[0], "created_at": r[1], "num_targets": r[2]}
        for r in await store.fetchall(
            "SELECT cal_group_id, created_at, num_targets FROM calibration_sets ORDER BY created_at DESC LIMIT 50"
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
