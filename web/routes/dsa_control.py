"""Seed 000's job control: ``POST /api/control/jobs/create`` and ``GET /api/control/jobs``.

Creating a job is a command to the imager (``cmd.imager.create_job``, which allocates the
``job_YYYYMMDD_NNN`` id and publishes the pending ``dsa.job.updated``); the edge answers once its
own projection has that event, so the caller's next ``GET /api/control/jobs`` lists the job. It
needs an operator key, like every control POST. The list is read from the edge's projection
(``web/projections/dsa_jobs.py``) and holds jobs of every type (image jobs, mosaic jobs).

Validation at the border: ``job_type`` must be ``image`` (mosaics have their own endpoint);
``ms_paths`` must be Measurement Sets inside the configured data roots (403 outside, as the QA
views; 404 when missing); parameters are range-checked (422 naming the parameter).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from aiohttp import web

from actors.imager import commands, work
from bus.request import CommandUnavailable, request
from web.auth import require_key, require_operator
from web.errors import ApiError
from web.projections import dsa_jobs
from web.routes.dsa_qa import confine
from web.routing import json_response, query_int, read_json

if TYPE_CHECKING:
    from web.app import Edge


class JobCreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    job_type: Annotated[str, msgspec.Meta(max_length=64)]
    ms_paths: Annotated[list[Annotated[str, msgspec.Meta(max_length=4096)]], msgspec.Meta(max_length=1000)]
    parameters: dict[str, Any] = {}


class JobCreateResponse(msgspec.Struct):
    job_id: str
    status: str
    message: str


class JobView(msgspec.Struct):
    job_id: str
    job_type: str
    status: str
    created_at: str
    completed_at: str | None


class JobsResponse(msgspec.Struct):
    jobs: list[JobView]
    total: int
    limit: int
    offset: int


def register(edge: Edge) -> None:
    api = edge.api
    store = edge.store

    async def read_guard(request: web.Request) -> None:
        if edge.settings.read_auth:
            await require_key(request)

    @api.route(
        "POST",
        "/api/control/jobs/create",
        request=JobCreateRequest,
        response=JobCreateResponse,
        tag="control",
        auth="operator",
        summary="Create an image job (operator key); it runs in the imager actor",
        responses={
            400: "bad JSON or a missing field",
            403: "no operator key, or a path outside the data roots",
            404: "a Measurement Set does not exist",
            422: "bad job_type, ms_paths or parameter",
            503: "the imager is not running",
        },
    )
    async def create_job(request: web.Request) -> web.Response:
        principal = await require_operator(request)
        body = await read_json(request, JobCreateRequest)
        if body.job_type != "image":
            raise ApiError(
                422,
                f"job_type must be 'image' (mosaics: POST /api/mosaics/generate), not {body.job_type!r}",
                details={"field": "job_type", "allowed": ["image"]},
            )
        if not body.ms_paths:
            raise ApiError(422, "ms_paths must name at least one Measurement Set", details={"field": "ms_paths"})
        try:
            params = work.check_parameters(body.parameters)
        except work.ParameterError as exc:
            raise ApiError(422, str(exc), details={"field": "parameters"}) from None
        resolved: list[str] = []
        for raw in body.ms_paths:
            real = await confine(edge.settings, raw)
            if not await asyncio.to_thread(os.path.isdir, os.path.join(real, "ANTENNA")):
                raise ApiError(404, f"no Measurement Set at {raw!r}", details={"field": "ms_paths", "path": raw})
            resolved.append(real)
        cmd = commands.CreateJob(
            job_type="image", ms_paths=resolved, parameters=params, operator=principal.email or principal.user_id
        )
        try:
            reply = await request_job(edge, cmd)
        except CommandUnavailable:
            raise ApiError(503, "the imager is not running; try again later") from None
        if not reply.ok:
            raise ApiError(reply.status, reply.error, reply.code or None)
        seq = int(reply.data.get("seq", 0))
        if seq:
            try:
                await edge.wait_applied(seq, timeout=10.0)
            except TimeoutError:
                pass  # the job exists; the list catches up in a moment
        return json_response(
            JobCreateResponse(job_id=str(reply.data["job_id"]), status="pending", message="Job created successfully")
        )

    @api.route(
        "GET",
        "/api/control/jobs",
        response=JobsResponse,
        tag="control",
        summary="Pipeline jobs (image, mosaic), newest first",
        query=[("status", "string", False), ("limit", "integer", False), ("offset", "integer", False)],
        responses={422: "bad status, limit or offset"},
    )
    async def list_jobs(request: web.Request) -> web.Response:
        await read_guard(request)
        status = request.query.get("status") or None
        if status is not None and status not in dsa_jobs.JOB_STATUSES:
            raise ApiError(
                422,
                f"query parameter 'status' must be one of {', '.join(dsa_jobs.JOB_STATUSES)}",
                details={"field": "status", "allowed": list(dsa_jobs.JOB_STATUSES)},
            )
        limit = query_int(request, "limit", 50, lo=1, hi=1000)
        offset = query_int(request, "offset", 0, lo=0)
        return json_response(await dsa_jobs.list_jobs(store, status, limit, offset))


async def request_job(edge: Edge, cmd: commands.CreateJob) -> Any:
    return await request(edge.bus.nc, commands.CREATE_JOB, cmd, timeout=10.0)
