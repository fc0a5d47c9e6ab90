"""The searcher's side of object storage: the uploaded file in, the exports and the job's outcome out.

Keys are deterministic, so doing a job twice writes the same objects:

* exports: ``results/<user_id>/<job_id>/<file name>`` (the names ``write_exports`` gives them);
* outcome: ``results/<user_id>/<job_id>/outcome.json``, the searcher's own record that the job's
  completion (or failure) has been published, and whether its exports have. It lives in the shared
  storage rather than under one host's data dir because a redelivered job may land on a searcher on
  another host. The quota keeper's retention removes only the exports listed in
  ``seti.exports.written``, so the record outlives them and a late redelivery is still recognised.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import msgspec

from storage import ObjectStorage, StorageError, StorageUnavailable
from storage.base import check_key

__all__ = ["InputMissing", "Outcome", "fetch_input", "outcome_key", "read_outcome", "result_prefix", "write_outcome"]


class InputMissing(Exception):
    """The job's file is not in storage (removed, or a job published by a client that never uploaded)."""


class Outcome(msgspec.Struct, kw_only=True):
    status: Literal["complete", "failed"]
    event_id: str
    exports_written: bool = False
    error: str = ""


def result_prefix(user_id: str, job_id: str) -> str:
    return f"results/{user_id}/{job_id}"


def outcome_key(user_id: str, job_id: str) -> str:
    return f"{result_prefix(user_id, job_id)}/outcome.json"


async def read_outcome(storage: ObjectStorage, user_id: str, job_id: str) -> Outcome | None:
    data = await storage.get_bytes(outcome_key(user_id, job_id))
    if data is None:
        return None
    try:
        return msgspec.json.decode(data, type=Outcome)
    except msgspec.MsgspecError:
        return None  # unreadable: treat as absent; the deterministic event ids still dedupe a re-publish


async def write_outcome(storage: ObjectStorage, user_id: str, job_id: str, outcome: Outcome) -> None:
    await storage.put_bytes(outcome_key(user_id, job_id), msgspec.json.encode(outcome))


@contextlib.asynccontextmanager
async def fetch_input(storage: ObjectStorage, key: str, scratch: Path) -> AsyncIterator[Path]:
    """A local path to the object ``key`` for as long as the context lasts.

    The local backend already keeps objects as files: the path is the object itself (no copy). With
    S3 the object is downloaded to ``scratch`` by boto3's managed transfer (ranged GETs streamed to
    disk, never held in memory), with the JetStream object store chunk by chunk as they arrive; the
    copy is removed at exit.

    Whose fault (issue 13): :class:`InputMissing` (the job fails at once, charged) only when a
    reachable storage answers that the key is absent. A storage that does not answer raises
    :class:`~storage.base.StorageUnavailable` or its own error, which the searcher retries and never
    charges; so does a local directory that carries no storage id (``storage.check``), which is
    not the storage the edge checked (another host's ``--data-dir``), not a missing upload.
    """
    from storage.check import has_marker
    from storage.local import LocalStorage
    from storage.nats_object import NatsObjectStorage

    try:
        check_key(key)
    except StorageError as exc:  # no retry makes a bad key good: the job fails at once
        raise InputMissing(f"invalid file key: {exc.message}") from None
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            if not await has_marker(storage):
                raise StorageUnavailable(
                    f"{storage.root} is not the storage the edge uses (no storage id): check --data-dir / --storage"
                )
            raise InputMissing(f"the uploaded file {key!r} is not in storage")
        yield path
        return
    from storage.s3 import S3Storage

    if not isinstance(storage, S3Storage | NatsObjectStorage):
        raise TypeError(f"no way to read a file from a {type(storage).__name__}")
    if await storage.head(key) is None:
        raise InputMissing(f"the uploaded file {key!r} is not in storage")
    work = scratch / uuid.uuid4().hex
    work.mkdir(parents=True, exist_ok=True)
    target = work / (key.rsplit("/", 1)[-1] or "input")
    try:
        if isinstance(storage, NatsObjectStorage):
            if not await storage.get_file(key, target):
                raise InputMissing(f"the uploaded file {key!r} is not in storage")
        else:
            await asyncio.to_thread(storage.client.download_file, storage.bucket, key, str(target))
        yield target
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
