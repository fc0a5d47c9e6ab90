"""A transactional outbox: events written to an actor's own SQLite state in the same transaction as
the state change they follow from, then published and deleted.

Why: an actor that commits its state and then crashes before publishing would otherwise lose the
facts (an ESE candidate that no one hears about). With the outbox, whatever was committed is
published at the next flush (on the next event, or at start), and because each stored event keeps
its id, which is the JetStream message id, publishing one twice is deduplicated by the stream.
"""

from __future__ import annotations

import aiosqlite

from bus import Bus
from schemas.base import Event, encode
from schemas.events import decode

DDL = "CREATE TABLE IF NOT EXISTS outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL)"


async def put(db: aiosqlite.Connection, event: Event) -> None:
    """Queue ``event`` (inside the caller's transaction; it is published after the commit)."""
    await db.execute("INSERT INTO outbox (payload) VALUES (?)", (encode(event),))


async def flush(db: aiosqlite.Connection, bus: Bus) -> dict[str, int]:
    """Publish every queued event in order, deleting each once the stream has it; id -> stream seq."""
    seqs: dict[str, int] = {}
    async with db.execute("SELECT n, payload FROM outbox ORDER BY n") as cur:
        rows = list(await cur.fetchall())
    for n, payload in rows:
        event = decode(bytes(payload))
        ack = await bus.publish(event)
        seqs[event.id] = int(ack.seq)
        await db.execute("DELETE FROM outbox WHERE n = ?", (n,))
        await db.commit()
    return seqs
