"""Read models: the edge's own SQLite view of the event stream.

Every projection is a function ``(db, event) -> None`` registered for some event types. The store
applies stored messages in stream order, in batches, each batch in one transaction together with
the stream sequence it reached. That makes the projection exact across restarts: on start the edge
follows the stream from ``last_seq + 1`` and nothing is applied twice or skipped.

The schema is fingerprinted from its DDL; when the code's schema differs from the file's, or the
file is gone, the database is rebuilt from the stream. The stream is the record; this is a cache.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

import logs
from bus.replay import StoredMessage
from schemas.base import Event
from schemas.events import decode

log = logs.get("web.projections")

ProjectFn = Callable[[aiosqlite.Connection, Any, int], Awaitable[None]]
StoreHook = Callable[["ProjectionStore"], Awaitable[None]]

_DDL: list[str] = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
_HANDLERS: dict[str, list[tuple[ProjectFn, frozenset[str]]]] = {}
_OPEN_HOOKS: list[StoreHook] = []
_COMMIT_HOOKS: list[StoreHook] = []


def ddl(*statements: str) -> None:
    _DDL.extend(statements)


def projects(*event_types: type[Event], topics: Iterable[str] = ("status",)) -> Callable[[ProjectFn], ProjectFn]:
    """Register a projection for these event types; ``topics`` name the live views it changes."""

    def register(fn: ProjectFn) -> ProjectFn:
        for et in event_types:
            _HANDLERS.setdefault(et.subject(), []).append((fn, frozenset(topics)))
        return fn

    return register


def on_open(fn: StoreHook) -> StoreHook:
    """Register ``fn(store)`` to run at the end of every ``open()`` (in-memory caches load here)."""
    _OPEN_HOOKS.append(fn)
    return fn


def after_commit(fn: StoreHook) -> StoreHook:
    """Register ``fn(store)`` to run after each batch is committed, before ``apply`` returns."""
    _COMMIT_HOOKS.append(fn)
    return fn


async def _run_hooks(hooks: list[StoreHook], store: ProjectionStore) -> None:
    for fn in hooks:
        try:
            await fn(store)
        except Exception:
            log.exception("projection store hook failed", hook=getattr(fn, "__qualname__", repr(fn)))


def schema_fingerprint() -> str:
    return hashlib.sha256("\n".join(_DDL).encode()).hexdigest()[:16]


class ProjectionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: aiosqlite.Connection
        self.last_seq = 0
        self.last_event_time = ""
        # Held for a whole batch; readers that need several statements to agree hold it too.
        self._batch_lock = asyncio.Lock()

    async def open(self) -> None:
        import web.projections  # noqa: F401  register every projection module

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fingerprint = schema_fingerprint()
        if self.path.exists():
            stale = True
            try:
                async with aiosqlite.connect(self.path) as db:
                    row = await (await db.execute("SELECT value FROM meta WHERE key='schema'")).fetchone()
                    stale = row is None or row[0] != fingerprint
            except Exception:
                stale = True
            if stale:
                log.warning("projection schema changed or unreadable; rebuilding from the stream", path=str(self.path))
                for suffix in ("", "-wal", "-shm"):
                    Path(str(self.path) + suffix).unlink(missing_ok=True)
        self.db = await aiosqlite.connect(self.path)
        self.db.row_factory = aiosqlite.Row
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        for statement in _DDL:
            await self.db.execute(statement)
        await self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (fingerprint,))
        await self.db.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', '0')")
        await self.db.commit()
        row = await (await self.db.execute("SELECT value FROM meta WHERE key='last_seq'")).fetchone()
        self.last_seq = int(row[0]) if row else 0
        await _run_hooks(_OPEN_HOOKS, self)
        log.info("projection store open", path=str(self.path), last_seq=self.last_seq)

    async def close(self) -> None:
        await self.db.close()

    async def apply(self, batch: list[StoredMessage]) -> set[str]:
        """Apply messages beyond ``last_seq`` in one transaction; return the live topics changed."""
        async with self._batch_lock:
            changed: set[str] = set()
            applied = self.last_seq
            for stored in batch:
                if stored.seq <= applied:
                    continue  # already in the read model (redelivered after a reconnect)
                applied = stored.seq
                handlers = _HANDLERS.get(stored.subject)
                if not handlers:
                    continue
                try:
                    event = decode(stored.data)
                except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                    log.warning("projection skipped an undecodable message", seq=stored.seq, error=str(exc))
                    continue
                for fn, topics in handlers:
                    try:
                        await fn(self.db, event, stored.seq)
                    except Exception:
                        log.exception("projection failed", seq=stored.seq, type=stored.subject)
                        continue
                    changed |= topics
                self.last_event_time = stored.time.isoformat()
            if applied != self.last_seq:
                await self.db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(applied),))
                await self.db.commit()
                self.last_seq = applied
                await _run_hooks(_COMMIT_HOOKS, self)
            return changed

    def consistent(self) -> asyncio.Lock:
        """Hold this while reading with several statements (a page and its total, say).

        The projection applies a batch on the same connection in several statements before it
        commits; without this a reader could see half a batch, or rows from before a batch and a
        count from after it.
        """
        return self._batch_lock

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.db.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.db.execute(sql, tuple(params)) as cur:
            row: aiosqlite.Row | None = await cur.fetchone()
            return row
