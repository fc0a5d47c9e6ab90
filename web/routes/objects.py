"""The HTTP side of the edge-signed URLs: ``PUT`` and ``GET /objects/{key}``.

With the local backend (``storage.local.LocalStorage``) and the JetStream object store
(``storage.nats_object.NatsObjectStorage``); with S3 the URLs are S3's own. The URL's signature
(``storage.signing``) carries the method, key, expiry and size limit, so the edge needs no state to
check one. A PUT streams its body to a temporary file and refuses it the moment it passes the
signed limit; a part of a multipart upload also records its MD5 as the ETag. With the object store
the finished temporary file (under the data dir) is then written into the bucket, and a GET streams
the object out chunk by chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid

from aiohttp import web

from storage.base import StorageError, check_key
from storage.local import CHUNK, LocalStorage
from storage.nats_object import NatsObjectStorage
from storage.signing import expired
from web.routing import Api

#: object keys as the storage accepts them (``storage.base.check_key``)
OBJECT_KEY = {
    "type": "string",
    "maxLength": 1024,
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$",
}


EdgeSigned = LocalStorage | NatsObjectStorage


def verify(storage: EdgeSigned, request: web.Request, method: str, key: str, upload_id: str = "", part: int = 0) -> int:
    """The URL's size limit, if its signature is good and it has not expired; 403 otherwise."""
    q = request.query
    try:
        expires = int(q["X-Expires"])
        max_bytes = int(q.get("X-Max-Bytes", "0"))
        signature = q["X-Signature"]
    except (KeyError, ValueError):
        raise StorageError(403, "missing or malformed URL signature", "INVALID_SIGNATURE") from None
    if not storage.signer.verify(signature, method, key, expires, max_bytes, upload_id, part):
        raise StorageError(403, "invalid URL signature", "INVALID_SIGNATURE")
    if expired(expires):
        raise StorageError(403, "this URL has expired; request a new one", "URL_EXPIRED")
    return max_bytes


async def _receive_body(request: web.Request, tmp: os.PathLike[str], max_bytes: int) -> str:
    """Stream the body into ``tmp``, refusing it as soon as it passes ``max_bytes``; its MD5."""
    md5 = hashlib.md5(usedforsecurity=False)
    received = 0
    fh = await asyncio.to_thread(open, tmp, "wb")
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            received += len(chunk)
            if received > max_bytes:
                raise StorageError(413, f"upload exceeds the limit of {max_bytes} bytes", "TOO_LARGE")
            md5.update(chunk)
            await asyncio.to_thread(fh.write, chunk)
    finally:
        fh.close()
    return md5.hexdigest()


def _check_length(request: web.Request, max_bytes: int) -> None:
    if request.content_length is not None and request.content_length > max_bytes:
        raise StorageError(
            413, f"upload of {request.content_length} bytes exceeds the limit of {max_bytes} bytes", "TOO_LARGE"
        )


def _part_number(request: web.Request, upload_id: str) -> int:
    if not upload_id:
        return 0
    try:
        return int(request.query.get("partNumber", ""))
    except ValueError:
        raise StorageError(400, "partNumber must be an integer", "INVALID_PART") from None


async def receive_put_nats(storage: NatsObjectStorage, request: web.Request) -> web.Response:
    """PUT to a signed URL with the object store: the body to a temporary file, then into the bucket."""
    key = request.match_info["key"]
    check_key(key)
    upload_id = request.query.get("uploadId", "")
    part = _part_number(request, upload_id)
    max_bytes = verify(storage, request, "PUT", key, upload_id, part)
    _check_length(request, max_bytes)
    if upload_id:
        meta = await storage.upload_meta(upload_id, key)
        if not 1 <= part <= meta.parts:
            raise StorageError(400, f"part number {part} is out of range (1..{meta.parts})", "INVALID_PART")
    async with storage.temp_file() as tmp:
        etag = await _receive_body(request, tmp, max_bytes)
        if upload_id:
            await storage.upload_meta(upload_id, key)  # 404 if aborted meanwhile
            await storage.put_part(upload_id, part, tmp, etag)
        else:
            await storage.put_file(key, tmp)
    return web.Response(status=200, headers={"ETag": f'"{etag}"'})


