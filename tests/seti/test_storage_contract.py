"""One contract for every object-storage backend: local, the JetStream object store, and S3 (moto).

What the SETI service relies on, whatever ``--storage`` says: objects written whole (bytes and
files) read back the same, absent keys read as absent, a signed PUT and GET round-trip through
HTTP (the edge's ``/objects`` for local and nats, S3's own URLs for s3), multipart uploads check
their ETags and assemble in order, an aborted upload is gone, and keys are confined (no ``..``, no
absolute path, no NUL). The nats backend runs against the real nats-server of ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from moto.server import ThreadedMotoServer

from bus.server import free_port
from settings import Settings
from storage import ObjectStorage, StorageError, open_storage
from storage.check import MARKER_KEY, probe

MB = 1024 * 1024
BUCKET = "contract-test"
BAD_KEYS = ["../etc/passwd", "uploads/../../x", "/abs/key", "uploads/a\x00b", "", "uploads//x", "uploads/./x"]


@dataclass
class Backend:
    name: str
    storage: ObjectStorage


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
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


@pytest.fixture(params=["local", "nats", "s3"])
async def backend(
    request: pytest.FixtureRequest, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> AsyncIterator[Backend]:
    name = request.param
    if name == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        storage = open_storage(replace(settings, storage="s3", s3_bucket=BUCKET, s3_endpoint=endpoint))
    else:
        edge = await edge_factory(storage=name)  # serves the signed URLs
        storage = open_storage(replace(settings, storage=name), base_url=lambda: str(edge.url))
    assert storage.backend == name
    try:
        yield Backend(name, storage)
    finally:
        await storage.close()


async def http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as s, s.request(method, url, data=data) as r:
        return r.status, await r.read(), r.headers.get("ETag", "")


async def test_objects_round_trip_and_absent_keys_read_as_absent(backend: Backend, tmp_path: Path) -> None:
    storage = backend.storage
    assert await storage.head("results/u1/j1/none.json") is None
    assert await storage.get_bytes("results/u1/j1/none.json") is None
    await storage.delete("results/u1/j1/none.json")  # absent: no error

    await storage.put_bytes("results/u1/j1/outcome.json", b'{"status":"complete"}')
    assert await storage.get_bytes("results/u1/j1/outcome.json") == b'{"status":"complete"}'
    assert await storage.head("results/u1/j1/outcome.json") == len(b'{"status":"complete"}')
    await storage.put_bytes("results/u1/j1/outcome.json", b"{}")  # overwritten, not appended
    assert await storage.get_bytes("results/u1/j1/outcome.json") == b"{}"

    blob = hashlib.sha256(b"seed").digest() * (MB // 16 + 12345)  # > 2 MB: many object-store chunks
    src = tmp_path / "big.bin"
    src.write_bytes(blob)
    await storage.put_file("results/u1/j1/hits.fits", src)
    assert await storage.head("results/u1/j1/hits.fits") == len(blob)
    assert await storage.get_bytes("results/u1/j1/hits.fits") == blob

    await storage.delete("results/u1/j1/hits.fits")
    assert await storage.head("results/u1/j1/hits.fits") is None
    assert await storage.get_bytes("results/u1/j1/hits.fits") is None


async def test_keys_are_confined(backend: Backend) -> None:
    storage = backend.storage
    for key in BAD_KEYS:
        for call in (
            storage.put_bytes(key, b"x"),
            storage.head(key),
            storage.presign_put(key, max_bytes=10),
            storage.presign_get(key, filename="x"),
            storage.create_multipart(key, parts=1, max_bytes=10),
        ):
            with pytest.raises(StorageError) as err:
                await call
            assert err.value.status == 400 and err.value.code == "INVALID_KEY", key


async def test_signed_put_and_get_round_trip_over_http(backend: Backend) -> None:
    storage = backend.storage
    key = "uploads/u1/a/obs.fil"
    payload = bytes(range(256)) * 400
    status, _, etag = await http("PUT", await storage.presign_put(key, max_bytes=len(payload)), payload)
    assert status == 200 and etag.strip('"') == hashlib.md5(payload, usedforsecurity=False).hexdigest()
    assert await storage.head(key) == len(payload)
    status, body, _ = await http("GET", await storage.presign_get(key, filename="obs.fil"))
    assert status == 200 and body == payload
    if backend.name != "s3":  # the edge checks the signed limit itself (S3 checks it at admission)
        over = await storage.presign_put("uploads/u1/a/big.fil", max_bytes=10)
        assert (await http("PUT", over, b"x" * 11))[0] == 413
        assert await storage.head("uploads/u1/a/big.fil") is None  # nothing kept of a refused upload
        tampered = (await storage.presign_get(key, filename="obs.fil")).replace("X-Signature=", "X-Signature=0")
        assert (await http("GET", tampered))[0] == 403


async def test_multipart_checks_etags_assembles_in_order_and_aborts(backend: Backend) -> None:
    storage = backend.storage
    key = "uploads/u1/b/big.fil"
    blobs = [b"a" * (5 * MB), b"b" * (5 * MB), b"c" * 1000]
    upload = await storage.create_multipart(key, parts=3, max_bytes=sum(map(len, blobs)), part_size=5 * MB)
    assert [n for n, _ in upload.urls] == [1, 2, 3]
    etags = []
    for (n, url), blob in zip(upload.urls, blobs, strict=True):
        status, _, etag = await http("PUT", url, blob)
        assert status == 200, n
        etags.append((n, etag))
    with pytest.raises(StorageError) as err:
        await storage.complete_multipart(key, upload.upload_id, [(1, etags[0][1]), (2, '"0000"'), (3, etags[2][1])])
    assert err.value.code == "ETAG_MISMATCH"
    with pytest.raises(StorageError) as err:
        await storage.complete_multipart(key, upload.upload_id, etags[:2])
    assert err.value.code == "MISSING_PART"
    assert await storage.head(key) is None  # nothing written by the refusals
    assert await storage.complete_multipart(key, upload.upload_id, list(reversed(etags))) == sum(map(len, blobs))
    assert await storage.get_bytes(key) == b"".join(blobs)

    other = await storage.create_multipart("uploads/u1/c/x.fil", parts=1, max_bytes=10)
    await storage.abort_multipart("uploads/u1/c/x.fil", other.upload_id)
    with pytest.raises(StorageError) as err:
        await storage.complete_multipart("uploads/u1/c/x.fil", other.upload_id, [(1, '"x"')])
    assert err.value.status == 404


async def test_the_start_up_probe_writes_one_storage_id_that_every_role_reads(backend: Backend) -> None:
    first = await probe(backend.storage, role="edge")
    second = await probe(backend.storage, role="searcher")
    assert first.created and not second.created
    assert first.storage_id == second.storage_id and len(first.storage_id) == 32
    assert await backend.storage.get_bytes(MARKER_KEY) is not None


async def test_an_unreachable_object_store_is_unavailable_not_absent(tmp_path: Path, settings: Settings) -> None:
    """The searcher's distinction (issue 13): a store that does not answer is ``StorageUnavailable``
    (retried, never charged), never "no such object" (the user's error)."""
    from actors.searcher.storage_io import InputMissing, fetch_input
    from bus.server import EmbeddedServer
    from storage import StorageUnavailable

    server = EmbeddedServer(tmp_path / "own-nats")  # its own server: stopping it touches no fixture
    server.start()
    storage = open_storage(replace(settings, storage="nats", nats_url=server.url))
    try:
        await storage.put_bytes("uploads/u1/a/obs.fil", b"data")
        with pytest.raises(InputMissing):  # reachable, and really absent: the user's error
            async with fetch_input(storage, "uploads/u1/a/other.fil", tmp_path / "scratch"):
                pass
        server.stop()
        for call in (storage.head("uploads/u1/a/obs.fil"), storage.get_bytes("uploads/u1/a/obs.fil")):
            with pytest.raises(StorageUnavailable) as err:
                await call
            assert err.value.status == 503
        with pytest.raises(StorageUnavailable):
            async with fetch_input(storage, "uploads/u1/a/obs.fil", tmp_path / "scratch"):
                pass
    finally:
        await storage.close()
        server.stop()
