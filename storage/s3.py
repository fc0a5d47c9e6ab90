"""The S3 backend: presigned single and multipart URLs from boto3; complete and abort by the S3 API.

Configured by ``--s3-bucket`` (``OBS_S3_BUCKET``), ``--s3-endpoint`` (``OBS_S3_ENDPOINT``, or
boto3's own ``AWS_ENDPOINT_URL_S3``) and ``--s3-region``; credentials come from boto3's usual chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role).

A multipart upload's part count and size limit are kept in the bucket beside it
(``_multipart/<upload_id>.json``), so any edge can check a complete-upload, as with the local
backend. A presigned PUT cannot carry a size limit (only POST policies can), so the limit is
checked when the upload is completed (multipart) and at admission (``/analyze``, 413).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from storage.base import (
    PART_SIZE,
    URL_TTL_S,
    MultipartUpload,
    StorageError,
    UploadMeta,
    check_key,
    check_parts,
    normalise_etag,
)

META_PREFIX = "_multipart/"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    backend = "s3"

    def __init__(self, bucket: str, *, endpoint_url: str = "", region: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path" if endpoint_url else "auto"}),
        )

    async def _call(self, name: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, name), Bucket=self.bucket, **kwargs)

    def _presign(self, op: str, expires_in: int, **params: Any) -> str:
        url: str = self.client.generate_presigned_url(
            op, Params={"Bucket": self.bucket, **params}, ExpiresIn=expires_in
        )
        return url

    async def presign_put(self, key: str, *, max_bytes: int, expires_in: int = URL_TTL_S) -> str:
        return self._presign("put_object", expires_in, Key=check_key(key))

    async def create_multipart(
        self, key: str, *, parts: int, max_bytes: int, part_size: int = PART_SIZE, expires_in: int = URL_TTL_S
    ) -> MultipartUpload:
        check_key(key)
        created = await self._call("create_multipart_upload", Key=key)
        upload_id = str(created["UploadId"])
        meta = {"key": key, "parts": parts, "part_size": part_size, "max_bytes": max_bytes}
        await self._call("put_object", Key=self._meta_key(upload_id), Body=json.dumps(meta).encode())
        urls = [
            (n, self._presign("upload_part", expires_in, Key=key, UploadId=upload_id, PartNumber=n))
            for n in range(1, parts + 1)
        ]
        return MultipartUpload(upload_id=upload_id, urls=urls)

    @staticmethod
    def _meta_key(upload_id: str) -> str:
        safe = "".join(c for c in upload_id if c.isalnum() or c in "-_.")[:512] or "none"
        return f"{META_PREFIX}{safe}.json"

    async def _meta(self, upload_id: str, key: str) -> UploadMeta:
        data = await self.get_bytes(self._meta_key(upload_id))
        if data is None:
            raise StorageError(404, "no such upload (completed, aborted or never started)", "NO_SUCH_UPLOAD")
        meta = UploadMeta(**json.loads(data))
        if meta.key != key:
            raise StorageError(404, "no such upload for this file_key", "NO_SUCH_UPLOAD")
        return meta

    async def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> int:
        meta = await self._meta(upload_id, key)
        ordered = check_parts(meta, parts)
        try:
            listed = await self._call("list_parts", Key=key, UploadId=upload_id, MaxParts=10000)
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise StorageError(404, "no such upload", "NO_SUCH_UPLOAD") from None
            raise
        uploaded = {int(p["PartNumber"]): (normalise_etag(p["ETag"]), int(p["Size"])) for p in listed.get("Parts", [])}
        for number, etag in ordered:
            if number not in uploaded:
                raise StorageError(400, f"part {number} was not uploaded", "MISSING_PART")
            if normalise_etag(etag) != uploaded[number][0]:
                raise StorageError(400, f"ETag of part {number} does not match the uploaded part", "ETAG_MISMATCH")
        total = sum(uploaded[n][1] for n, _ in ordered)
        if total > meta.max_bytes:
            raise StorageError(
                413, f"the parts add up to {total} bytes, over the limit of {meta.max_bytes}", "TOO_LARGE"
            )
        try:
            await self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{normalise_etag(e)}"'} for n, e in ordered]},
            )
        except ClientError as exc:
            raise StorageError(400, f"S3 refused to complete the upload: {_code(exc)}", "INVALID_PARTS") from None
        await self.delete(self._meta_key(upload_id))
        return total

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        await self._meta(upload_id, key)
        try:
            await self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise
        await self.delete(self._meta_key(upload_id))

    async def head(self, key: str) -> int | None:
        try:
            info = await self._call("head_object", Key=check_key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(info["ContentLength"])

    async def presign_get(self, key: str, *, filename: str, expires_in: int = URL_TTL_S) -> str:
        return self._presign(
            "get_object",
            expires_in,
            Key=check_key(key),
            ResponseContentDisposition=f'attachment; filename="{filename}"',
        )

    async def put_file(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self.client.upload_file, str(path), self.bucket, check_key(key))

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._call("put_object", Key=check_key(key), Body=data)

    async def get_bytes(self, key: str) -> bytes | None:
        try:
            obj = await self._call("get_object", Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        body: bytes = await asyncio.to_thread(obj["Body"].read)
        return body

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Key=key)

    async def close(self) -> None:
        return None
