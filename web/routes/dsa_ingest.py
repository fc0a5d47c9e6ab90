"""Seed 000's streaming-service section and the Measurement Set list: the front of the DSA-110 pipeline.

Reads never call the watcher:

* ``GET /api/streaming/status`` joins the last ``dsa.streaming.state`` of each watcher instance
  (projection) with that instance's live heartbeat (pid, CPU, memory; a watcher whose heartbeat
  has stopped is not running, whatever it last said) and the queue from the ``groups`` table.
  ``queue_stats``: ``total`` = groups not finished (collecting + pending + in progress),
  ``pending``, ``processing`` = in progress.
* ``GET /api/streaming/config`` is the latest ``dsa.streaming.configured`` (or, before any watcher
  has started, this edge's own ``--incoming-dir``/``--output-dir``/``--watch-*`` settings).
* ``GET /api/control/ms/list`` is the ``measurement_sets`` projection.

Every POST needs an operator key. ``start``/``stop``/``restart`` are request/reply commands to the
watcher (``cmd.watcher.*``, queue group ``watcher``; 503 when no watcher answers); the edge answers
once its projection shows the resulting state. ``POST /api/streaming/config`` validates the body,
publishes ``dsa.streaming.configured`` itself (the operator's decision is the fact; it holds even
while no watcher runs) and answers once applied here; every watcher consumes it and applies it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web

from actors.watcher import commands
from bus.request import CommandUnavailable, request
from schemas.dsa import StreamingConfigured
from web.auth import require_operator, require_reader
from web.errors import ApiError
from web.projections import dsa
from web.routing import json_response, read_json, read_query

if TYPE_CHECKING:
    from web.app import Edge

TAG = "streaming"


class QueueStatsView(msgspec.Struct):
    total: int
    pending: int
    processing: int


class StreamingStatus(msgspec.Struct):
    running: bool
    pid: int | None
    uptime_seconds: float
    cpu_percent: float
    memory_mb: float
    queue_stats: QueueStatsView


class StreamingAnswer(msgspec.Struct, omit_defaults=True):
    status: str
    message: str
    pid: int | None = None


class StreamingConfigView(msgspec.Struct):
    input_dir: str
    output_dir: str
    batch_size: int
    poll_interval: float


_DIR = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=r"^\s*(/|~/|~\s*$)[^\x00]*$")]


class StreamingConfigRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Any of the four (absent fields keep their value; at least one must be given)."""

    input_dir: _DIR | msgspec.UnsetType = msgspec.UNSET
    output_dir: _DIR | msgspec.UnsetType = msgspec.UNSET
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | msgspec.UnsetType = msgspec.UNSET
    poll_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] | msgspec.UnsetType = msgspec.UNSET


#: the body as the OpenAPI document states it: an object with at least one of the fields
StreamingConfigBody = Annotated[StreamingConfigRequest, msgspec.Meta(extra_json_schema={"minProperties": 1})]


class ConfigUpdated(msgspec.Struct):
    status: str
    message: str


class MsView(msgspec.Struct):
    path: str
    stage: str
    status: str
    mid_mjd: float
    field_name: str


class MsListQuery(msgspec.Struct, kw_only=True):
    stage: Literal["converted", "calibrated", "imaged"] | None = None
    status: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class MsListResponse(msgspec.Struct):
    ms_list: list[MsView]
    total: int
    limit: int
    offset: int


def _directory(value: str, name: str) -> str:
    """Absolute after ``~`` expansion, normalised; the watcher creates it if needed."""
    if "\x00" in value or not value.strip():
        raise ApiError(422, f"'{name}' is not a valid path", details={"field": name})
    path = os.path.expanduser(value.strip())
    if not os.path.isabs(path):
        raise ApiError(422, f"'{name}' must be an absolute path (got {value!r})", details={"field": name})
    return os.path.normpath(path)


def _uptime(started_at: str) -> float:
    try:
        started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return round(max(0.0, time.time() - started.timestamp()), 1)


