"""Browser sessions: an API key exchanged once for an HttpOnly cookie (``POST /api/session``).

A browser cannot put a header on a ``WebSocket`` or an ``EventSource``, and an API key must never
travel in a URL (URLs end up in logs and history). So the page trades the key for a session:

* the cookie holds a fresh 256-bit random token; only its SHA-256 is stored, here, with the
  ``key_id`` it was opened with, a CSRF token and its expiry. The API key itself is not stored;
* every request with the cookie is checked against the key's row in the projection as well, so a
  key revoked or expired (or a user's role changed) takes effect on open sessions at once;
* state-changing requests made with the cookie must echo the CSRF token in ``X-CSRF-Token``.

Why a file of its own (``DATA/edge/<name>-sessions.sqlite``) rather than the projection: the
projection is a cache of the stream and is rebuilt from it at will, which would log everybody out;
sessions are the edge's own state and are never published on the stream.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

COOKIE = "obs_session"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    user_id: str
    csrf_token: str
    expires_at: float


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute(
            """CREATE TABLE IF NOT EXISTS sessions (
                 token_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL, user_id TEXT NOT NULL,
                 csrf_token TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL)"""
        )
        await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (time.time(),))
        await self._db.commit()

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("session store is not open")
        return self._db

    async def create(self, key_id: str, user_id: str, ttl_s: float) -> tuple[str, Session]:
        """A new session; returns the raw token (for the cookie, never stored) and the session."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(key_id, user_id, secrets.token_urlsafe(24), now + ttl_s)
        await self.db.execute(
            "INSERT INTO sessions (token_hash, key_id, user_id, csrf_token, created_at, expires_at) "
            "VALUES (?,?,?,?,?,?)",
            (token_hash(token), key_id, user_id, session.csrf_token, now, session.expires_at),
        )
        # Expired rows go as new ones come, so the table stays the size of the active sessions.
        await self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        await self.db.commit()
        return token, session

    async def get(self, token: str) -> Session | None:
        """The live session for a cookie's token, or None (unknown or expired)."""
        if not token or len(token) > 200:
            return None
        async with self.db.execute(
            "SELECT key_id, user_id, csrf_token, expires_at FROM sessions WHERE token_hash = ?", (token_hash(token),)
        ) as cur:
            row = await cur.fetchone()
        if row is None or row[3] <= time.time():
            return None
        return Session(row[0], row[1], row[2], float(row[3]))

    async def delete(self, token: str) -> None:
        await self.db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash(token),))
        await self.db.commit()
