"""One quota keeper's local state: users, keys and job history, in SQLite under its data dir.

This is a projection, not the authority: users and keys are followed from the stream
(``directory``), so every keeper has all of them; the job history (for pruning and result
retention) comes from the events this instance consumes. The counters admission checks (the
month's count, the running jobs, Idempotency-Keys) live in JetStream KV (``counters``), shared by
every keeper. The ``usage``, ``admissions`` and ``unstored`` tables of older ledgers are no longer
read.

Every method runs under one lock and every write in one ``BEGIN IMMEDIATE`` transaction. The lock
serialises coroutines on the single connection (aiosqlite would otherwise interleave statements of
two transactions).

Usage is counted per UTC calendar month (``YYYY-MM``), so it resets by itself on the 1st.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS users (
        user_id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, tier TEXT NOT NULL, role TEXT NOT NULL,
        created_at INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS keys (
        key_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, revoked_at INTEGER)""",
    """CREATE TABLE IF NOT EXISTS usage (
        user_id TEXT NOT NULL, month TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (user_id, month))""",
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, file_key TEXT NOT NULL, created_at INTEGER NOT NULL,
        state TEXT NOT NULL, finished_at INTEGER, pruned INTEGER NOT NULL DEFAULT 0,
        exports TEXT NOT NULL DEFAULT '{}', exports_removed INTEGER NOT NULL DEFAULT 0,
        refunded INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS jobs_user ON jobs(user_id, state)",
    """CREATE TABLE IF NOT EXISTS admissions (
        user_id TEXT NOT NULL, request_id TEXT NOT NULL, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, request_id))""",
    # jobs admitted here whose seti.job.submitted this keeper has not yet seen in the stream, with
    # the event's bytes: a keeper killed between counting a job and storing its event leaves one
    """CREATE TABLE IF NOT EXISTS unstored (
        job_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, event BLOB NOT NULL)""",
)


class LedgerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    tier: str
    role: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Key:
    key_id: str
    user_id: str
    name: str
    created_at: int
    expires_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class FinishedJob:
    job_id: str
    user_id: str
    exports: dict[str, str]


