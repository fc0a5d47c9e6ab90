"""Seed 000's science sections: ESE detection, alerts, mosaics and source monitoring.

Reads come from the edge's projection (``web/projections/science.py``). The two commands go to
actors by request/reply and need an operator key: closing an ESE candidate
(``cmd.variability.set_status``; the edge answers once its own projection shows the change) and
starting a mosaic job (``cmd.mosaicker.generate``, which answers with the job id; the job's
``dsa.job.updated`` events and the ``dsa.mosaic.ready`` follow on the stream).

``GET /api/mosaics/query`` without ``query_only=true`` starts a job, as the seed says; since that
changes state it needs an operator key like ``POST /api/mosaics/generate``. With ``query_only``
it is a plain read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web

from actors.mosaicker import commands as mosaic_commands
from actors.variability import commands as ese_commands
from bus.request import CommandUnavailable, request
from web.auth import require_operator, require_reader
from web.errors import ApiError
from web.projections import science
from web.routes.products import mosaic_urls
from web.routing import MAX_ROW_ID, json_response, read_json, read_query

if TYPE_CHECKING:
    from web.app import Edge

Dec = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
CANDIDATE_STATUSES = ("active", "resolved", "false_positive")
ALERT_TYPES = ("ese_candidate", "calibrator_missing", "system_error")
MAX_MOSAIC_SPAN_DAYS = 1.0


# -- bodies ------------------------------------------------------------------------------------
class EseCandidateView(msgspec.Struct):
    id: int
    source_id: str
    ra_deg: float
    dec_deg: float
    first_detection_at: str
    last_detection_at: str
    max_sigma_dev: float
    baseline_flux_jy: float
    peak_flux_jy: float
    status: str
    notes: str | None


class EseCandidatesResponse(msgspec.Struct):
    candidates: list[EseCandidateView]
    total: int


class CandidateStatusRequest(msgspec.Struct, forbid_unknown_fields=True):
    status: Literal["resolved", "false_positive"]
    notes: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


class AlertView(msgspec.Struct):
    id: int
    source_id: str | None
    alert_type: str
    severity: str
    message: str
    sent_at: str
    channel: str
    success: bool
    #: slack (posted: see success), not_configured (no webhook, nothing tried), dry_run (logged only)
    delivery: Literal["slack", "not_configured", "dry_run"] = "slack"


class AlertHistoryResponse(msgspec.Struct):
    alerts: list[AlertView]
    total: int


class SearchFilters(msgspec.Struct, forbid_unknown_fields=True):
    variability_min: float | None = None
    dec_min: Dec | None = None
    dec_max: Dec | None = None
    flux_min_mjy: float | None = None
    #: minimums of the variability statistics (a source without the statistic never matches)
    chi2_nu_min: float | None = None
    eta_min: float | None = None
    v_min: float | None = None


class SearchSort(msgspec.Struct, forbid_unknown_fields=True):
    field: Literal[tuple(science.SORT_COLUMNS)] = "sigma_deviation"  # type: ignore[valid-type]
    order: Literal["asc", "desc"] = "desc"


class SourceSearchRequest(msgspec.Struct, forbid_unknown_fields=True):
    query: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    filters: SearchFilters = msgspec.field(default_factory=SearchFilters)
    sort: SearchSort = msgspec.field(default_factory=SearchSort)
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


class SourceRow(msgspec.Struct):
    source_id: str
    ra_deg: float
    dec_deg: float
    nvss_flux_mjy: float | None
    mean_flux_mjy: float | None
    n_obs: int
    chi2_nu: float | None
    eta: float | None
    v: float | None
    sigma_deviation: float
    last_measured_at: str


class SourceSearchResponse(msgspec.Struct):
    sources: list[SourceRow]
    total: int
    limit: int
    offset: int


class VariabilityStats(msgspec.Struct):
    n_obs: int
    mean_flux_mjy: float | None
    std_flux_mjy: float | None
    chi2_nu: float | None
    eta: float | None
    v: float | None
    sigma_deviation: float


class Epoch(msgspec.Struct):
    mjd: float
    flux_mjy: float
    error_mjy: float
    snr: float
    image_path: str


class SourceDetail(msgspec.Struct):
    source_id: str
    ra_deg: float
    dec_deg: float
    nvss_flux_mjy: float | None
    vlass_flux_mjy: float | None
    spectral_index: float | None
    variability_stats: VariabilityStats
    timeseries: list[Epoch]


class MosaicView(msgspec.Struct):
    id: int
    name: str
    path: str
    start_mjd: float
    end_mjd: float
    n_images: int
    n_sources: int
    noise_jy: float
    thumbnail_path: str  # seed 000: the mosaicker's PNG (a server path)
    fits_url: str
    quicklook_url: str
    thumbnail_url: str


class MosaicsResponse(msgspec.Struct):
    mosaics: list[MosaicView]
    total: int


class MosaicGenerateRequest(msgspec.Struct, forbid_unknown_fields=True):
    start_mjd: float
    end_mjd: float
    dec_min: Dec | None = None
    dec_max: Dec | None = None


class MosaicsQuery(msgspec.Struct, kw_only=True):
    start_mjd: float
    end_mjd: float
    dec_min: Dec | None = None
    dec_max: Dec | None = None
    query_only: bool = False


class CandidatesQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0
    status: Literal["active", "resolved", "false_positive"] | None = None


class AlertsQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50
    source_id: str | None = None
    alert_type: Literal["ese_candidate", "calibrator_missing", "system_error"] | None = None


class MosaicJobResponse(msgspec.Struct):
    job_id: str
    status: str
    message: str = ""


# -- helpers -----------------------------------------------------------------------------------
def _check_range(lo: float | None, hi: float | None, lo_name: str, hi_name: str) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise ApiError(422, f"'{lo_name}' must not exceed '{hi_name}'", details={"field": lo_name})


def _check_mosaic_window(start: float, end: float, dec_min: float | None, dec_max: float | None) -> None:
    if not start < end:
        raise ApiError(422, "'start_mjd' must be before 'end_mjd'", details={"field": "start_mjd"})
    if end - start > MAX_MOSAIC_SPAN_DAYS:
        raise ApiError(422, f"a mosaic spans at most {MAX_MOSAIC_SPAN_DAYS:g} day", details={"field": "end_mjd"})
    if dec_min is not None and not -90 <= dec_min <= 90:
        raise ApiError(422, "'dec_min' must be between -90 and 90", details={"field": "dec_min"})
    if dec_max is not None and not -90 <= dec_max <= 90:
        raise ApiError(422, "'dec_max' must be between -90 and 90", details={"field": "dec_max"})
    _check_range(dec_min, dec_max, "dec_min", "dec_max")


async def _command(edge: Edge, subject: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
    try:
        reply = await request(edge.bus.nc, subject, payload, timeout=timeout)
    except CommandUnavailable:
        raise ApiError(503, "the actor that handles this is not running; try again later") from None
    if not reply.ok:
        raise ApiError(reply.status, reply.error, reply.code or None)
    return reply.data


def register(edge: Edge) -> None:
    api = edge.api
    store = edge.store

    read_guard = require_reader

    async def ese_snapshot() -> Any:
        return await science.ese_candidates(store)

    edge.snapshots["ese"] = ese_snapshot
    edge.topic_messages["ese"] = "ese_update"

    async def alerts_snapshot() -> Any:
        return await science.alert_history(store, 20)

    # New alert deliveries reach the dashboard live (the last 20, as GET /api/alerts/history?limit=20).
    edge.snapshots["alerts"] = alerts_snapshot
    edge.topic_messages["alerts"] = "alert_update"

    # -- ESE ---------------------------------------------------------------------------------
    @api.route(
        "GET",
        "/api/ese/candidates",
        response=EseCandidatesResponse,
        tag="ese",
        summary="ESE candidates, most recently detected first",
        query=CandidatesQuery,
        responses={400: "unknown status", 422: "bad limit or offset"},
    )
    async def ese_candidates(request: web.Request) -> web.Response:
        await read_guard(request)
        q = read_query(request, CandidatesQuery)
        return json_response(await science.ese_candidates(store, q.limit, q.status, q.offset))

    @api.route(
        "POST",
        "/api/ese/candidates/{candidate_id}/status",
        request=CandidateStatusRequest,
        response=EseCandidateView,
        tag="ese",
        auth="operator",
        summary="Close an ESE candidate (resolved or false_positive); operator key required",
        params={"candidate_id": {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}},
        responses={403: "not an operator", 404: "no such candidate", 409: "not active", 503: "detector down"},
    )
    async def set_candidate_status(request: web.Request) -> web.Response:
        principal = await require_operator(request)
        raw_id = request.match_info["candidate_id"]
        if not raw_id.isdigit():
            raise ApiError(422, "candidate id must be an integer", details={"field": "candidate_id"})
        candidate_id = int(raw_id)
        if candidate_id > MAX_ROW_ID:  # past any row SQLite holds: no such candidate, not an overflow (500)
            raise ApiError(404, f"no candidate {candidate_id}", "NOT_FOUND")
        body = await read_json(request, CandidateStatusRequest)
        cmd = ese_commands.SetCandidateStatus(
            candidate_id=candidate_id, status=body.status, notes=body.notes, operator=principal.user_id
        )
        data = await _command(edge, ese_commands.SET_STATUS, cmd)
        if data.get("seq"):
            await edge.wait_applied(int(data["seq"]))
        row = await science.ese_candidate(store, candidate_id)
        return json_response(row if row is not None else data["candidate"])

    # -- alerts ------------------------------------------------------------------------------
    @api.route(
        "GET",
        "/api/alerts/history",
        response=AlertHistoryResponse,
        tag="ese",
        summary="Every alert delivery attempt, newest first, with its success",
        query=AlertsQuery,
        responses={400: "unknown alert_type", 422: "bad limit"},
    )
    async def alerts_history(request: web.Request) -> web.Response:
        await read_guard(request)
        q = read_query(request, AlertsQuery)
        return json_response(await science.alert_history(store, q.limit, q.source_id or None, q.alert_type))

    # -- sources -----------------------------------------------------------------------------
    @api.route(
        "POST",
        "/api/sources/search",
        request=SourceSearchRequest,
        response=SourceSearchResponse,
        tag="sources",
        summary="Search sources by name prefix, variability (sigma_deviation, chi2_nu, eta, v), declination and flux",
        responses={400: "bad JSON", 422: "bad filter, sort field or paging"},
    )
    async def search(request: web.Request) -> web.Response:
        await read_guard(request)
        body = await read_json(request, SourceSearchRequest)
        if body.sort.field not in science.SORT_COLUMNS:
            raise ApiError(
                422,
                f"cannot sort by '{body.sort.field}'; sort.field must be one of {', '.join(science.SORT_COLUMNS)}",
                details={"field": "sort.field", "allowed": list(science.SORT_COLUMNS)},
            )
        f = body.filters
        _check_range(f.dec_min, f.dec_max, "filters.dec_min", "filters.dec_max")
        result = await science.search_sources(
            store,
            query=(body.query or "").strip() or None,
            variability_min=f.variability_min,
            dec_min=f.dec_min,
            dec_max=f.dec_max,
            flux_min_mjy=f.flux_min_mjy,
            chi2_nu_min=f.chi2_nu_min,
            eta_min=f.eta_min,
            v_min=f.v_min,
            sort_field=body.sort.field,
            order=body.sort.order,
            limit=body.limit,
            offset=body.offset,
        )
        return json_response(result)

    @api.route(
        "GET",
        "/api/sources/{source_id}",
        response=SourceDetail,
        tag="sources",
        summary="One source: catalogue entry, variability statistics and light curve",
        responses={404: "unknown source"},
    )
    async def source(request: web.Request) -> web.Response:
        await read_guard(request)
        source_id = request.match_info["source_id"]
        detail = await science.source_detail(store, source_id)
        if detail is None:
            raise ApiError(404, f"no measurements of source '{source_id}'", details={"source_id": source_id})
        return json_response(detail)

    # -- mosaics -----------------------------------------------------------------------------
    async def start_mosaic(request: web.Request, body: MosaicGenerateRequest) -> dict[str, Any]:
        principal = await require_operator(request)
        _check_mosaic_window(body.start_mjd, body.end_mjd, body.dec_min, body.dec_max)
        cmd = mosaic_commands.Generate(
            start_mjd=body.start_mjd,
            end_mjd=body.end_mjd,
            dec_min=body.dec_min,
            dec_max=body.dec_max,
            operator=principal.user_id,
        )
        return await _command(edge, mosaic_commands.GENERATE, cmd)

    @api.route(
        "GET",
        "/api/mosaics/query",
        response=(MosaicsResponse, MosaicJobResponse),
        tag="mosaics",
        summary="Mosaics overlapping a time (and declination) range; without query_only=true, start a job "
        "(operator key) and answer with its id",
        query=MosaicsQuery,
        responses={400: "missing start_mjd/end_mjd", 403: "starting a job needs an operator key", 422: "bad range"},
    )
    async def mosaics_query(request: web.Request) -> web.Response:
        q = read_query(request, MosaicsQuery)
        start, end, dec_min, dec_max = q.start_mjd, q.end_mjd, q.dec_min, q.dec_max
        if q.query_only:
            await read_guard(request)
            if start > end:
                raise ApiError(422, "'start_mjd' must not exceed 'end_mjd'", details={"field": "start_mjd"})
            _check_range(dec_min, dec_max, "dec_min", "dec_max")
            found = await science.query_mosaics(store, start, end, dec_min, dec_max)
            for m in found["mosaics"]:
                m.update(mosaic_urls(m["id"]))
            return json_response(found)
        data = await start_mosaic(request, MosaicGenerateRequest(start, end, dec_min, dec_max))
        return json_response(
            MosaicJobResponse(job_id=data["job_id"], status="pending", message="Mosaic generation job created")
        )

    @api.route(
        "POST",
        "/api/mosaics/generate",
        request=MosaicGenerateRequest,
        response=MosaicJobResponse,
        tag="mosaics",
        auth="operator",
        summary="Start a mosaic job over a time and declination range; operator key required",
        responses={403: "not an operator", 422: "bad range", 503: "mosaicker down"},
    )
    async def mosaics_generate(request: web.Request) -> web.Response:
        await require_operator(request)
        body = await read_json(request, MosaicGenerateRequest)
        data = await start_mosaic(request, body)
        return json_response({"job_id": data["job_id"], "status": "pending"})
