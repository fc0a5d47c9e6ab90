"""The start-up check of object storage: a role that cannot reach it refuses to start.

Why: a searcher that cannot see the uploads used to start fine and fail every job it took, for good
and charged ("not in storage"). Now the edge, the quota keeper and the searcher (``STORAGE_ROLES``)
each write, read back and delete a probe object before consuming anything, and fail with one line
naming the setting to fix.

The storage id. The first process to check a storage writes ``sys/storage-id`` (a random id) into
it; every later one reads it and logs it, so an operator can see that all hosts use the same
storage. With the local backend only a process that runs the edge writes it: the uploads are
wherever the edge receives them. A role started alone (``run.py actor searcher``) on a local
directory without the id is on a directory no edge has used, which on a cluster means its
``--data-dir`` is not the edge's: it is warned (the edge may simply not have started yet, so it is
not refused), and the searcher treats a missing upload in a storage without the id as the
service's failure (retried, never charged) rather than the user's.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

from settings import Settings
from storage.base import ObjectStorage

MARKER_KEY = "sys/storage-id"
PROBE_PREFIX = "sys/probe/"
#: roles that read or write objects (the edge always does)
STORAGE_ROLES = ("quota_keeper", "searcher", "cadence")
CHECK_TIMEOUT_S = 20.0


class StorageCheckFailed(Exception):
    """One line for the operator: what failed and which setting to look at."""


@dataclass(frozen=True, slots=True)
class StorageIdentity:
    backend: str
    storage_id: str
    created: bool  # this check wrote the id: the storage was new
    #: no id, and this role may not write one (local storage without the edge)
    missing: bool = False


def describe(settings: Settings, backend: str) -> str:
    """Where the storage is, and the setting that chooses it (never a secret)."""
    if backend == "s3":
        where = f"s3 bucket {settings.s3_bucket!r}" + (f" at {settings.s3_endpoint}" if settings.s3_endpoint else "")
        return f"--storage s3 ({where}; --s3-bucket / --s3-endpoint / OBS_S3_*)"
    if backend == "nats":
        return (
            f"--storage nats (JetStream object store {settings.object_store_bucket!r}; "
            "--nats-url / --object-store-bucket / OBS_OBJECT_STORE_BUCKET)"
        )
    return f"--storage local (the directory {settings.data_dir / 'objects'}; --data-dir / OBS_DATA_DIR)"


async def probe(storage: ObjectStorage, *, role: str, create_id: bool = True) -> StorageIdentity:
    """Write, read back and delete a probe object; read the storage id (or create it: ``create_id``)."""
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    payload = f"probe from {role}".encode()
    await storage.put_bytes(key, payload)
    try:
        if await storage.get_bytes(key) != payload:
            raise StorageCheckFailed("a probe object read back differently from how it was written")
    finally:
        await storage.delete(key)
    created = False
    raw = await storage.get_bytes(MARKER_KEY)
    if raw is None and not create_id:
        return StorageIdentity(storage.backend, "", created=False, missing=True)
    if raw is None:
        record = {"id": uuid.uuid4().hex, "created_by": role, "created_at": int(time.time())}
        await storage.put_bytes(MARKER_KEY, json.dumps(record).encode())
        raw, created = await storage.get_bytes(MARKER_KEY), True  # another process may have won: read back
    try:
        storage_id = str(json.loads(raw or b"{}").get("id", ""))
    except ValueError:
        storage_id = ""
    return StorageIdentity(storage.backend, storage_id or "unreadable", created)


async def check_storage(
    settings: Settings, storage: ObjectStorage, *, role: str, create_id: bool = True
) -> StorageIdentity:
    """``probe`` within ``CHECK_TIMEOUT_S``; any failure becomes one ``StorageCheckFailed`` line."""
    where = describe(settings, storage.backend)
    try:
        return await asyncio.wait_for(probe(storage, role=role, create_id=create_id), CHECK_TIMEOUT_S)
    except StorageCheckFailed as exc:
        raise StorageCheckFailed(f"{where}: {exc}") from None
    except TimeoutError:
        raise StorageCheckFailed(f"{where}: no answer within {CHECK_TIMEOUT_S:g} s") from None
    except Exception as exc:  # unreachable, refused, no credentials, not writable, ...
        detail = getattr(exc, "message", "") or str(exc) or type(exc).__name__
        raise StorageCheckFailed(f"{where}: unreachable or not writable ({detail})") from None


async def has_marker(storage: ObjectStorage) -> bool:
    """Whether this storage carries a storage id (a local data dir some edge has checked)."""
    return await storage.get_bytes(MARKER_KEY) is not None
