"""The object-storage interface the SETI service is written against, and its errors.

Three backends implement it: ``local`` (a directory under the data dir, URLs signed by the edge
itself), ``nats`` (a JetStream object-store bucket, URLs signed by the edge as for ``local``) and
``s3`` (presigned URLs from boto3). Everything that is not a presigned transfer is a
coroutine, so neither backend ever blocks the event loop (boto3 and file copies run in threads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MB = 1024 * 1024
#: files up to this size use one PUT; larger ones use multipart (seed 004)
SINGLE_PUT_MAX = 50 * MB
PART_SIZE = 10 * MB
URL_TTL_S = 3600

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,1023}$")


class StorageError(Exception):
    """A request the storage refuses: ``status`` is the HTTP status the edge answers with."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class StorageUnavailable(StorageError):
    """The storage could not be reached or did not answer: the service's failure, never the user's.

    A job that meets it is retried (by another searcher, later) and, if it never succeeds, failed
    uncharged; an edge answers 503.
    """

    def __init__(self, message: str) -> None:
        super().__init__(503, message, "STORAGE_UNAVAILABLE")


def check_key(key: str) -> str:
    """Object keys are relative paths of safe characters with no ``..`` segment."""
    if not _KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise StorageError(400, f"invalid object key: {key!r}", "INVALID_KEY")
    return key


def parts_for(size: int, part_size: int = PART_SIZE) -> int:
    return max(1, -(-size // part_size))


def normalise_etag(etag: str) -> str:
    return etag.strip().strip('"').strip().lower()


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    upload_id: str
    urls: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class UploadMeta:
    """What a multipart upload was started with; kept beside the parts until complete/abort."""

    key: str
    parts: int
    part_size: int
    max_bytes: int


def check_parts(meta: UploadMeta, parts: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Validate a complete-upload part list against the upload: sorted, unique, all present."""
    if not parts:
        raise StorageError(400, "parts must list every uploaded part", "INVALID_PARTS")
    seen: set[int] = set()
    for number, _ in parts:
        if number < 1 or number > meta.parts:
            raise StorageError(
                400, f"part number {number} is out of range (this upload has parts 1..{meta.parts})", "INVALID_PART"
            )
        if number in seen:
            raise StorageError(400, f"part {number} is listed more than once", "DUPLICATE_PART")
        seen.add(number)
    missing = sorted(set(range(1, meta.parts + 1)) - seen)
    if missing:
        raise StorageError(400, f"missing part(s) {', '.join(map(str, missing))}", "MISSING_PART")
    return sorted(parts)


class ObjectStorage(Protocol):
    backend: str

    async def presign_put(self, key: str, *, max_bytes: int, expires_in: int = URL_TTL_S) -> str: ...

    async def create_multipart(
        self, key: str, *, parts: int, max_bytes: int, part_size: int = PART_SIZE, expires_in: int = URL_TTL_S
    ) -> MultipartUpload: ...

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        """Assemble the parts in order after checking every ETag; return the object's size."""
        ...

    async def abort_multipart(self, key: str, upload_id: str) -> None: ...

    async def head(self, key: str) -> int | None:
        """The object's size, or None when there is no such object."""
        ...

    async def presign_get(self, key: str, *, filename: str, expires_in: int = URL_TTL_S) -> str: ...

    async def put_file(self, key: str, path: Path) -> None: ...

    async def put_bytes(self, key: str, data: bytes) -> None: ...

    async def get_bytes(self, key: str) -> bytes | None: ...

    async def delete(self, key: str) -> None: ...

    async def close(self) -> None:
        """Release connections (the nats backend's own NATS connection); a no-op elsewhere."""
        ...
