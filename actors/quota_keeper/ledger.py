"""The quota keeper's own state: users, keys, monthly usage and jobs, in SQLite under the data dir.

Every method runs under one lock and every write in one ``BEGIN IMMEDIATE`` transaction. The lock
serialises coroutines on the single connection (aiosqlite would otherwise interleave statements of
two transactions); ``BEGIN IMMEDIATE`` serialises processes, should two quota keepers on one host
share the file. Admission is therefore atomic: check the month's count and the running jobs, then
insert the job and count it, with nothing in between.

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

    # -- admission and jobs ------------------------------------------------------------------
    async def unstored_event(self, job_id: str) -> bytes | None:
        """The encoded seti.job.submitted of a job admitted here and not yet seen in the stream."""
        async with self.db.execute("SELECT event FROM unstored WHERE job_id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return bytes(row[0]) if row else None

    async def unstored_before(self, cutoff: int) -> list[str]:
        async with self.db.execute("SELECT job_id FROM unstored WHERE created_at<?", (cutoff,)) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def admitted(self, user_id: str, request_id: str, since: int) -> str | None:
        """The job an earlier admission of this request made, if it was made after ``since``."""
        if not request_id:
            return None
        async with self.db.execute(
            "SELECT job_id FROM admissions WHERE user_id=? AND request_id=? AND created_at>=?",
            (user_id, request_id, since),
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def admit(
        self,
        user_id: str,
        job_id: str,
        file_key: str,
        now: int,
        files_per_month: int,
        max_running: int,
        request_id: str = "",
        event: bytes = b"",
    ) -> int:
        """Count and record one job, or raise 429. Returns the month's count including it.

        With a ``request_id`` the admission is remembered (one row per user and id, replaced when
        an old one is reused after its window), so a retried request finds its job in ``admitted``.
        """
        month = month_of(now)
        async with self._tx() as db:
            async with db.execute("SELECT count FROM usage WHERE user_id=? AND month=?", (user_id, month)) as cur:
                row = await cur.fetchone()
            used = int(row[0]) if row else 0
            if used >= files_per_month:
                raise LedgerError(
                    429, f"monthly limit reached: {used} of {files_per_month} files this month (resets on the 1st, UTC)"
                )
            async with db.execute("SELECT COUNT(*) FROM jobs WHERE user_id=? AND state='running'", (user_id,)) as cur:
                running = int((await cur.fetchone() or (0,))[0])
            if running >= max_running:
                raise LedgerError(
                    429, f"too many concurrent jobs: {running} running (max {max_running}); wait for one to finish"
                )
            await db.execute(
                "INSERT INTO jobs (job_id, user_id, file_key, created_at, state) VALUES (?,?,?,?,'running')",
                (job_id, user_id, file_key, now),
            )
            await db.execute(
                "INSERT INTO usage VALUES (?,?,1) ON CONFLICT(user_id, month) DO UPDATE SET count=count+1",
                (user_id, month),
            )
            if request_id:
                await db.execute(
                    "INSERT OR REPLACE INTO admissions VALUES (?,?,?,?)", (user_id, request_id, job_id, now)
                )
            if event:
                await db.execute("INSERT OR REPLACE INTO unstored VALUES (?,?,?)", (job_id, now, event))
        return used + 1

    async def admit_many(
        self, user_id: str, jobs: list[tuple[str, str]], now: int, files_per_month: int, max_running: int
    ) -> int:
        """Count and record the searches of a cadence (``(job_id, file_key)`` each) at once, or none and
        raise 429: every file counts toward the month, and the cadence is admitted when a single job
        would be (fewer than ``max_running`` running), since its searches are one request."""
        month = month_of(now)
        async with self._tx() as db:
            async with db.execute("SELECT count FROM usage WHERE user_id=? AND month=?", (user_id, month)) as cur:
                row = await cur.fetchone()
            used = int(row[0]) if row else 0
            if used + len(jobs) > files_per_month:
                raise LedgerError(
                    429,
                    f"monthly limit reached: a cadence of {len(jobs)} files needs {len(jobs)} of the "
                    f"{files_per_month - used} left this month (resets on the 1st, UTC)",
                )
            async with db.execute("SELECT COUNT(*) FROM jobs WHERE user_id=? AND state='running'", (user_id,)) as cur:
                running = int((await cur.fetchone() or (0,))[0])
            if running >= max_running:
                raise LedgerError(
                    429, f"too many concurrent jobs: {running} running (max {max_running}); wait for one to finish"
                )
            await db.executemany(
                "INSERT INTO jobs (job_id, user_id, file_key, created_at, state) VALUES (?,?,?,?,'running')",
                [(job_id, user_id, key, now) for job_id, key in jobs],
            )
            await db.execute(
                "INSERT INTO usage VALUES (?,?,?) ON CONFLICT(user_id, month) DO UPDATE SET count=count+?",
                (user_id, month, len(jobs), len(jobs)),
            )
        return used + len(jobs)

    async def refund(self, job_id: str) -> bool:
        """Give back the count of a job the service failed; once per job (False when already given)."""
        async with self._tx() as db:
            async with db.execute("SELECT user_id, created_at FROM jobs WHERE job_id=? AND refunded=0", (job_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return False
            await db.execute("UPDATE jobs SET refunded=1 WHERE job_id=?", (job_id,))
            await db.execute(
                "UPDATE usage SET count=MAX(count-1, 0) WHERE user_id=? AND month=?", (row[0], month_of(row[1]))
            )
        return True

    async def unadmit(self, job_id: str) -> None:
        """Undo an admission whose job could not be published (nothing was started)."""
        async with self._tx() as db:
            async with db.execute("SELECT user_id, created_at FROM jobs WHERE job_id=?", (job_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return
            await db.execute("DELETE FROM jobs WHERE job_id=?", (job_id,))
            await db.execute("DELETE FROM admissions WHERE job_id=?", (job_id,))
            await db.execute("DELETE FROM unstored WHERE job_id=?", (job_id,))
            await db.execute(
                "UPDATE usage SET count=MAX(count-1, 0) WHERE user_id=? AND month=?", (row[0], month_of(row[1]))
            )

    async def record_submitted(self, job_id: str, user_id: str, file_key: str, created_at: int) -> bool:
        """A job submitted by any client: recorded and counted once (False when already known)."""
        async with self._tx() as db:
            await db.execute("DELETE FROM unstored WHERE job_id=?", (job_id,))  # its event is stored
            cur = await db.execute(
                "INSERT OR IGNORE INTO jobs (job_id, user_id, file_key, created_at, state) VALUES (?,?,?,?,'running')",
                (job_id, user_id, file_key, created_at),
            )
            if cur.rowcount == 0:
                return False
            await db.execute(
                "INSERT INTO usage VALUES (?,?,1) ON CONFLICT(user_id, month) DO UPDATE SET count=count+1",
                (user_id, month_of(created_at)),
            )
        return True

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

    async def running(self, user_id: str) -> int:
        row = await self._one("SELECT COUNT(*) FROM jobs WHERE user_id=? AND state='running'", (user_id,))
        return int(row[0])

    async def used(self, user_id: str, now: float) -> int:
        row = await self._one("SELECT count FROM usage WHERE user_id=? AND month=?", (user_id, month_of(now)))
        return int(row[0]) if row else 0

    # -- history and retention ---------------------------------------------------------------
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