async def serve_get_nats(storage: NatsObjectStorage, request: web.Request) -> web.StreamResponse:
    """GET of a signed URL with the object store: streamed from the bucket through a temporary file."""
    key = request.match_info["key"]
    verify(storage, request, "GET", key)
    filename = "".join(c for c in request.query.get("filename", key.rsplit("/", 1)[-1]) if c.isalnum() or c in "._-")
    async with storage.temp_file() as tmp:
        if not await storage.get_file(key, tmp):
            raise StorageError(404, "no such object (it may have expired)", "NOT_FOUND")
        response = web.StreamResponse(
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Content-Type": "application/octet-stream",
            }
        )
        response.content_length = tmp.stat().st_size
        await response.prepare(request)
        fh = await asyncio.to_thread(open, tmp, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                await response.write(chunk)
        finally:
            fh.close()
        await response.write_eof()
        return response


async def receive_put(storage: LocalStorage, request: web.Request) -> web.Response:
    """PUT to a signed URL: stream the body to disk, refusing it as soon as it passes the limit."""
    key = request.match_info["key"]
    check_key(key)
    upload_id = request.query.get("uploadId", "")
    part = _part_number(request, upload_id)
    max_bytes = verify(storage, request, "PUT", key, upload_id, part)
    _check_length(request, max_bytes)
    if upload_id:
        meta = storage.upload_meta(upload_id, key)
        if not 1 <= part <= meta.parts:
            raise StorageError(400, f"part number {part} is out of range (1..{meta.parts})", "INVALID_PART")
        target = storage.upload_dir(upload_id) / f"{part:05d}"
    else:
        target = storage.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
    try:
        etag = await _receive_body(request, tmp, max_bytes)
        if upload_id and not target.parent.exists():
            raise StorageError(404, "the upload was aborted", "NO_SUCH_UPLOAD")
        os.replace(tmp, target)
        if upload_id:
            (target.parent / f"{part:05d}.etag").write_text(etag)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return web.Response(status=200, headers={"ETag": f'"{etag}"'})


async def serve_get(storage: LocalStorage, request: web.Request) -> web.StreamResponse:
    key = request.match_info["key"]
    verify(storage, request, "GET", key)
    path = storage.path(key)
    if not path.is_file():
        raise StorageError(404, "no such object (it may have expired)", "NOT_FOUND")
    filename = "".join(c for c in request.query.get("filename", path.name) if c.isalnum() or c in "._-")
    return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def register(api: Api, storage: EdgeSigned, tag: str) -> None:
    """Mount the two signed-URL targets (errors become the envelope through the middleware)."""

    @api.route(
        "PUT",
        "/objects/{key:.+}",
        tag=tag,
        summary="Signed upload URL target (single PUT or one multipart part); answers the part's ETag",
        params={"key": OBJECT_KEY},
        responses={400: "Bad part number", 403: "Tampered or expired signature", 413: "Larger than the URL allows"},
    )
    async def put_object(req: web.Request) -> web.Response:
        if isinstance(storage, NatsObjectStorage):
            return await receive_put_nats(storage, req)
        return await receive_put(storage, req)

    @api.route(
        "GET",
        "/objects/{key:.+}",
        tag=tag,
        summary="Signed download URL target",
        params={"key": OBJECT_KEY},
        responses={403: "Tampered or expired signature", 404: "No such object"},
    )
    async def get_object(req: web.Request) -> web.StreamResponse:
        if isinstance(storage, NatsObjectStorage):
            return await serve_get_nats(storage, req)
        return await serve_get(storage, req)
