"""Operations read models: dead letters (what the alerter and ops look at first)."""

from __future__ import annotations

import aiosqlite

from schemas.base import iso
from schemas.ops import DeadLettered
from web.projections.store import ddl, projects

ddl(
    """CREATE TABLE IF NOT EXISTS dead_letters (
        id TEXT PRIMARY KEY, consumer TEXT NOT NULL, original_subject TEXT NOT NULL, original_seq INTEGER NOT NULL,
        deliveries INTEGER NOT NULL, reason TEXT NOT NULL, time TEXT NOT NULL)""",
)


@projects(DeadLettered, topics=("ops",))
async def project_dead_letter(db: aiosqlite.Connection, e: DeadLettered, seq: int) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO dead_letters VALUES (?,?,?,?,?,?,?)",
        (e.id, e.consumer, e.original_subject, e.original_seq, e.deliveries, e.reason, iso(e.time)),
    )
