"""The SETI analysis API of seed 004: uploads, analysis jobs, downloads, usage, API keys, reports.

Reads (jobs, usage, keys) come from the edge's projection (``web.projections.seti``). Decisions go
to the quota keeper by request/reply (admission, key creation and revocation), and each answer
carries the stream sequence of the fact it published: the handler waits until this edge has applied
it, so the caller's next request sees its own write.

With the local storage backend the signed upload and download URLs point at ``/objects/{key}`` on
this edge; with S3 they are S3's own presigned URLs.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import msgspec
from aiohttp import web

from actors.quota_keeper import commands, keys, tiers
from bus.request import CommandUnavailable, request
from schemas.seti import CADENCE_EXPORT_FILES, EXPORT_FILES, ReportSubmitted
from storage import MB, PART_SIZE, SINGLE_PUT_MAX, URL_TTL_S, StorageError, open_storage, parts_for
from storage.base import check_key
from web.auth import Principal, require_key
from web.errors import ApiError
from web.projections.seti import month_of
from web.routing import decode_body, json_response, read_json, read_query

if TYPE_CHECKING:
    from web.app import Edge

T = TypeVar("T")
TAG = "seti"
COMMAND_TIMEOUT_S = 10.0
ADMIT_MARGIN_S = 1.0  # the keeper's deadline is this much before ours: a reply in flight still lands
IDEMPOTENCY_WINDOW_S = 86400  # a client's own Idempotency-Key is remembered for a day
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
ALLOWED_SUFFIXES = (".fil", ".h5")
#: download formats: file name in the response (and the export's name in storage); a search job has
#: the first ones, a cadence job the events_* ones
FORMATS = {**EXPORT_FILES, **CADENCE_EXPORT_FILES}
MAX_CADENCE_FILES = 12


# -- request and response bodies --------------------------------------------------------------
#: what /upload-url gives: uploads/<user>/<uuid>/<safe name>; no '.', '..' or empty segment
FileKey = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^uploads/[A-Za-z0-9_-][A-Za-z0-9._-]*/[A-Za-z0-9_-][A-Za-z0-9._-]*/[A-Za-z0-9_-][A-Za-z0-9._-]*$",
        extra={"status": 400, "code": "INVALID_FILE_KEY", "hint": "use the file_key that /upload-url gave"},
    ),
]
#: an upload id from /upload-url (32 hex digits with local storage; S3's own, URL-safe, otherwise)
UploadId = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z0-9._~=+/-]+$",
        extra={"status": 404, "code": "NO_SUCH_UPLOAD"},
    ),
]
Filename = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=1024,
        pattern=r"^\s*\S.*\.([fF][iI][lL]|[hH]5)\s*$",
        extra={"status": 400, "code": "UNSUPPORTED_FILE_TYPE", "hint": "the filename must end in .fil or .h5"},
    ),
]


class UploadUrlRequest(msgspec.Struct, kw_only=True):
    filename: Filename
    file_size: Annotated[int, msgspec.Meta(ge=1)] | None = None


class PartUrl(msgspec.Struct):
    partNumber: int  # the seed's field name
    url: str


class UploadUrlResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Single upload (``multipart`` false, ``upload_url``) or multipart (``upload_id``, ``parts``)."""

    file_key: str
    expires_in: int
    max_size_mb: int
    multipart: bool
    upload_url: str | None = None
    upload_id: str | None = None
    parts: list[PartUrl] | None = None
    part_size: int | None = None


class PartETag(msgspec.Struct):
    partNumber: int
    etag: str


class CompleteUploadRequest(msgspec.Struct, kw_only=True):
    file_key: FileKey
    upload_id: UploadId
    parts: list[PartETag]


class AbortUploadRequest(msgspec.Struct, kw_only=True):
    file_key: FileKey
    upload_id: UploadId


class MessageResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    message: str
    file_key: str | None = None


