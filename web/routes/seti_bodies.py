"""The SETI API's request and response bodies (seed 004), as msgspec Structs.

They are the contract: the edge decodes and validates requests with them, and the OpenAPI
document is generated from them, so a limit stated here is both enforced and published.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from actors.quota_keeper import keys
from schemas.seti import CADENCE_EXPORT_FILES, EXPORT_FILES

#: download formats: file name in the response (and the export's name in storage); a search job has
#: the first ones, a cadence job the events_* ones
FORMATS = {**EXPORT_FILES, **CADENCE_EXPORT_FILES}
MAX_CADENCE_FILES = 12


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
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z0-9._~=+/-]+$",
        extra={"status": 404, "code": "NO_SUCH_UPLOAD"},
    ),
]
Filename = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=1024,
        # No \s, \S or "." here: JSON Schema's regexes are ECMA-262's, the server's Python's, and they
        # disagree on what is whitespace (Python's \s takes \x1c-\x1f) and on "."; a 30-minute fuzz
        # run found a name valid for one and not the other. Control characters are refused outright.
        pattern=r"^[^\x00-\x1f\x7f]*[.]([fF][iI][lL]|[hH]5)$",
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
