"""The SETI analysis API of seed 004: uploads, analysis jobs and downloads (usage, API keys and
reports: ``seti_account``; the bodies: ``seti_bodies``).

Reads (jobs, usage, keys) come from the edge's projection (``web.projections.seti``). Decisions go
to the quota keeper by request/reply (admission, key creation and revocation), and each answer
carries the stream sequence of the fact it published: the handler waits until this edge has applied
it, so the caller's next request sees its own write.

With the local storage backend the signed upload and download URLs point at ``/objects/{key}`` on
this edge; with S3 they are S3's own presigned URLs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
import uuid
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from actors.quota_keeper import commands, tiers
from bus.request import CommandUnavailable, request
from storage import MB, PART_SIZE, SINGLE_PUT_MAX, URL_TTL_S, StorageError, open_storage, parts_for
from storage.base import check_key
from web.auth import Principal, require_key
from web.errors import ApiError
from web.routes.seti_bodies import (
    FORMATS,
    MAX_CADENCE_FILES,
    AbortUploadRequest,
    AnalyzeCadenceRequest,
    AnalyzeCadenceResponse,
    AnalyzeRequest,
    AnalyzeResponse,
    CompleteUploadRequest,
    DownloadQuery,
    DownloadResponse,
    JobsQuery,
    JobView,
    MessageResponse,
    PartUrl,
    Progress,
    UploadUrlRequest,
    UploadUrlResponse,
)
from web.routing import json_response, read_json, read_query

if TYPE_CHECKING:
    from web.app import Edge

T = TypeVar("T")
TAG = "seti"
COMMAND_TIMEOUT_S = 10.0
ADMIT_MARGIN_S = 1.0  # the keeper's deadline is this much before ours: a reply in flight still lands
IDEMPOTENCY_WINDOW_S = 86400  # a client's own Idempotency-Key is remembered for a day
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
ALLOWED_SUFFIXES = (".fil", ".h5")


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


# -- helpers ----------------------------------------------------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    safe = _UNSAFE.sub("_", base).lstrip("._") or "upload"
    return safe[-200:]


def _check_filename(filename: str) -> str:
    if any(c < " " or c == "\x7f" for c in filename):  # as the schema's pattern says, in any regex dialect
        raise ApiError(
            400, "the filename must not contain control characters", "INVALID_FILENAME", {"field": "filename"}
        )
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


async def keeper_command(edge: Edge, verb: str, payload: Any, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
    """Ask the quota keeper to decide (admit, create or revoke a key); its answer, once this edge
    has applied the fact it published, so the caller's next request sees its own write."""
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


async def job_of(edge: Edge, principal: Principal, job_id: str) -> Any:
    """The job's projection row: 404 when there is none, 403 when it is another user's."""
    row = await edge.store.fetchone("SELECT * FROM seti_jobs WHERE job_id=?", (job_id,))
    if row is None:
        raise ApiError(404, f"job {job_id!r} not found", "JOB_NOT_FOUND")
    if row["user_id"] != principal.user_id:
        raise ApiError(403, "this job belongs to a different user", "FORBIDDEN")
    return row


def register(edge: Edge) -> None:
    api = edge.api
    settings = edge.settings
    storage = open_storage(settings, base_url=lambda: settings.public_url or edge.url, nc=edge.bus.nc)
    auth_errors = {403: "Missing, invalid, expired or revoked API key"}

    command = functools.partial(keeper_command, edge)
    owned_job = functools.partial(job_of, edge)

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
            raise ApiError(
                400, f"a cadence has 2 to {MAX_CADENCE_FILES} files; got {n}", "INVALID_CADENCE", {"field": "files"}
            )
        if all(f.on for f in body.files) or not any(f.on for f in body.files):
            raise ApiError(
                400, "a cadence needs at least one ON and one OFF file", "INVALID_CADENCE", {"field": "files"}
            )
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
        also_content=("text/csv",),
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