class AnalyzeRequest(msgspec.Struct, kw_only=True):
    file_key: FileKey
    filename: str | None = None
    source_name: str | None = None
    max_drift: Annotated[float, msgspec.Meta(gt=0, le=50)] = 4.0
    min_snr: Annotated[float, msgspec.Meta(gt=0)] = 10.0


def admission_request_id(header: str | None) -> str:
    """The id that makes a retried /analyze answer with the job it already made, uncharged.

    A client that sends ``Idempotency-Key`` owns its retries (remembered for a day). Without one
    there is no id, and each request is a new job: the same file analysed twice is a thing
    researchers do. What keeps a client that retries after a 503 from paying twice is the
    admission deadline (see ``commands.Admit.deadline``): a 503 means nothing was started.
    """
    if header is None:
        return ""
    if not _IDEMPOTENCY_KEY.match(header):
        raise ApiError(
            400,
            "Idempotency-Key must be 1 to 200 printable ASCII characters without spaces",
            "INVALID_IDEMPOTENCY_KEY",
            {"field": "Idempotency-Key"},
        )
    return "key:" + header


class CadenceFileRequest(msgspec.Struct, kw_only=True):
    file_key: str
    on: bool
    filename: str | None = None


class AnalyzeCadenceRequest(msgspec.Struct, kw_only=True):
    """An ON/OFF cadence, files in the order observed, each flagged ON (target) or OFF (reference)."""

    files: Annotated[
        list[CadenceFileRequest],
        msgspec.Meta(min_length=2, max_length=MAX_CADENCE_FILES, extra={"status": 400, "code": "INVALID_CADENCE"}),
    ]
    source_name: str | None = None
    max_drift: Annotated[float, msgspec.Meta(gt=0, le=50)] = 4.0
    min_snr: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    filter_level: Annotated[int, msgspec.Meta(ge=1, le=3)] = 3


class AnalyzeCadenceResponse(msgspec.Struct, kw_only=True):
    job_id: str
    status: str
    message: str
    status_url: str
    search_job_ids: list[str]


class AnalyzeResponse(msgspec.Struct, kw_only=True):
    job_id: str
    status: str
    message: str
    status_url: str


class Progress(msgspec.Struct, kw_only=True):
    percent: float
    stage: str
    coarse_channels_done: int
    coarse_channels_total: int


class JobView(msgspec.Struct, kw_only=True, omit_defaults=True):
    job_id: str
    status: str
    source_name: str
    filename: str
    file_size: int
    created_at: int
    completed_at: int | None = None
    progress: Progress | None = None
    results: dict[str, Any] | None = None
    error: str | None = None


class DownloadResponse(msgspec.Struct, kw_only=True):
    download_url: str
    format: str
    filename: str


class TierDetails(msgspec.Struct, kw_only=True):
    files_per_month: int
    max_file_mb: int
    price: str
    retention_days: int


class UsageResponse(msgspec.Struct, kw_only=True):
    user_id: str
    tier: str
    usage_this_month: int
    limit: int
    remaining: int
    tier_details: TierDetails


class CreateKeyRequest(msgspec.Struct, kw_only=True):
    name: Annotated[str, msgspec.Meta(max_length=1000)] = "Default"
    ttl_days: Annotated[
        int, msgspec.Meta(ge=keys.TTL_MIN_DAYS, le=keys.TTL_MAX_DAYS, extra={"status": 400, "code": "INVALID_TTL"})
    ] = keys.TTL_DEFAULT_DAYS


class CreateKeyResponse(msgspec.Struct, kw_only=True):
    key_id: str
    api_key: str
    expires_at: int
    ttl_days: int
    warning: str


class KeyView(msgspec.Struct, kw_only=True):
    key_id: str
    name: str
    created_at: int
    expires_at: int
    active: bool
    expired: bool


class KeyList(msgspec.Struct):
    keys: list[KeyView]


