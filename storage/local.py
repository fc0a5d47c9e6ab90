"""The embedded object store: a directory under the data dir, with URLs signed by the edge itself.

Layout::

    DATA/objects/<key>                        finished objects
    DATA/objects-multipart/<upload_id>/       an unfinished multipart upload:
        meta.json                             key, part count, part size, size limit
        00001, 00001.etag, ...                the parts received so far and their MD5s

Uploads stream to a temporary file beside their destination and are renamed into place only when
the last byte arrived within the limit, so a refused or broken upload leaves nothing behind. What
only a killed process or a client that never finished can leave (a ``.tmp-*`` file, a multipart
upload neither completed nor aborted) is removed by ``sweep_abandoned`` a day later, long after
its URLs expired; the quota keeper runs it with its retention sweep. The
HTTP side of the signed URLs (``PUT``/``GET /objects/{key}``) belongs to the edge:
``web.routes.objects``; this package has no HTTP server dependency.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from storage.base import (
    URL_TTL_S,
    MultipartUpload,
    StorageError,
    UploadMeta,
    check_key,
    check_parts,
    normalise_etag,
)
from storage.signing import EdgeSignedUrls, Signer

CHUNK = 256 * 1024
#: an upload untouched this long is abandoned: its signed URLs (URL_TTL_S) expired long before
ABANDONED_AFTER_S = 24 * 3600.0


class LocalStorage(EdgeSignedUrls):
    backend = "local"

    def __init__(self, root: Path, signer: Signer, base_url: Callable[[], str]) -> None:
        self.root = root
        self.uploads = root.parent / (root.name + "-multipart")
        self.signer = signer
        self.base_url = base_url
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def upload_dir(self, upload_id: str) -> Path:
        if not upload_id or not all(c in "0123456789abcdef" for c in upload_id) or len(upload_id) != 32:
            raise StorageError(404, "no such upload", "NO_SUCH_UPLOAD")
        return self.uploads / upload_id

    def upload_meta(self, upload_id: str, key: str) -> UploadMeta:
        try:
            raw = json.loads((self.upload_dir(upload_id) / "meta.json").read_text())
        except FileNotFoundError:
            raise StorageError(404, "no such upload (completed, aborted or never started)", "NO_SUCH_UPLOAD") from None
        meta = UploadMeta(**raw)
        if meta.key != key:
            raise StorageError(404, "no such upload for this file_key", "NO_SUCH_UPLOAD")
        return meta

    # -- presigning --------------------------------------------------------------------------
    async def create_multipart(
        self, key: str, *, parts: int, max_bytes: int, part_size: int = 10 * 1024 * 1024, expires_in: int = URL_TTL_S
    ) -> MultipartUpload:
        check_key(key)
        upload_id = uuid.uuid4().hex
        d = self.uploads / upload_id
        d.mkdir(parents=True)
        meta = {"key": key, "parts": parts, "part_size": part_size, "max_bytes": max_bytes}
        (d / "meta.json").write_text(json.dumps(meta))
        urls = self._part_urls(key, upload_id, parts, part_size, expires_in)
        return MultipartUpload(upload_id=upload_id, urls=urls)

    # -- multipart ---------------------------------------------------------------------------
    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        meta = self.upload_meta(upload_id, key)
        ordered = check_parts(meta, parts)
        d = self.upload_dir(upload_id)
        for number, etag in ordered:
            try:
                stored = (d / f"{number:05d}.etag").read_text()
            except FileNotFoundError:
                raise StorageError(400, f"part {number} was not uploaded", "MISSING_PART") from None
            if normalise_etag(etag) != stored:
                raise StorageError(400, f"ETag of part {number} does not match the uploaded part", "ETAG_MISMATCH")
        target = self.path(key)
        size = await asyncio.to_thread(self._assemble, d, [n for n, _ in ordered], target, meta.max_bytes)
        shutil.rmtree(d, ignore_errors=True)
        return size

    @staticmethod
    def _assemble(d: Path, numbers: list[int], target: Path, max_bytes: int) -> int:
        total = sum((d / f"{n:05d}").stat().st_size for n in numbers)
        if total > max_bytes:
            raise StorageError(413, f"the parts add up to {total} bytes, over the limit of {max_bytes}", "TOO_LARGE")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as out:
                for n in numbers:
                    with open(d / f"{n:05d}", "rb") as part:
                        shutil.copyfileobj(part, out, CHUNK * 4)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return total

    def sweep_abandoned(self, older_than_s: float = ABANDONED_AFTER_S, now: float | None = None) -> int:
        """Remove multipart uploads nobody completed or aborted and ``.tmp-*`` files a killed process
        left, untouched for ``older_than_s``; returns how many. Blocking (run it in a thread)."""
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        for d in list(self.uploads.iterdir()):
            try:
                newest = max([p.lstat().st_mtime for p in d.iterdir()], default=d.lstat().st_mtime)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if newest < cutoff:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        for tmp in self.root.rglob(".tmp-*"):
            try:
                st = tmp.lstat()
            except FileNotFoundError:
                continue
            if tmp.is_file() and not tmp.is_symlink() and st.st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        self.upload_meta(upload_id, key)
        await asyncio.to_thread(shutil.rmtree, self.upload_dir(upload_id), True)

    # -- objects -----------------------------------------------------------------------------
    async def head(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.copyfile, path, target)

    async def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(target.write_bytes, data)

    async def get_bytes(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path(key).read_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    async def close(self) -> None:
        return None
