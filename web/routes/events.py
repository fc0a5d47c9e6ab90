"""The event feed for real-time subscribers: ``GET /api/events`` (SSE) and ``/api/events/ws``.

Query: ``subject`` (repeatable or comma-separated NATS filters, default everything visible),
and a start: ``since_seq`` (a stream sequence), ``since`` (ISO 8601), or neither for new events
only. An SSE reconnect's ``Last-Event-ID`` (the last sequence received) wins over the query, so
a browser's EventSource or any SSE client resumes with no gap and no duplicate, also after the
edge restarts: the id is the stream's own sequence, not the edge's.

Every message is ``{"seq", "subject", "time", "event"}`` (``event`` exactly as stored); the SSE
``id`` is ``seq``. A start before the stream's first sequence (retention removed those events) is
answered first with one gap notice, ``{"gap": {"from_seq", "to_seq"}, "reason"}``: over SSE as
``event: gap`` with ``id: to_seq`` (so a reconnect does not report it again), over the WebSocket
as a text frame of its own. Who sees what is in ``web.feed.subjects``; the catch-up and hand-over in
``web.feed.session``; the shared tail and slow-client policy in ``web.feed.hub``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from bus.stream import STREAM, SUBJECTS
from schemas.asyncapi import catalogue
from web.auth import HEADER, require_key
from web.errors import ApiError
from web.feed import docs_page
from web.feed.hub import Chunk, FeedClient, FeedHub
from web.feed.session import Gap, Start, serve
from web.feed.subjects import DOMAINS, FilterError, Selection, Viewer, select
from web.live import Client, LiveMessage

if TYPE_CHECKING:
    from web.app import Edge

TAG = "events"
QUERY = [("subject", "string", False), ("since_seq", "integer", False), ("since", "string", False)]
ERRORS = {
    403: "Invalid API key, or a subject filter the key may not read (seti.* needs a key, ops.* an operator key)",
    422: "Invalid subject filter, since_seq, since or Last-Event-ID",
}


async def viewer_for(request: web.Request, edge: Edge) -> Viewer:
    """DSA as the dashboard reads; a key adds its own SETI events; an operator key sees everything."""
    if request.headers.get(HEADER, "").strip() or edge.settings.read_auth:
        principal = await require_key(request)
        if principal.is_operator:
            return Viewer(frozenset(DOMAINS), None)
        return Viewer(frozenset({"dsa", "seti"}), principal.user_id)
    return Viewer(frozenset({"dsa"}), None)


#: JetStream sequences are unsigned 64-bit; a larger start is refused here, not by the server (a 500)
MAX_SEQ = 2**63 - 1


#: a stream sequence as the query or Last-Event-ID carries it: ASCII digits only (``str.isdigit``
#: also takes "²" and other Unicode digits, which ``int`` then refuses)
_SEQ = re.compile(r"[0-9]+")


def start_of(request: web.Request, *, last_event_id: str = "") -> Start:
    if last_event_id:
        if not _SEQ.fullmatch(last_event_id.strip()):
            raise ApiError(422, "Last-Event-ID must be a stream sequence", details={"field": "Last-Event-ID"})
        if int(last_event_id) >= MAX_SEQ:
            raise ApiError(422, "Last-Event-ID is past any stream sequence", details={"field": "Last-Event-ID"})
        return Start(seq=int(last_event_id) + 1)
    has_seq, has_since = "since_seq" in request.query, "since" in request.query
    raw_seq, raw_since = request.query.get("since_seq", ""), request.query.get("since", "")
    if has_seq and has_since:
        raise ApiError(422, "give since_seq or since, not both", details={"field": "since"})
    if has_seq:  # present means given: an empty since_seq= is not "new events only"
        if not _SEQ.fullmatch(raw_seq):
            raise ApiError(422, "query parameter 'since_seq' must be an integer >= 0", details={"field": "since_seq"})
        if int(raw_seq) > MAX_SEQ:
            raise ApiError(422, "query parameter 'since_seq' is past any stream sequence", details={"field": "since_seq"})
        return Start(seq=max(int(raw_seq), 1))
    if has_since:
        try:
            when = datetime.fromisoformat(raw_since.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(
                422, "query parameter 'since' must be an ISO 8601 time", details={"field": "since"}
            ) from None
        return Start(time=when if when.tzinfo else when.replace(tzinfo=UTC))
    return Start()


async def selection_of(request: web.Request, edge: Edge) -> Selection:
    viewer = await viewer_for(request, edge)
    try:
        return select(request.query.getall("subject", []), viewer)
    except FilterError as exc:
        raise ApiError(422, str(exc), details={"field": "subject"}) from None
    except PermissionError as exc:
        raise ApiError(403, str(exc), "SUBJECT_FORBIDDEN", {"field": "subject"}) from None


def register(edge: Edge) -> None:
    api = edge.api
    hub = FeedHub(edge.bus.js)

    def spawn(coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        edge._tasks.append(task)  # cancelled by Edge.stop with the edge's own tasks
        return task

    async def until_shutdown() -> None:
        # The edge's shutdown ends every live-hub client; this silent one tells the feed to close too.
        await edge.hub.serve(Client("feed", _ignore), [])
        hub.close_all()

    async def started() -> FeedHub:
        if hub._task is None:
            spawn(until_shutdown())
        await hub.ensure_started(spawn)
        return hub

    @functools.cache
    def asyncapi() -> tuple[bytes, str]:
        from web.app import VERSION

        doc = catalogue(version=VERSION, stream=STREAM, stored_subjects=SUBJECTS)
        return msgspec.json.encode(doc), docs_page.render(doc)

    @api.route(
        "GET",
        "/api/asyncapi.json",
        tag=TAG,
        summary="The event catalogue: AsyncAPI 3.0, generated from the event Structs",
    )
    async def asyncapi_json(request: web.Request) -> web.Response:
        return web.Response(body=asyncapi()[0], content_type="application/json")

    @api.route("GET", "/api/events/docs", tag=TAG, summary="The event catalogue as an HTML page")
    async def events_docs(request: web.Request) -> web.Response:
        return web.Response(text=asyncapi()[1], content_type="text/html")

    @api.route(
        "GET",
        "/api/events",
        tag=TAG,
        summary="Server-Sent Events: stored events by subject filter, resumable by Last-Event-ID (the stream sequence)",
        query=QUERY,
        responses=ERRORS,
    )
    async def events_sse(request: web.Request) -> web.StreamResponse:
        selection = await selection_of(request, edge)
        start = start_of(request, last_event_id=request.headers.get("Last-Event-ID", ""))
        feed = await started()
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")

        async def write(chunks: list[Chunk]) -> None:
            await resp.write(chunks[0].sse if len(chunks) == 1 else b"".join([c.sse for c in chunks]))

        async def keepalive() -> None:
            await resp.write(b": keep-alive\n\n")

        async def on_gap(gap: Gap) -> None:
            await resp.write(b"event: gap\nid: %d\ndata: %s\n\n" % (gap.to_seq, gap.body()))

        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            await serve(feed, FeedClient(selection), start, write, keepalive, on_gap)
        return resp

    @api.route(
        "GET",
        "/api/events/ws",
        tag=TAG,
        status=101,
        summary="WebSocket twin of /api/events: one text frame per event; a slow client is closed with 1013",
        query=QUERY,
        responses={400: "Not a WebSocket upgrade request", **ERRORS},
    )
    async def events_ws(request: web.Request) -> web.WebSocketResponse:
        selection = await selection_of(request, edge)
        start = start_of(request)
        feed = await started()
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "expected a WebSocket upgrade request", "NOT_WEBSOCKET")
        await ws.prepare(request)
        edge.track_socket(ws)

        async def write(chunks: list[Chunk]) -> None:
            for chunk in chunks:
                for item in chunk.items:
                    await ws.send_frame(item.body, WSMsgType.TEXT)

        async def keepalive() -> None:
            return None  # the WebSocket's own ping (heartbeat) keeps it alive

        async def on_gap(gap: Gap) -> None:
            await ws.send_frame(gap.body(), WSMsgType.TEXT)

        client = FeedClient(selection)
        server = asyncio.create_task(serve(feed, client, start, write, keepalive, on_gap))
        reader = asyncio.create_task(_drain_ws(ws))
        try:
            await asyncio.wait({server, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (server, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not ws.closed:
                code, why = (1013, b"too slow") if client.dropped else (1001, b"bye")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=code, message=why), 2)
            edge.untrack_socket(ws)
        return ws


async def _ignore(_msg: LiveMessage) -> None:
    return None


async def _drain_ws(ws: web.WebSocketResponse) -> Any:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