class RevokeKeyResponse(msgspec.Struct, kw_only=True):
    message: str
    key_id: str


class JobsQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, description="at most 100 are returned")] = 50


class DownloadQuery(msgspec.Struct, kw_only=True):
    format: Annotated[
        Literal[tuple(FORMATS)],  # type: ignore[valid-type]
        msgspec.Meta(extra={"status": 400, "code": "INVALID_FORMAT"}),
    ] = "json"


class ReportRequest(msgspec.Struct, kw_only=True):
    job_id: str
    error_type: Literal["pipeline_failure", "user_report"] | None = None
    description: str = ""
    metadata: dict[str, Any] = {}


class ReportResponse(msgspec.Struct, kw_only=True):
    report_id: str
    message: str


# -- helpers ----------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    safe = _UNSAFE.sub("_", base).lstrip("._") or "upload"
    return safe[-200:]


def _check_filename(filename: str) -> str:
    name = filename.strip()
    if not name:
        raise ApiError(400, "missing filename", "MISSING_FIELD", {"field": "filename"})
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise ApiError(
            400,
            f"unsupported file type: {name!r}; the filename must end in .fil or .h5",
            "UNSUPPORTED_FILE_TYPE",
            {"field": "filename"},
        )
    return name


def _own_key(principal: Principal, file_key: str) -> None:
    try:
        check_key(file_key)  # '..', '//', NUL, odd characters: not a key /upload-url gives
    except StorageError:
        raise ApiError(400, f"not a file_key from /upload-url: {file_key!r}", "INVALID_FILE_KEY") from None
    if not file_key.startswith("uploads/") or len(file_key.split("/")) < 4:
        raise ApiError(400, f"not a file_key from /upload-url: {file_key!r}", "INVALID_FILE_KEY")
    if file_key.split("/")[1] != principal.user_id:
        raise ApiError(403, "this file belongs to a different user", "FORBIDDEN")


async def _storage(call: Awaitable[T]) -> T:
    try:
        return await call
    except StorageError as exc:
        raise ApiError(exc.status, exc.message, exc.code or None) from None


def _tier(principal: Principal) -> tiers.Tier:
    return tiers.TIERS.get(principal.tier, tiers.TIERS["free"])


def _keys_allowed(principal: Principal) -> None:
    if not _tier(principal).can_create_keys:
        raise ApiError(403, "Free tier cannot create API keys — upgrade required", "UPGRADE_REQUIRED")


def _job_view(row: Any) -> JobView:
    status = row["status"]
    view = JobView(
        job_id=row["job_id"],
        status=status,
        source_name=row["source_name"],
        filename=row["filename"],
        file_size=row["file_size"],
        created_at=row["created_at"],
    )
    if status == "processing":
        view.progress = Progress(
            percent=round(row["percent"], 1),
            stage=row["stage"],
            coarse_channels_done=row["coarse_done"],
            coarse_channels_total=row["coarse_total"],
        )
    if status in ("complete", "failed"):
        view.completed_at = row["completed_at"]
    if status == "complete" and row["results"]:
        view.results = json.loads(row["results"])
    if status == "failed":
        view.error = row["error"] or "unknown error"
    return view


