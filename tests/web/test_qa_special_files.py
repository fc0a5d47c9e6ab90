"""A FIFO (or socket, or device) under a data root is never opened by the QA views.

Opening a FIFO for reading blocks until a writer appears: ten such requests used to hold every
thread of the edge's pool, so QA views and signed-URL uploads timed out. Now they are 422 at once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp

from settings import Settings


async def test_fifo_in_a_data_root_is_refused_without_blocking(settings: Settings, edge_factory: Any) -> None:
    incoming = settings.data_dir / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    os.mkfifo(incoming / "trap.fits")
    table = settings.data_dir / "ms" / "trap.ms"
    table.mkdir(parents=True)
    (table / "table.dat").write_bytes(b"\x00" * 64)
    os.mkfifo(table / "table.f0")
    edge = await edge_factory()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def get(path: str) -> tuple[int, Any]:
            async with http.get(edge.url + path) as r:
                return r.status, await r.json()

        results = await asyncio.gather(
            *(get("/api/qa/fits/incoming/trap.fits") for _ in range(10)),
            *(get("/api/qa/casa/ms/trap.ms") for _ in range(10)),
        )
        for status, body in results:
            assert status == 422, body
            assert body["status"] == "error" and body["error"]
        assert results[0][1]["code"] == "NOT_A_REGULAR_FILE"
        # the pool is free: a listing (which stats, never opens) still answers, FIFO included
        status, body = await get("/api/qa/directories?path=incoming")
        assert status == 200 and [f["name"] for f in body["files"]] == ["trap.fits"]
