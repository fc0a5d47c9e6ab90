"""Core endpoints: health, pipeline status, system metrics, actors, OpenAPI, and the live views."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

import telemetry
from web.auth import require_reader
from web.health import HealthReport, Readiness
from web.live import Client, LiveMessage, sse_frame
from web.routing import json_response

if TYPE_CHECKING:
    from web.app import Edge


class Health(msgspec.Struct):
    status: str
    version: str


class QueueStats(msgspec.Struct):
    total: int
    pending: int
    in_progress: int
    completed: int
    failed: int
    collecting: int


class CalibrationSetView(msgspec.Struct):
    cal_group_id: str
    created_at: str
    num_targets: int
    valid_from_mjd: float  # the set applies to groups observed in [valid_from_mjd, valid_to_mjd]
    valid_to_mjd: float
    calibrator: str


class GroupView(msgspec.Struct):
    group_id: str
    state: str
    subbands_present: int
    expected_subbands: int
    has_calibrator: bool


class StatusResponse(msgspec.Struct):
    queue: QueueStats
    calibration_sets: list[CalibrationSetView]
    recent_groups: list[GroupView]


class SystemMetrics(msgspec.Struct):
    cpu_percent: float
    mem_percent: float
    disk_total: int
    disk_used: int
    disk_free: int
    load_1: float
    load_5: float
    load_15: float
    ts: str


class ActorView(msgspec.Struct):
    role: str
    instance: str
    pid: int
    host: str
    started_at: str
    last_seen_s: float
    alive: bool
    handled: int
    failed: int
    in_flight: int
    #: "standby" for an instance of a single-active role waiting for its lease (bus/lease.py)
    state: str = "active"


class ActorsResponse(msgspec.Struct):
    actors: list[ActorView]


def register(edge: Edge) -> None:
    api = edge.api
    health_body = msgspec.json.encode(Health(status="healthy", version=api.version))

    @api.route("GET", "/health", response=Health, summary="Health check (no authentication)", tag="core")
    async def health(request: web.Request) -> web.Response:
        return web.Response(body=health_body, content_type="application/json")

    @api.route(
        "GET",
        "/ready",
        response=Readiness,
        responses={503: "Not ready: the body names the failing components"},
        tag="core",
        summary="Readiness: NATS, the stream and its replicas, this edge's projection lag, live roles",
    )
    async def ready(request: web.Request) -> web.Response:
        report = await edge.health.readiness()
        return json_response(report, status=200 if report.status == "ready" else 503)

    @api.route(
        "GET",
        "/api/health",
        response=HealthReport,
        tag="core",
        summary="Health with per-component detail (always 200; status healthy / degraded / unhealthy)",
    )
    async def api_health(request: web.Request) -> web.Response:
        return json_response(await edge.health.health())

    @api.route(
        "GET",
        "/api/status",
        response=StatusResponse,
        tag="core",
        summary="Pipeline queue statistics, calibration sets and the last 20 observation groups",
    )
    async def status(request: web.Request) -> web.Response:
        await require_reader(request)
        return web.Response(body=edge.status_bytes, content_type="application/json")

    @api.route("GET", "/api/metrics/system", response=SystemMetrics, tag="core", summary="CPU, memory, disk, load")
    async def metrics(request: web.Request) -> web.Response:
        await require_reader(request)
        from web.metrics import system_metrics

        return json_response(await asyncio.to_thread(system_metrics, edge.settings.data_dir))

    @api.route(
        "GET", "/api/actors", response=ActorsResponse, tag="core", summary="Actor instances and their last heartbeat"
    )
    async def actors(request: web.Request) -> web.Response:
        await require_reader(request)
        now = time.time()
        stale_after = 3 * edge.settings.heartbeat_s
        views = [
            ActorView(
                role=hb.role,
                instance=hb.instance,
                pid=hb.pid,
                host=hb.host,
                started_at=hb.started_at,
                last_seen_s=round(now - seen, 2),
                alive=now - seen < stale_after,
                handled=hb.handled,
                failed=hb.failed,
                in_flight=hb.in_flight,
                state=hb.state,
            )
            for hb, seen in edge.actor_heartbeats()
        ]
        return json_response(ActorsResponse(actors=views))

    @api.route(
        "GET",
        "/metrics",
        tag="core",
        summary="Prometheus metrics (text format): events, handler durations, consumer lag, jobs, clients, process",
    )
    async def metrics_text(request: web.Request) -> web.Response:
        return await telemetry.metrics_handler(request)

    @api.route("GET", "/api/openapi.json", tag="core", summary="This API as OpenAPI 3.1")
    async def openapi(request: web.Request) -> web.Response:
        return json_response(api.openapi())

    @api.route(
        "GET",
        "/api/ws/status",
        tag="live",
        summary="WebSocket: snapshot on connect, then status_update/metrics_update/ese_update",
        responses={400: "Not a WebSocket upgrade request (this is a WebSocket endpoint)"},
    )
    async def ws_status(request: web.Request) -> web.WebSocketResponse:
        await require_reader(request)
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=64 * 1024)
        await ws.prepare(request)
        edge.track_socket(ws)

        async def send(msg: LiveMessage) -> None:
            await ws.send_frame(msg.body, WSMsgType.TEXT)  # already UTF-8 JSON: no decode per client

        client = Client("ws", send)
        writer = asyncio.create_task(edge.hub.serve(client, await edge.snapshot_messages()))
        reader = asyncio.create_task(_drain_ws(ws))
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            edge.hub.drop(client, "closed") if not client.dropped else None
            for task in (writer, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if not ws.closed:
                code = 1013 if client.dropped else 1001
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=code, message=b"too slow" if code == 1013 else b"bye"), 2)
            edge.untrack_socket(ws)
        return ws

    @api.route(
        "GET",
        "/api/sse/status",
        tag="live",
        summary="Server-Sent Events: the same messages as the WebSocket; honours Last-Event-ID",
    )
    async def sse_status(request: web.Request) -> web.StreamResponse:
        await require_reader(request)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")
        last_id = request.headers.get("Last-Event-ID", "")
        initial: list[Any] | None = edge.hub.missed_since(last_id) if last_id else None
        if initial is None:
            initial = await edge.snapshot_messages()

        async def send(msg: LiveMessage) -> None:
            if msg.type == "heartbeat":
                await resp.write(b": heartbeat\n\n")
            else:
                await resp.write(sse_frame(msg))

        client = Client("sse", send)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            await edge.hub.serve(client, initial)
        return resp


async def _drain_ws(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