def register(edge: Edge) -> None:
    api = edge.api
    settings = edge.settings
    storage = open_storage(settings, base_url=lambda: settings.public_url or edge.url, nc=edge.bus.nc)
    auth_errors = {403: "Missing, invalid, expired or revoked API key"}

    async def command(verb: str, payload: Any, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        try:
            reply = await request(edge.bus.nc, commands.subject(verb), payload, timeout=timeout)
        except CommandUnavailable:
            raise ApiError(
                503, "the quota keeper did not answer in time; nothing was started or charged: try again shortly"
            ) from None
        if not reply.ok:
            raise ApiError(reply.status, reply.error, reply.code or None)
        seq = reply.data.get("seq")
        if isinstance(seq, int):
            with contextlib.suppress(TimeoutError):
                await edge.wait_applied(seq)
        return reply.data

    async def owned_job(principal: Principal, job_id: str) -> Any:
        row = await edge.store.fetchone("SELECT * FROM seti_jobs WHERE job_id=?", (job_id,))
        if row is None:
            raise ApiError(404, f"job {job_id!r} not found", "JOB_NOT_FOUND")
        if row["user_id"] != principal.user_id:
            raise ApiError(403, "this job belongs to a different user", "FORBIDDEN")
        return row

    # -- uploads ----------------------------------------------------------------------------
    @api.route(
        "POST",
        "/upload-url",
        request=UploadUrlRequest,
        response=UploadUrlResponse,
        tag=TAG,
        auth="key",
        summary="Presigned upload URL(s) for a .fil/.h5 file; multipart with 10 MB parts above 50 MB",
        responses={400: "Missing filename or unsupported file type", 413: "Larger than the tier allows", **auth_errors},
    )
    async def upload_url(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, UploadUrlRequest)
        filename = _check_filename(body.filename)
        tier = _tier(principal)
        tier_max = tier.max_file_mb * MB
        if body.file_size is not None and body.file_size > tier_max:
            raise ApiError(
                413,
                f"file of {body.file_size / MB:.1f} MB exceeds the {tier.name} tier limit of {tier.max_file_mb} MB",
                "FILE_TOO_LARGE",
            )
        file_key = f"uploads/{principal.user_id}/{uuid.uuid4()}/{_safe_filename(filename)}"
        if body.file_size is not None and body.file_size > SINGLE_PUT_MAX:
            upload = await _storage(
                storage.create_multipart(file_key, parts=parts_for(body.file_size), max_bytes=body.file_size)
            )
            out = UploadUrlResponse(
                multipart=True,
                upload_id=upload.upload_id,
                file_key=file_key,
                parts=[PartUrl(partNumber=n, url=u) for n, u in upload.urls],
                part_size=PART_SIZE,
                max_size_mb=tier.max_file_mb,
                expires_in=URL_TTL_S,
            )
        else:
            limit = body.file_size if body.file_size is not None else min(tier_max, SINGLE_PUT_MAX)
            url = await _storage(storage.presign_put(file_key, max_bytes=limit))
            out = UploadUrlResponse(
                upload_url=url, file_key=file_key, expires_in=URL_TTL_S, max_size_mb=tier.max_file_mb, multipart=False
            )
        return json_response(out)

    @api.route(
        "POST",
        "/complete-upload",
        request=CompleteUploadRequest,
        response=MessageResponse,
        tag=TAG,
        auth="key",
        summary="Complete a multipart upload: parts assembled in order, every ETag checked",
        responses={
            400: "Missing, duplicate, out-of-range or mismatched part",
            404: "No such upload",
            413: "Parts exceed the declared size",
            **auth_errors,
        },
    )
    async def complete_upload(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, CompleteUploadRequest)
        _own_key(principal, body.file_key)
        parts = [(p.partNumber, p.etag) for p in body.parts]
        await _storage(storage.complete_multipart(body.file_key, body.upload_id, parts))
        return json_response(MessageResponse(message="Upload complete", file_key=body.file_key))

    @api.route(
        "POST",
        "/abort-upload",
        request=AbortUploadRequest,
        response=MessageResponse,
        tag=TAG,
        auth="key",
        summary="Abort a multipart upload and remove its parts",
        responses={400: "Not a file_key from /upload-url", 404: "No such upload", **auth_errors},
    )
    async def abort_upload(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, AbortUploadRequest)
        _own_key(principal, body.file_key)
        await _storage(storage.abort_multipart(body.file_key, body.upload_id))
        return json_response(MessageResponse(message="Upload aborted"))

    from storage.local import LocalStorage
    from storage.nats_object import NatsObjectStorage

    if isinstance(storage, LocalStorage | NatsObjectStorage):  # the signed URLs point at this edge
        from web.routes import objects

        objects.register(api, storage, TAG)

    # -- jobs -------------------------------------------------------------------------------
    @api.route(
        "POST",
        "/analyze",
        request=AnalyzeRequest,
        response=AnalyzeResponse,
        status=202,
        tag=TAG,
        auth="key",
        summary="Start the de-Doppler search of an uploaded file; poll the job for status. With an Idempotency-Key header, a retry answers with the same job, uncharged; a 503 means nothing was started",
        responses={
            400: "Missing file_key or invalid JSON body",
            404: "File not found in storage (upload first)",
            413: "File exceeds tier size limit",
            429: "Monthly job limit reached, or too many concurrent jobs (max 5)",
            500: "Pipeline failed to start",
            503: "The quota keeper did not answer in time: nothing was started or charged; retry",
            **auth_errors,
        },
    )
    async def analyze(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, AnalyzeRequest)
        _own_key(principal, body.file_key)
        filename = (body.filename or "").strip() or body.file_key.rsplit("/", 1)[-1]
        source_name = (body.source_name or "").strip() or filename
        request_id = admission_request_id(req.headers.get("Idempotency-Key"))
        admitted = await command(
            "admit",
            commands.Admit(
                user_id=principal.user_id,
                file_key=body.file_key,
                filename=filename,
                source_name=source_name,
                max_drift=body.max_drift,
                min_snr=body.min_snr,
                request_id=request_id,
                request_window_s=IDEMPOTENCY_WINDOW_S,
                # the keeper admits nothing after we stop waiting, so our 503 means "nothing happened"
                deadline=time.time() + COMMAND_TIMEOUT_S - ADMIT_MARGIN_S,
            ),
        )
        job_id = admitted["job_id"]
        out = AnalyzeResponse(
            job_id=job_id,
            status="submitted",
            message=f"Processing started. Poll GET /jobs/{job_id} for status.",
            status_url=f"/jobs/{job_id}",
        )
        return json_response(out, status=202)

    @api.route(
        "POST",
        "/analyze-cadence",
        request=AnalyzeCadenceRequest,
        response=AnalyzeCadenceResponse,
        status=202,
        tag=TAG,
        auth="key",
        summary="Search an ON/OFF cadence (one job per file, each counted) and find its events, as turboSETI's "
        "find_event_pipeline; poll the returned job, download events_csv / events_json / events_plots",
        responses={
            400: "Invalid JSON body, a field missing, a key not from /upload-url, or not a cadence (2-12 files, "
            "at least one ON and one OFF)",
            403: "A file_key belongs to a different user",
            404: "A file is not in storage (upload first)",
            413: "A file exceeds the tier's size limit",
            422: "A field is out of range",
            429: "The month's file quota cannot hold every file, or too many concurrent jobs",
            500: "Pipeline failed to start",
            503: "The quota keeper is not answering",
            **auth_errors,
        },
    )
    async def analyze_cadence(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, AnalyzeCadenceRequest)
        n = len(body.files)
        if not 2 <= n <= MAX_CADENCE_FILES:
            raise ApiError(400, f"a cadence has 2 to {MAX_CADENCE_FILES} files; got {n}", "INVALID_CADENCE",
                           {"field": "files"})
        if all(f.on for f in body.files) or not any(f.on for f in body.files):
            raise ApiError(400, "a cadence needs at least one ON and one OFF file", "INVALID_CADENCE",
                           {"field": "files"})
        for f in body.files:
            _own_key(principal, f.file_key)
        files = [
            commands.CadenceFile(
                file_key=f.file_key, filename=(f.filename or "").strip() or f.file_key.rsplit("/", 1)[-1], on=f.on
            )
            for f in body.files
        ]
        first_on = next(f for f in files if f.on)
        admitted = await command(
            "admit_cadence",
            commands.AdmitCadence(
                user_id=principal.user_id,
                files=files,
                source_name=(body.source_name or "").strip() or first_on.filename,
                max_drift=body.max_drift,
                min_snr=body.min_snr,
                filter_level=body.filter_level,
            ),
        )
        job_id = admitted["job_id"]
        out = AnalyzeCadenceResponse(
            job_id=job_id,
            status="submitted",
            message=f"{n} searches started, then the event step. Poll GET /jobs/{job_id} for status.",
            status_url=f"/jobs/{job_id}",
            search_job_ids=list(admitted["job_ids"]),
        )
        return json_response(out, status=202)

    @api.route(
        "GET",
        "/jobs",
        response=list[JobView],
        tag=TAG,
        auth="key",
        summary="Your jobs, newest first",
        query=JobsQuery,
        responses=auth_errors,
    )
    async def list_jobs(req: web.Request) -> web.Response:
        principal = await require_key(req)
        limit = read_query(req, JobsQuery).limit
        rows = await edge.store.fetchall(
            "SELECT * FROM seti_jobs WHERE user_id=? ORDER BY created_at DESC, seq DESC LIMIT ?",
            (principal.user_id, min(limit, 100)),
        )
        return json_response([_job_view(r) for r in rows])

    @api.route(
        "GET",
        "/jobs/{job_id}",
        response=JobView,
        tag=TAG,
        auth="key",
        summary="Job status; progress while processing, full results when complete",
        responses={404: "Job not found", **auth_errors},
    )
    async def get_job(req: web.Request) -> web.Response:
        principal = await require_key(req)
        row = await owned_job(principal, req.match_info["job_id"])
        return json_response(_job_view(row))

    @api.route(
        "GET",
        "/jobs/{job_id}/download",
        response=DownloadResponse,
        tag=TAG,
        auth="key",
        summary="Signed download URL of one result file; csv is returned inline as text/csv",
        query=DownloadQuery,
        responses={
            400: "Invalid format parameter",
            403: "Job belongs to a different user",
            404: "Job not found, or requested format not yet available",
        },
    )
    async def download(req: web.Request) -> web.StreamResponse:
        principal = await require_key(req)
        fmt = read_query(req, DownloadQuery).format
        row = await owned_job(principal, req.match_info["job_id"])
        if row["status"] != "complete":
            raise ApiError(404, f"job is {row['status']}; results are not available yet", "NOT_READY")
        if row["exports_expired"]:
            days = _tier(principal).retention_days
            raise ApiError(404, f"result files were removed after the {days}-day retention period", "EXPIRED")
        export = await edge.store.fetchone(
            "SELECT key FROM seti_exports WHERE job_id=? AND format=?", (row["job_id"], fmt)
        )
        if export is None:
            raise ApiError(
                404,
                f"format {fmt!r} is not available yet; exports are written 10-30 s after completion",
                "NOT_READY",
            )
        if fmt == "csv":
            data = await _storage(storage.get_bytes(export["key"]))
            if data is None:
                raise ApiError(404, "the CSV export is not in storage (yet)", "NOT_READY")
            return web.Response(body=data, content_type="text/csv", charset="utf-8")
        url = await _storage(storage.presign_get(export["key"], filename=FORMATS[fmt]))
        return json_response(DownloadResponse(download_url=url, format=fmt, filename=FORMATS[fmt]))

    # -- usage and keys ---------------------------------------------------------------------
    @api.route(
        "GET",
        "/usage",
        response=UsageResponse,
        tag=TAG,
        auth="key",
        summary="This month's usage (UTC) and the tier's quota",
        responses=auth_errors,
    )
    async def usage(req: web.Request) -> web.Response:
        principal = await require_key(req)
        tier = _tier(principal)
        row = await edge.store.fetchone(
            "SELECT count FROM seti_usage WHERE user_id=? AND month=?", (principal.user_id, month_of(time.time()))
        )
        used = int(row["count"]) if row else 0
        return json_response(
            UsageResponse(
                user_id=principal.user_id,
                tier=tier.name,
                usage_this_month=used,
                limit=tier.files_per_month,
                remaining=max(0, tier.files_per_month - used),
                tier_details=TierDetails(**tier.details()),
            )
        )

    @api.route(
        "POST",
        "/api-keys",
        request=CreateKeyRequest,
        response=CreateKeyResponse,
        status=201,
        tag=TAG,
        auth="key",
        summary="Create an API key (Researcher+); the key is shown only in this response; the body may be left out",
        body_optional=True,
        responses={400: "ttl_days out of 1..365", 403: "Free tier cannot create API keys — upgrade required"},
    )
    async def create_key(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        raw = await req.read()
        body = decode_body(raw, CreateKeyRequest) if raw.strip() else CreateKeyRequest()
        try:
            keys.check_ttl(body.ttl_days)
        except ValueError as exc:
            raise ApiError(400, str(exc), "INVALID_TTL", {"field": "ttl_days"}) from None
        name = body.name.strip() or "Default"
        api_key, key_id = keys.generate()
        created = await command(
            "create_key",
            commands.CreateKey(
                user_id=principal.user_id,
                key_id=key_id,
                key_hash=keys.key_hash(api_key),
                name=name[:100],
                ttl_days=body.ttl_days,
            ),
        )
        out = CreateKeyResponse(
            key_id=key_id,
            api_key=api_key,
            expires_at=created["expires_at"],
            ttl_days=body.ttl_days,
            warning="Store this key securely. It will not be shown again.",
        )
        return json_response(out, status=201)

    @api.route(
        "GET",
        "/api-keys",
        response=KeyList,
        tag=TAG,
        auth="key",
        summary="Your API keys, masked (Researcher+)",
        responses=auth_errors,
    )
    async def list_keys(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        now = time.time()
        rows = await edge.store.fetchall(
            "SELECT * FROM seti_keys WHERE user_id=? ORDER BY created_at DESC, key_id", (principal.user_id,)
        )
        views = [
            KeyView(
                key_id=r["key_id"],
                name=r["name"],
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                active=r["revoked_at"] is None,
                expired=r["expires_at"] <= now,
            )
            for r in rows
        ]
        return json_response(KeyList(keys=views))

    @api.route(
        "DELETE",
        "/api-keys/{key_id}",
        response=RevokeKeyResponse,
        tag=TAG,
        auth="key",
        summary="Revoke an API key, at once on every edge (Researcher+)",
        responses={403: "Key belongs to a different user", 404: "Key not found"},
    )
    async def revoke_key(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        key_id = req.match_info["key_id"]
        await command("revoke_key", commands.RevokeKey(user_id=principal.user_id, key_id=key_id))
        return json_response(RevokeKeyResponse(message="API key revoked", key_id=key_id))

    # -- reports ----------------------------------------------------------------------------
    @api.route(
        "POST",
        "/reports",
        request=ReportRequest,
        response=ReportResponse,
        status=201,
        tag=TAG,
        auth="key",
        summary="Submit an error report or feedback about one of your jobs",
        responses={400: "Missing job_id or invalid JSON body", 404: "Job not found", **auth_errors},
    )
    async def reports(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, ReportRequest)
        await owned_job(principal, body.job_id)
        report_id = "rpt-" + secrets.token_hex(12)
        event = ReportSubmitted(
            report_id=report_id,
            user_id=principal.user_id,
            job_id=body.job_id,
            error_type=body.error_type or "user_report",
            description=body.description[:10000],
            metadata=body.metadata,
            producer="edge",
            correlation_id=body.job_id,
        )
        await edge.bus.publish(event)
        return json_response(ReportResponse(report_id=report_id, message="Report submitted. Thank you."), status=201)
