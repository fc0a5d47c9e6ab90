"""The S3 backend, against moto's S3-compatible server (server mode, a free port, started here).

The storage interface is exercised directly (presigned single PUT, multipart with ETags, complete,
abort, the errors), and then the seed's example client runs against a stack whose storage is S3.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from moto.server import ThreadedMotoServer

from actors.quota_keeper.actor import QuotaKeeperActor
from bus import Bus
from bus.server import free_port
from settings import Settings
from storage import StorageError, open_storage
from storage.s3 import S3Storage
from tests.seti.conftest import SearcherStandIn, Stack
from tests.seti.test_seed_client import run_both

MB = 1024 * 1024
BUCKET = "seti-test"


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture
def s3_settings(settings: Settings, s3_endpoint: str) -> Settings:
    return replace(settings, s3_bucket=BUCKET, s3_endpoint=s3_endpoint)


@pytest.fixture
async def s3_stack(s3_settings: Settings, bus: Bus, edge_factory: Any) -> AsyncIterator[Stack]:
    keeper = QuotaKeeperActor(bus, s3_settings)
    await keeper.start()
    edge = await edge_factory(s3_bucket=s3_settings.s3_bucket, s3_endpoint=s3_settings.s3_endpoint)
    s = Stack(edge, keeper, bus, s3_settings)
    try:
        yield s
    finally:
        await s.close()
        await keeper.stop()


async def put(url: str, data: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.put(url, data=data) as r:
        await r.read()
        return r.status, r.headers.get("ETag", "")


async def test_s3_single_and_multipart(s3_settings: Settings) -> None:
    storage = open_storage(s3_settings)
    assert isinstance(storage, S3Storage)

    # single presigned PUT, then a presigned GET
    url = await storage.presign_put("uploads/u1/a/obs.fil", max_bytes=100)
    assert url.startswith(s3_settings.s3_endpoint) and "X-Amz-Signature" in url
    assert (await put(url, b"x" * 100))[0] == 200
    assert await storage.head("uploads/u1/a/obs.fil") == 100
    assert await storage.head("uploads/u1/a/missing.fil") is None
    get_url = await storage.presign_get("uploads/u1/a/obs.fil", filename="obs.fil")
    async with aiohttp.ClientSession() as s, s.get(get_url) as r:
        assert r.status == 200 and await r.read() == b"x" * 100

    # multipart: two parts of 5 MB + a tail (S3's minimum part size is 5 MB)
    key = "uploads/u1/b/big.fil"
    blobs = [b"a" * (5 * MB), b"b" * (5 * MB), b"c" * 1000]
    upload = await storage.create_multipart(key, parts=3, max_bytes=sum(map(len, blobs)), part_size=5 * MB)
    etags = []
    for (n, part_url), blob in zip(upload.urls, blobs, strict=True):
        status, etag = await put(part_url, blob)
        assert status == 200 and etag.strip('"') == hashlib.md5(blob, usedforsecurity=False).hexdigest()
        etags.append((n, etag))

    async def refused(parts: list[tuple[int, str]]) -> StorageError:
        with pytest.raises(StorageError) as info:
            await storage.complete_multipart(key, upload.upload_id, parts)
        return info.value

    assert (await refused([etags[0], etags[1]])).status == 400  # missing part 3
    assert (await refused([etags[0], etags[0], etags[1], etags[2]])).status == 400  # duplicate
    assert (await refused([*etags, (4, etags[0][1])])).status == 400  # out of range
    assert (await refused([etags[0], etags[1], (3, '"0000"')])).code == "ETAG_MISMATCH"
    assert await storage.head(key) is None  # nothing written by the refusals
    assert await storage.complete_multipart(key, upload.upload_id, list(reversed(etags))) == sum(map(len, blobs))
    data = await storage.get_bytes(key)
    assert data == b"".join(blobs)

    # abort removes the upload; completing it afterwards is 404
    other = await storage.create_multipart("uploads/u1/c/x.fil", parts=1, max_bytes=10)
    await storage.abort_multipart("uploads/u1/c/x.fil", other.upload_id)
    with pytest.raises(StorageError) as info:
        await storage.complete_multipart("uploads/u1/c/x.fil", other.upload_id, [(1, '"x"')])
    assert info.value.status == 404


async def test_s3_upload_over_http_and_admission(s3_stack: Stack) -> None:
    user = await s3_stack.user("researcher")
    r = await s3_stack.call("POST", "/upload-url", user, {"filename": "obs.fil", "file_size": 64 * MB})
    assert r.status == 200 and r.body["multipart"] is True and len(r.body["parts"]) == 7
    assert all(p["url"].startswith(s3_stack.settings.s3_endpoint) for p in r.body["parts"])
    abort = await s3_stack.call(
        "POST", "/abort-upload", user, {"file_key": r.body["file_key"], "upload_id": r.body["upload_id"]}
    )
    assert abort.status == 200 and abort.body == {"message": "Upload aborted"}
    missing = await s3_stack.call("POST", "/analyze", user, {"file_key": r.body["file_key"]})
    assert missing.status == 404
    key = await s3_stack.upload(user)
    ok = await s3_stack.call("POST", "/analyze", user, {"file_key": key})
    assert ok.status == 202


async def test_seed_client_against_s3(s3_stack: Stack, bus: Bus, s3_settings: Settings, tmp_path: Path) -> None:
    searcher = SearcherStandIn(bus, s3_settings)
    await searcher.start()
    try:
        await run_both(s3_stack, tmp_path, {"small": 2 * MB, "large": 52 * MB})
    finally:
        await searcher.stop()
