"""Live views of one SETI job: ``GET /jobs/{job_id}/ws`` (WebSocket) and ``/jobs/{job_id}/events`` (SSE).

Both are authenticated like every SETI endpoint (``x-api-key``; another user's job is 403, an
unknown one 404, answered before the upgrade). On connect the client gets the job as it is, then a
message each time it changes::

    {"type": "job_update", "id": ..., "ts": ..., "exports": ["json", "csv", ...], "data": {...}}

``data`` is exactly the body of ``GET /jobs/{job_id}`` (status, progress while processing, results
when complete, error when failed); ``exports`` lists the download formats available so far, since
the seed's exports arrive after the completion. A job removed from the history (pruned) gets one
``{"type": "job_removed"}`` and the stream ends.

How a change is noticed: the SETI projection calls ``job_listeners`` with the job id whenever it
applies an event about that job; each open view waits on its own ``asyncio.Event``, re-reads the
row from the projection and sends it only when it differs from what it sent last. So a burst of
progress events becomes one message, a view never shows state the projection does not have, and
these views cost nothing while their job is idle. They are not the global hub's broadcasts (those
go to every client): each connection only ever hears about the one job its key owns. It does join
the hub as a silent client so that the edge's shutdown ends it promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from web.auth import require_key
from web.errors import ApiError
from web.live import Client, LiveMessage, sse_frame
from web.projections.seti import job_listeners
from web.routes.seti import TAG, _job_view
from web.routes.seti_bodies import FORMATS

if TYPE_CHECKING:
    from web.app import Edge

#: after a change, wait this long so that a burst of events is sent as one message
COALESCE_S = 0.02
#: an SSE comment this often, so a vanished client is noticed and proxies keep the stream open
SSE_KEEPALIVE_S = 15.0


class JobWatchers:
    """Open live views by job id; ``notify`` wakes every view of that job (called by the projection)."""

    def __init__(self) -> None:
        self._views: dict[str, set[asyncio.Event]] = {}

    def notify(self, job_id: str) -> None:
        for changed in self._views.get(job_id, ()):
            changed.set()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        changed = asyncio.Event()
        self._views.setdefault(job_id, set()).add(changed)
        try:
            yield changed
        finally:
            views = self._views.get(job_id)
            if views is not None:
                views.discard(changed)
                if not views:
                    del self._views[job_id]


WATCHERS = JobWatchers()
job_listeners.append(WATCHERS.notify)


def register(edge: Edge) -> None:
    api = edge.api
    auth_errors = {403: "Missing or invalid API key, or the job belongs to a different user", 404: "Job not found"}

    async def owned(req: web.Request) -> str:
        principal = await require_key(req)
        job_id = req.match_info["job_id"]
        row = await edge.store.fetchone("SELECT user_id FROM seti_jobs WHERE job_id=?", (job_id,))
        if row is None:
            raise ApiError(404, f"job {job_id!r} not found", "JOB_NOT_FOUND")
        if row["user_id"] != principal.user_id:
            raise ApiError(403, "this job belongs to a different user", "FORBIDDEN")
        return job_id

    async def current(job_id: str) -> tuple[str, Any, list[str]]:
        """(message type, data, export formats) of the job as the projection has it now."""
        row = await edge.store.fetchone("SELECT * FROM seti_jobs WHERE job_id=?", (job_id,))
        if row is None:
            return "job_removed", {"job_id": job_id}, []
        rows = await edge.store.fetchall("SELECT format FROM seti_exports WHERE job_id=?", (job_id,))
        present = {r["format"] for r in rows}
        return "job_update", _job_view(row), [f for f in FORMATS if f in present]

    async def follow(
        job_id: str, send: Callable[[LiveMessage], Awaitable[None]], closed: Awaitable[Any], keepalive: float | None
    ) -> None:
        """Send the job now and at every change, until ``closed`` completes, the job is gone or the edge stops."""
        silent = Client("job", _ignore)  # the hub ends it (and so this view) when the edge shuts down
        hub_task = asyncio.create_task(edge.hub.serve(silent, []))
        closed_task = asyncio.ensure_future(closed)
        last = b""
        try:
            with WATCHERS.watch(job_id) as changed:
                while True:
                    changed.clear()
                    kind, data, exports = await current(job_id)
                    state = _enc.encode([kind, data, exports])
                    if state != last:
                        await send(edge.hub.make(kind, data, exports=exports))
                        last = state
                    if kind == "job_removed":
                        return
                    waiter = asyncio.create_task(changed.wait())
                    done, _ = await asyncio.wait(
                        {waiter, hub_task, closed_task}, timeout=keepalive, return_when=asyncio.FIRST_COMPLETED
                    )
                    if waiter not in done:
                        waiter.cancel()
                    if hub_task in done or closed_task in done:
                        return
                    if not done:  # keep-alive interval passed without a change
                        await send(_KEEPALIVE)
                        continue
                    await asyncio.sleep(COALESCE_S)
        finally:
            edge.hub.drop(silent, "closed") if not silent.dropped else None
            for task in (hub_task, closed_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @api.route(
        "GET",
        "/jobs/{job_id}/ws",
        tag=TAG,
        auth="key",
        summary="WebSocket: the job (as GET /jobs/{job_id}) on connect and at every change, as job_update",
        responses={**auth_errors, 400: "Not a WebSocket upgrade request"},
    )
    async def job_ws(req: web.Request) -> web.WebSocketResponse:
        job_id = await owned(req)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
        await ws.prepare(req)
        edge.track_socket(ws)

        async def send(msg: LiveMessage) -> None:
            if msg is not _KEEPALIVE:
                await ws.send_frame(msg.body, WSMsgType.TEXT)

        try:
            with contextlib.suppress(ConnectionResetError):
                await follow(job_id, send, _drain_ws(ws), keepalive=None)
        finally:
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=1000, message=b"bye"), 2)
            edge.untrack_socket(ws)
        return ws

    @api.route(
        "GET",
        "/jobs/{job_id}/events",
        tag=TAG,
        auth="key",
        summary="Server-Sent Events: the same job_update messages as /jobs/{job_id}/ws",
        responses=auth_errors,
    )
    async def job_sse(req: web.Request) -> web.StreamResponse:
        job_id = await owned(req)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(req)
        await resp.write(b"retry: 2000\n\n")

        async def send(msg: LiveMessage) -> None:
            if msg is _KEEPALIVE:
                await resp.write(b": keep-alive\n\n")
            else:
                await resp.write(sse_frame(msg))

        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            await follow(job_id, send, asyncio.Event().wait(), keepalive=SSE_KEEPALIVE_S)
        return resp


_KEEPALIVE = LiveMessage("", "keepalive", b"")
_enc = msgspec.json.Encoder()


async def _ignore(_msg: LiveMessage) -> None:
    return None


async def _drain_ws(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
