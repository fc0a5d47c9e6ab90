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
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web

from actors.imager import commands, work
from bus.request import CommandUnavailable, request
from web.auth import require_key, require_operator
from web.errors import ApiError
from web.projections import dsa_jobs
from web.routes.dsa_qa import confine
from web.routing import json_response, read_json, read_query

if TYPE_CHECKING:
    from web.app import Edge


#: the imaging parameters a job may set, as a Struct generated from ``work.JOB_PARAMETERS`` so that
#: the OpenAPI document states each one's type and range (``imsize`` even)
ImagingParameters = msgspec.defstruct(
    "ImagingParameters",
    [
        (
            name,
            Annotated[typ, msgspec.Meta(ge=lo, le=hi, multiple_of=2 if name == "imsize" else None)] | None,
            None,
        )
        for name, (_, typ, lo, hi) in work.JOB_PARAMETERS.items()
    ],
    kw_only=True,
    omit_defaults=True,
    forbid_unknown_fields=True,
)


class JobCreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    job_type: Annotated[
        Literal["image"], msgspec.Meta(extra={"hint": "mosaics have their own endpoint: POST /api/mosaics/generate"})
    ]
    ms_paths: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=4096)]], msgspec.Meta(min_length=1, max_length=100)
    ]
    parameters: ImagingParameters = msgspec.field(default_factory=ImagingParameters)  # type: ignore[valid-type]


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
        try:
            params = work.check_parameters(
                {k: v for k, v in msgspec.structs.asdict(body.parameters).items() if v is not None}
            )
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
        query=JobsQuery,
        responses={400: "unknown status", 422: "bad limit or offset"},
    )
    async def list_jobs(request: web.Request) -> web.Response:
        await read_guard(request)
        q = read_query(request, JobsQuery)
        return json_response(await dsa_jobs.list_jobs(store, q.status, q.limit, q.offset))


class JobsQuery(msgspec.Struct, kw_only=True):
    status: Literal[dsa_jobs.JOB_STATUSES] | None = None  # type: ignore[valid-type]
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


async def request_job(edge: Edge, cmd: commands.CreateJob) -> Any:
    return await request(edge.bus.nc, commands.CREATE_JOB, cmd, timeout=10.0)
