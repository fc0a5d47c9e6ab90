"""Authentication never answers from a projection that has not caught up with the stream.

An edge rebuilding its projection (here: a new edge name, so a new, empty projection file) holds
the revocation of a key back in a stand-in follow loop; until the projection has applied it, a
request with that key must be 503 ``CATCHING_UP``, never 200 from the stale row.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bus.replay import StoredMessage
from bus.stream import STREAM
from tests.conftest import eventually
from tests.seti.conftest import Stack
from web.app import Edge


class HeldEdge(Edge):
    """An edge whose follow loop stops before sequence ``hold_from`` until ``release`` is set."""

    hold_from = 0
    release: asyncio.Event

    async def _follow(self, queue: asyncio.Queue[StoredMessage]) -> None:
        inner: asyncio.Queue[StoredMessage] = asyncio.Queue()
        task = asyncio.create_task(super()._follow(inner))
        try:
            while True:
                m = await inner.get()
                if m.seq >= self.hold_from:
                    await self.release.wait()
                await queue.put(m)
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def test_revoked_key_is_never_accepted_while_catching_up(stack: Stack, edge_factory: Any) -> None:
    user = await stack.user()
    created = await stack.call("POST", "/api-keys", user, {"name": "soon revoked"})
    assert created.status == 201
    api_key, key_id = created.body["api_key"], created.body["key_id"]
    assert (await stack.call("DELETE", f"/api-keys/{key_id}", user)).status == 200
    revoked_seq = (await stack.bus.js.stream_info(STREAM)).state.last_seq

    HeldEdge.hold_from = revoked_seq
    HeldEdge.release = asyncio.Event()
    rebuilding = await edge_factory(HeldEdge, edge_name="rebuilt")
    # the key's creation is applied, its revocation is not: the old row says "valid"
    await eventually(lambda: rebuilding.store.last_seq >= revoked_seq - 1)
    r = await stack.call("GET", "/usage", api_key, base=rebuilding.url)
    assert r.status == 503, (r.status, r.body)
    assert r.body["code"] == "CATCHING_UP" and r.headers["Retry-After"] == "1"
    # the user's own (valid) key is also 503 until then: no answer from a stale state at all
    assert (await stack.call("GET", "/usage", user, base=rebuilding.url)).status == 503
    # reads that need no key are served meanwhile
    assert (await stack.call("GET", "/api/health", base=rebuilding.url)).status == 200

    HeldEdge.release.set()
    await eventually(lambda: rebuilding.caught_up.is_set())
    assert (await stack.call("GET", "/usage", api_key, base=rebuilding.url)).status == 403
    assert (await stack.call("GET", "/usage", user, base=rebuilding.url)).status == 200
