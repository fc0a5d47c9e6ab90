"""The JetStream object-store backend: uploads and results in the NATS cluster the platform already runs.

Why: on a cluster every host reaches NATS, so objects kept in a JetStream object-store bucket
(``--object-store-bucket``, a stream ``OBJ_<bucket>`` underneath) are where every edge, quota keeper
and searcher finds them, with no extra service. The bucket is created with ``--object-store-replicas``
and, as ``bus.kv`` does for KV buckets, an existing bucket's replicas are only ever raised.

The transfers are the local backend's: URLs signed by the edge (``storage.signing``), whose
``web.routes.objects`` receives a PUT into a temporary file under the data dir (refused the moment it
passes the signed limit) and then writes it into the bucket, and streams a GET out of it. A multipart
part is an object of its own (``sys/multipart/<upload_id>/<n>``, its MD5 beside it); completing the
upload assembles the parts, in order, into a temporary file that becomes the object.

Memory: nats-py's ``ObjectStore.put`` reads a file object chunk by chunk (128 KiB chunks, one
JetStream publish each) and ``get(writeinto=...)`` writes each chunk to the file as it arrives, so
neither direction holds an object in RAM; ``get_bytes`` (small records: outcomes, markers) does.

Errors: an absent key is ``None``/404 as with the other backends; anything else NATS answers with
(no connection, a timeout, no JetStream) is :class:`~storage.base.StorageUnavailable`, which callers
treat as the service's failure, retried and never charged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

import logs
from storage.base import (
    PART_SIZE,
    URL_TTL_S,
    MultipartUpload,
    StorageError,
    StorageUnavailable,
    UploadMeta,
    check_key,
    check_parts,
    normalise_etag,
)
from storage.signing import EdgeSignedUrls, Signer

log = logs.get("storage.nats")

META_PREFIX = "sys/multipart/"  # a valid key: check_key refuses a leading "_"
#: one storage operation (a whole transfer excepted) gives up after this long: the service is down
OP_TIMEOUT_S = 10.0


def _upload_id_ok(upload_id: str) -> bool:
    return len(upload_id) == 32 and all(c in "0123456789abcdef" for c in upload_id)


class NatsObjectStorage(EdgeSignedUrls):
    backend = "nats"

    def __init__(
        self,
        url: str,
        signer: Signer,
        base_url: Callable[[], str],
        scratch: Path,
        *,
        bucket: str = "observatory",
        replicas: int = 1,
        tls_ca: str = "",
        nc: Client | None = None,
    ) -> None:
        self.url = url
        self.signer = signer
        self.base_url = base_url
        self.scratch = scratch
        self.bucket = bucket
        self.replicas = max(1, replicas)
        self.tls_ca = tls_ca
        #: the process's bus connection when given (not closed here); else one of our own, on first use
        self._shared = nc
        self._nc: Client | None = None
        self._store: ObjectStore | None = None
        self._lock = asyncio.Lock()

    # -- connection ------------------------------------------------------------------------------
    async def store(self) -> ObjectStore:
        """The bucket, connected and created (or its replicas raised) on first use."""
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                try:
                    self._store = await asyncio.wait_for(self._open(), OP_TIMEOUT_S)
                except (TimeoutError, OSError, nats.errors.Error) as exc:
                    await self._close_nc()
                    raise StorageUnavailable(f"NATS object store {self.bucket!r} unreachable: {exc!r}") from exc
        return self._store

    async def _open(self) -> ObjectStore:
        from bus.connection import connect

        nc = self._shared
        if nc is None:
            if self._nc is None:
                self._nc = await connect(self.url, name="obs-storage", tls_ca=self.tls_ca)
            nc = self._nc
        js = nc.jetstream()
        stream = f"OBJ_{self.bucket}"
        try:
            info = await js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # another process created it first
                await js.create_object_store(
                    self.bucket,
                    ObjectStoreConfig(
                        bucket=self.bucket,
                        description="observatory uploads and results",
                        storage=StorageType.FILE,
                        replicas=self.replicas,
                    ),
                )
                log.info("object store created", bucket=self.bucket, replicas=self.replicas)
            return await js.object_store(self.bucket)
        have = info.config.num_replicas or 1
        if self.replicas > have:
            await js.update_stream(replace(info.config, num_replicas=self.replicas))
            log.info("object store changed", bucket=self.bucket, change=f"replicas {have} -> {self.replicas}")
        elif self.replicas < have:
            log.warning(
                "object store differs from the settings",
                bucket=self.bucket,
                drift=f"replicas: the bucket has {have}, the settings ask {self.replicas}; kept {have}",
            )
        return await js.object_store(self.bucket)

    async def _close_nc(self) -> None:
        nc, self._nc, self._store = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

    async def close(self) -> None:
        await self._close_nc()

    @contextlib.asynccontextmanager
    async def _op(self, what: str) -> AsyncIterator[ObjectStore]:
        """The bucket for one operation; NATS trouble becomes ``StorageUnavailable`` (the service's fault)."""
        store = await self.store()
        try:
            yield store
        except StorageError:
            raise
        except (TimeoutError, nats.errors.Error, OSError) as exc:  # OSError: the scratch disk too
            raise StorageUnavailable(f"NATS object store {self.bucket!r}: {what} failed: {exc!r}") from exc

    # -- objects ---------------------------------------------------------------------------------
    async def head(self, key: str) -> int | None:
        check_key(key)
        async with self._op("head") as store:
            try:
                info = await asyncio.wait_for(store.get_info(key), OP_TIMEOUT_S)
            except nats.js.errors.ObjectNotFoundError:
                return None
            return int(info.size or 0)

    async def put_file(self, key: str, path: Path) -> None:
        check_key(key)
        async with self._op("put") as store:
            fh = await asyncio.to_thread(open, path, "rb")  # read chunk by chunk in a thread by nats-py
            try:
                await store.put(key, fh)
            finally:
                fh.close()

    async def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        async with self._op("put") as store:
            await asyncio.wait_for(store.put(key, data), OP_TIMEOUT_S)

    async def get_bytes(self, key: str) -> bytes | None:
        check_key(key)
        async with self._op("get") as store:
            try:
                result = await asyncio.wait_for(store.get(key), OP_TIMEOUT_S)
            except nats.js.errors.ObjectNotFoundError:
                return None
            return bytes(result.data or b"")

    async def get_file(self, key: str, target: Path) -> bool:
        """Stream the object into ``target`` (chunk by chunk, never whole in memory); False if absent."""
        check_key(key)
        async with self._op("get") as store:
            fh = await asyncio.to_thread(open, target, "wb")
            try:
                await store.get(key, writeinto=fh)
            except nats.js.errors.ObjectNotFoundError:
                target.unlink(missing_ok=True)
                return False
            finally:
                fh.close()
        return True

    async def delete(self, key: str) -> None:
        check_key(key)
        async with self._op("delete") as store:
            with contextlib.suppress(nats.js.errors.ObjectNotFoundError):
                await asyncio.wait_for(store.delete(key), OP_TIMEOUT_S)

    @contextlib.asynccontextmanager
    async def temp_file(self) -> AsyncIterator[Path]:
        """A scratch file under the data dir, removed at exit (PUT bodies, assembled uploads)."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f".tmp-{uuid.uuid4().hex}"
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    # -- presigning (the edge serves these URLs: web.routes.objects) -------------------------------
    # -- multipart -------------------------------------------------------------------------------
    @staticmethod
    def part_key(upload_id: str, number: int) -> str:
        return f"{META_PREFIX}{upload_id}/{number:05d}"

    async def create_multipart(
        self, key: str, *, parts: int, max_bytes: int, part_size: int = PART_SIZE, expires_in: int = URL_TTL_S
    ) -> MultipartUpload:
        check_key(key)
        upload_id = uuid.uuid4().hex
        meta = {"key": key, "parts": parts, "part_size": part_size, "max_bytes": max_bytes}
        await self.put_bytes(f"{META_PREFIX}{upload_id}/meta.json", json.dumps(meta).encode())
        urls = self._part_urls(key, upload_id, parts, part_size, expires_in)
        return MultipartUpload(upload_id=upload_id, urls=urls)

    async def upload_meta(self, upload_id: str, key: str) -> UploadMeta:
        if not _upload_id_ok(upload_id):
            raise StorageError(404, "no such upload", "NO_SUCH_UPLOAD")
        raw = await self.get_bytes(f"{META_PREFIX}{upload_id}/meta.json")
        if raw is None:
            raise StorageError(404, "no such upload (completed, aborted or never started)", "NO_SUCH_UPLOAD")
        meta = UploadMeta(**json.loads(raw))
        if meta.key != key:
            raise StorageError(404, "no such upload for this file_key", "NO_SUCH_UPLOAD")
        return meta

    async def put_part(self, upload_id: str, number: int, path: Path, etag: str) -> None:
        """Store one received part and its MD5 (called by the edge once the body is complete)."""
        await self.put_file(self.part_key(upload_id, number), path)
        await self.put_bytes(self.part_key(upload_id, number) + ".etag", etag.encode())

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        meta = await self.upload_meta(upload_id, key)
        ordered = check_parts(meta, parts)
        total = 0
        for number, etag in ordered:
            stored = await self.get_bytes(self.part_key(upload_id, number) + ".etag")
            size = await self.head(self.part_key(upload_id, number))
            if stored is None or size is None:
                raise StorageError(400, f"part {number} was not uploaded", "MISSING_PART")
            if normalise_etag(etag) != stored.decode():
                raise StorageError(400, f"ETag of part {number} does not match the uploaded part", "ETAG_MISMATCH")
            total += size
        if total > meta.max_bytes:
            raise StorageError(
                413, f"the parts add up to {total} bytes, over the limit of {meta.max_bytes}", "TOO_LARGE"
            )
        async with self.temp_file() as assembled, self.temp_file() as part:
            out = await asyncio.to_thread(open, assembled, "wb")
            try:
                for number, _ in ordered:
                    if not await self.get_file(self.part_key(upload_id, number), part):
                        raise StorageError(400, f"part {number} was not uploaded", "MISSING_PART")
                    await asyncio.to_thread(_append, out, part)
            finally:
                out.close()
            await self.put_file(key, assembled)
        await self._remove_upload(upload_id, meta.parts)
        return total

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        meta = await self.upload_meta(upload_id, key)
        await self._remove_upload(upload_id, meta.parts)

    async def _remove_upload(self, upload_id: str, parts: int) -> None:
        await self.delete(f"{META_PREFIX}{upload_id}/meta.json")  # first: late parts now find no upload
        for n in range(1, parts + 1):
            await self.delete(self.part_key(upload_id, n))
            await self.delete(self.part_key(upload_id, n) + ".etag")


def _append(out: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            out.write(chunk)
    os.truncate(path, 0)