def register(edge: Edge) -> None:
    api = edge.api
    store = edge.store

    read_guard = require_reader

    def defaults() -> dict[str, Any]:
        s = edge.settings
        return {
            "input_dir": str(s.incoming.absolute()),
            "output_dir": str(s.ms_dir.absolute()),
            "batch_size": s.watch_batch_size,
            "poll_interval": s.watch_poll_s,
        }

    async def command(subject: str, operator: str) -> dict[str, Any]:
        try:
            reply = await request(edge.bus.nc, subject, commands.StreamingCommand(operator=operator), timeout=10.0)
        except CommandUnavailable:
            raise ApiError(
                503, "the streaming service (watcher actor) is not running: start it with 'run.py actor watcher'"
            ) from None
        if not reply.ok:
            raise ApiError(reply.status, reply.error, reply.code or None)
        seq = reply.data.get("seq")
        if isinstance(seq, int):
            await edge.wait_applied(seq)
        return reply.data

    errors = {403: "operator API key required", 503: "no watcher is running"}

    @api.route(
        "GET",
        "/api/streaming/status",
        response=StreamingStatus,
        tag=TAG,
        summary="Streaming service (watcher): running, pid, uptime, CPU, memory, queue",
    )
    async def streaming_status(req: web.Request) -> web.Response:
        await read_guard(req)
        now = time.time()
        stale_after = 3 * edge.settings.heartbeat_s
        alive = {
            inst: hb
            for inst, (hb, seen) in edge.heartbeats.items()
            if hb.role == "watcher" and now - seen < stale_after
        }
        states = await dsa.streaming_states(store)
        chosen = next((s for s in states if s["instance"] in alive and s["running"]), None) or next(
            (s for s in states if s["instance"] in alive), None
        )
        hb = alive.get(chosen["instance"]) if chosen else None
        running = bool(chosen and chosen["running"] and hb is not None)
        body = StreamingStatus(
            running=running,
            pid=hb.pid if hb is not None else None,
            uptime_seconds=_uptime(chosen["started_at"]) if running and chosen else 0.0,
            cpu_percent=float(hb.cpu_percent or 0.0) if hb is not None else 0.0,
            memory_mb=float(hb.memory_mb or 0.0) if hb is not None else 0.0,
            queue_stats=QueueStatsView(**await dsa.queue_stats(store)),
        )
        return json_response(body)

    async def control(req: web.Request, subject: str) -> web.Response:
        principal = await require_operator(req)
        data = await command(subject, principal.user_id)
        pid = data.get("pid")
        return json_response(
            StreamingAnswer(
                status=str(data["status"]), message=str(data["message"]), pid=pid if isinstance(pid, int) else None
            )
        )

    @api.route(
        "POST", "/api/streaming/start", response=StreamingAnswer, tag=TAG, auth="operator",
        summary="Start ingestion in the watcher", responses=errors,
    )  # fmt: skip
    async def streaming_start(req: web.Request) -> web.Response:
        return await control(req, commands.START)

    @api.route(
        "POST", "/api/streaming/stop", response=StreamingAnswer, tag=TAG, auth="operator",
        summary="Stop ingestion (no file is taken in, no group converted, until start)", responses=errors,
    )  # fmt: skip
    async def streaming_stop(req: web.Request) -> web.Response:
        return await control(req, commands.STOP)

    @api.route(
        "POST", "/api/streaming/restart", response=StreamingAnswer, tag=TAG, auth="operator",
        summary="Stop and start ingestion", responses=errors,
    )  # fmt: skip
    async def streaming_restart(req: web.Request) -> web.Response:
        return await control(req, commands.RESTART)

    @api.route(
        "GET", "/api/streaming/config", response=StreamingConfigView, tag=TAG,
        summary="The streaming service's configuration in force",
    )  # fmt: skip
    async def get_config(req: web.Request) -> web.Response:
        await read_guard(req)
        return json_response(await dsa.streaming_config(store) or defaults())

    @api.route(
        "POST", "/api/streaming/config", request=StreamingConfigBody, response=ConfigUpdated, tag=TAG,
        auth="operator", summary="Change input_dir, output_dir, batch_size, poll_interval (any of them)",
        responses={400: "empty or invalid JSON body", 403: "operator API key required", 422: "invalid value (the field is named)"},
    )  # fmt: skip
    async def post_config(req: web.Request) -> web.Response:
        await require_operator(req)
        body = await read_json(req, StreamingConfigRequest)
        given = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not msgspec.UNSET}
        if not given:
            raise ApiError(400, "give at least one of input_dir, output_dir, batch_size, poll_interval")
        for name in ("input_dir", "output_dir"):
            if name in given:
                given[name] = _directory(given[name], name)
        current = await dsa.streaming_config(store) or defaults()
        new = {**current, **given}
        if new["input_dir"] == new["output_dir"]:
            raise ApiError(422, "'output_dir' must differ from 'input_dir'", details={"field": "output_dir"})
        event = StreamingConfigured(
            input_dir=new["input_dir"],
            output_dir=new["output_dir"],
            batch_size=int(new["batch_size"]),
            poll_interval=float(new["poll_interval"]),
            source="api",
            producer="edge",
        )
        ack = await edge.bus.publish(event)
        await edge.wait_applied(ack.seq)
        return json_response(ConfigUpdated(status="updated", message="Configuration updated successfully"))

    @api.route(
        "GET", "/api/control/ms/list", response=MsListResponse, tag="control",
        summary="Measurement Sets (newest first), filtered by stage and status",
        query=MsListQuery,
        responses={400: "unknown stage", 422: "bad limit or offset"},
    )  # fmt: skip
    async def ms_list(req: web.Request) -> web.Response:
        await read_guard(req)
        q = read_query(req, MsListQuery)
        items, total = await dsa.ms_list(store, q.stage, q.status or None, q.limit, q.offset)
        return json_response(
            MsListResponse(ms_list=[MsView(**i) for i in items], total=total, limit=q.limit, offset=q.offset)
        )
