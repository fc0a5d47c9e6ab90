"""Every keeper knows every user and key: its SQLite tables are a projection of the stream.

Users and keys are already facts in the stream (``seti.user.updated``, ``seti.key.created``,
``seti.key.revoked``), published by whichever keeper made them. The actors of one role share one
durable consumer, so a keeper sees only its share of the events; these facts, though, every
instance needs, so each keeper follows them itself with its own ephemeral consumer (``bus.replay``,
from the start: they are few) and upserts them into its local ledger. The counters that need
atomicity live in JetStream KV (``counters``), not here.

A keeper that is asked about a user it does not know yet (created a moment ago on another keeper)
catches up once, synchronously, with a finite replay from where it is, before answering.
"""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from nats.js import JetStreamContext

import logs
from actors.quota_keeper.ledger import Key, Ledger, User
from bus.replay import replay
from schemas.events import decode
from schemas.seti import KeyCreated, KeyRevoked, UserUpdated

log = logs.get("quota_keeper.directory")

SUBJECTS = (UserUpdated.subject(), "seti.key.>")


class Directory:
    def __init__(self, js: JetStreamContext, ledger: Ledger) -> None:
        self.js = js
        self.ledger = ledger
        self.applied: dict[str, int] = dict.fromkeys(SUBJECTS, 0)
        self._tasks: list[asyncio.Task[None]] = []
        self._catch_up = asyncio.Lock()

    async def start(self) -> None:
        """Apply everything stored so far, then follow new facts in the background."""
        await self.catch_up()
        self._tasks = [asyncio.create_task(self._follow(s), name=f"directory {s}") for s in SUBJECTS]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def catch_up(self) -> None:
        """Apply every user and key fact stored up to now (a finite replay from where we are)."""
        async with self._catch_up:
            for subject in SUBJECTS:
                async for stored in replay(self.js, subject, seq=self.applied[subject] + 1):
                    await self._apply(subject, stored.seq, stored.data)

    async def user(self, user_id: str) -> User | None:
        """The user, catching up with the stream once when this keeper does not know them yet."""
        user = await self.ledger.user(user_id)
        if user is None:
            await self.catch_up()
            user = await self.ledger.user(user_id)
        return user

    async def user_by_email(self, email: str) -> User | None:
        await self.catch_up()
        return await self.ledger.user_by_email(email)

    async def key(self, key_id: str) -> Key | None:
        key = await self.ledger.key(key_id)
        if key is None or key.revoked_at is None:
            await self.catch_up()  # made, or revoked, on another keeper a moment ago
            key = await self.ledger.key(key_id)
        return key

    async def _follow(self, subject: str) -> None:
        while True:
            try:
                async for stored in replay(self.js, subject, seq=self.applied[subject] + 1, follow=True):
                    async with self._catch_up:  # never interleaved with a catch-up's replay
                        await self._apply(subject, stored.seq, stored.data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection came back, say: follow again from where we are
                log.warning("directory follow restarted", subject=subject, error=repr(exc))
                await asyncio.sleep(1.0)

    async def _apply(self, subject: str, seq: int, data: bytes) -> None:
        if seq <= self.applied[subject]:
            return  # the background follower and a catch-up both delivered it
        try:
            event = decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            event = None
        if isinstance(event, UserUpdated):
            await self.ledger.apply_user(User(event.user_id, event.email, event.tier, event.role, event.created_at))
        elif isinstance(event, KeyCreated):
            await self.ledger.apply_key(
                Key(event.key_id, event.user_id, event.name, event.created_at, event.expires_at, None), event.key_hash
            )
        elif isinstance(event, KeyRevoked):
            await self.ledger.revoke_key(event.key_id, event.revoked_at)
        self.applied[subject] = max(self.applied[subject], seq)
