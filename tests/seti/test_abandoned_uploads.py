"""What a client that never finished, or a killed process, leaves in the local object store is
removed a day later; finished objects and uploads in progress are not touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

from storage.local import ABANDONED_AFTER_S, LocalStorage
from storage.signing import Signer
from tests.seti.conftest import Stack


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


async def test_abandoned_uploads_and_temporary_files_are_swept(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "objects", Signer(b"k" * 32), lambda: "http://127.0.0.1:1")
    await store.put_bytes("uploads/u1/done.fil", b"finished")
    old_upload = await store.create_multipart("uploads/u1/big.fil", parts=2, max_bytes=100)
    (store.upload_dir(old_upload.upload_id) / "00001").write_bytes(b"part one")
    live_upload = await store.create_multipart("uploads/u1/now.fil", parts=2, max_bytes=100)
    left_by_a_kill = tmp_path / "objects" / "uploads" / "u1" / ".tmp-0123abcd"
    left_by_a_kill.write_bytes(b"half a body")
    fresh_tmp = tmp_path / "objects" / "uploads" / "u1" / ".tmp-4567ef00"
    fresh_tmp.write_bytes(b"being written")
    for p in [*store.upload_dir(old_upload.upload_id).iterdir(), left_by_a_kill]:
        _age(p, ABANDONED_AFTER_S + 60)

    assert store.sweep_abandoned() == 2
    assert not store.upload_dir(old_upload.upload_id).exists() and not left_by_a_kill.exists()
    assert store.upload_dir(live_upload.upload_id).exists() and fresh_tmp.exists()
    assert await store.get_bytes("uploads/u1/done.fil") == b"finished"
    assert store.sweep_abandoned() == 0


async def test_the_quota_keeper_sweeps_the_local_store(stack: Stack) -> None:
    storage = stack.keeper.storage
    assert isinstance(storage, LocalStorage)
    upload = await storage.create_multipart("uploads/nobody/never.fil", parts=1, max_bytes=10)
    for p in storage.upload_dir(upload.upload_id).iterdir():
        _age(p, ABANDONED_AFTER_S + 60)
    assert await stack.keeper.sweep_uploads() == 1
    assert not storage.upload_dir(upload.upload_id).exists()