def month_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=10000")
        for statement in SCHEMA:
            await self._db.execute(statement)
        async with self._db.execute("PRAGMA table_info(jobs)") as cur:
            columns = {row[1] for row in await cur.fetchall()}
        if "refunded" not in columns:  # ledgers written before failed jobs were refunded
            await self._db.execute("ALTER TABLE jobs ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "ledger not open"
        return self._db

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self._lock, self.db.execute(sql, params) as cur:
            return await cur.fetchone()

    # -- users -------------------------------------------------------------------------------
    async def create_user(self, user_id: str, email: str, tier: str, role: str, now: int) -> User:
        async with self._tx() as db:
            async with db.execute("SELECT 1 FROM users WHERE email=?", (email,)) as cur:
                if await cur.fetchone():
                    raise LedgerError(409, f"a user with email {email!r} already exists")
            await db.execute("INSERT INTO users VALUES (?,?,?,?,?)", (user_id, email, tier, role, now))
        return User(user_id, email, tier, role, now)

    async def user(self, user_id: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE user_id=?", (user_id,))
        return User(*row) if row else None

    async def user_by_email(self, email: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE email=?", (email,))
        return User(*row) if row else None

    async def set_tier(self, email: str, tier: str) -> User:
        async with self._tx() as db:
            await db.execute("UPDATE users SET tier=? WHERE email=?", (tier, email))
            async with db.execute("SELECT * FROM users WHERE email=?", (email,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise LedgerError(404, f"no user with email {email!r}")
        return User(*row)

    # -- keys --------------------------------------------------------------------------------
    async def add_key(self, key: Key, key_hash: str) -> None:
        async with self._tx() as db:
            async with db.execute("SELECT 1 FROM keys WHERE key_id=? OR key_hash=?", (key.key_id, key_hash)) as cur:
                if await cur.fetchone():
                    raise LedgerError(409, "key id already in use; try again")
            await db.execute(
                "INSERT INTO keys VALUES (?,?,?,?,?,?,NULL)",
                (key.key_id, key.user_id, key.name, key_hash, key.created_at, key.expires_at),
            )

    async def key(self, key_id: str) -> Key | None:
        row = await self._one(
            "SELECT key_id, user_id, name, created_at, expires_at, revoked_at FROM keys WHERE key_id=?", (key_id,)
        )
        return Key(*row) if row else None

    async def revoke_key(self, key_id: str, now: int) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL", (now, key_id))

    # -- the projection of the stream's user and key facts (every keeper knows every user) ---
    async def apply_user(self, user: User) -> None:
        """A ``seti.user.updated`` from any keeper: the whole row, upserted by user id."""
        async with self._tx() as db:
            await db.execute(
                "INSERT INTO users VALUES (?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET "
                "email=excluded.email, tier=excluded.tier, role=excluded.role",
                (user.user_id, user.email, user.tier, user.role, user.created_at),
            )

    async def apply_key(self, key: Key, key_hash: str) -> None:
        """A ``seti.key.created`` from any keeper (a repeat of a known key changes nothing)."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO keys VALUES (?,?,?,?,?,?,NULL)",
                (key.key_id, key.user_id, key.name, key_hash, key.created_at, key.expires_at),
            )

    # -- job history -------------------------------------------------------------------------
    async def record_submitted(self, job_id: str, user_id: str, file_key: str, created_at: int) -> bool:
        """A job submitted by any client, in this keeper's history once (False when already known)."""
        async with self._tx() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, user_id, file_key, created_at, state) VALUES (?,?,?,?,'running')",
                (job_id, user_id, file_key, created_at),
            )
            return bool(cur.rowcount)

    async def finish(self, job_id: str, user_id: str, state: str, finished_at: int) -> None:
        """A job completed or failed: it no longer counts as running. Idempotent by job id."""
        async with self._tx() as db:
            await db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, user_id, file_key, created_at, state) VALUES (?,?,'',?,?)",
                (job_id, user_id, finished_at, state),
            )
            await db.execute(
                "UPDATE jobs SET state=?, finished_at=? WHERE job_id=? AND state='running'",
                (state, finished_at, job_id),
            )

    async def record_exports(self, job_id: str, user_id: str, keys: dict[str, str]) -> None:
        async with self._tx() as db:
            async with db.execute("SELECT exports FROM jobs WHERE job_id=?", (job_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                now = int(time.time())
                await db.execute(
                    "INSERT INTO jobs (job_id, user_id, file_key, created_at, state, finished_at, exports) "
                    "VALUES (?,?,'',?,'complete',?,?)",
                    (job_id, user_id, now, now, json.dumps(keys)),
                )
                return
            merged = {**json.loads(row[0]), **keys}
            await db.execute("UPDATE jobs SET exports=? WHERE job_id=?", (json.dumps(merged), job_id))

    async def to_prune(self, user_id: str, history_limit: int) -> list[FinishedJob]:
        """The oldest finished jobs beyond the history limit (running jobs are never pruned)."""
        async with self._lock:
            async with self.db.execute("SELECT COUNT(*) FROM jobs WHERE user_id=? AND pruned=0", (user_id,)) as cur:
                total = int((await cur.fetchone() or (0,))[0])
            excess = total - history_limit
            if excess <= 0:
                return []
            async with self.db.execute(
                "SELECT job_id, user_id, exports FROM jobs WHERE user_id=? AND pruned=0 AND state!='running' "
                "ORDER BY created_at, job_id LIMIT ?",
                (user_id, excess),
            ) as cur:
                rows = await cur.fetchall()
        return [FinishedJob(r[0], r[1], json.loads(r[2])) for r in rows]

    async def mark_pruned(self, job_ids: list[str]) -> None:
        async with self._tx() as db:
            await db.executemany("UPDATE jobs SET pruned=1, exports_removed=1 WHERE job_id=?", [(j,) for j in job_ids])

    async def expired_results(self, now: int, retention_days: dict[str, int]) -> list[FinishedJob]:
        """Finished jobs whose result files are older than their owner's tier keeps them."""
        async with (
            self._lock,
            self.db.execute(
                "SELECT j.job_id, j.user_id, j.exports, j.finished_at, u.tier FROM jobs j JOIN users u USING (user_id) "
                "WHERE j.state!='running' AND j.exports_removed=0 AND j.exports!='{}'"
            ) as cur,
        ):
            rows = await cur.fetchall()
        out = []
        for job_id, user_id, exports, finished_at, tier in rows:
            days = retention_days.get(tier, 0)
            if finished_at is not None and finished_at + days * 86400 < now:
                out.append(FinishedJob(job_id, user_id, json.loads(exports)))
        return out

    async def mark_exports_removed(self, job_id: str) -> None:
        async with self._tx() as db:
            await db.execute("UPDATE jobs SET exports_removed=1 WHERE job_id=?", (job_id,))
