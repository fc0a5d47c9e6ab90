"""Storage on a cluster (issue 13 item 3), with real parts.

* A whole SETI job with ``--storage nats``: the upload goes through the edge's signed URL into the
  JetStream object store, the searcher streams it to a scratch file (removed afterwards), the
  exports land in the bucket and download through the edge.
* A searcher that cannot reach the uploads (its own ``--data-dir``, the issue's case) does not fail
  the job as the user's: it is retried, completes on a searcher that can, and if none can it fails
  as the service's failure, not charged.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from actors.quota_keeper.actor import QuotaKeeperActor
from actors.searcher.actor import SearcherActor
from actors.searcher.storage_io import read_outcome
from bus import Bus
from settings import Settings
from storage.check import probe
from storage.nats_object import NatsObjectStorage
from tests.conftest import eventually
from tests.seti.conftest import Stack
from tests.seti.test_charging import eventually_usage, usage
from tests.seti.test_searcher_service import ALL_FORMATS, analyze, synthetic, wait_finished


@pytest.fixture
def nats_settings(settings: Settings) -> Settings:
    return replace(settings, storage="nats")


@pytest.fixture
async def nats_stack(
    nats_settings: Settings, bus: Bus, edge_factory: Callable[..., Awaitable[Any]]
) -> AsyncIterator[Stack]:
    keeper = QuotaKeeperActor(bus, nats_settings)
    await keeper.start()
    edge = await edge_factory(storage="nats")
    s = Stack(edge, keeper, bus, nats_settings)
    try:
        yield s
    finally:
        await s.close()
        await keeper.stop()
        await keeper.storage.close()


async def test_a_whole_search_job_with_the_jetstream_object_store(
    nats_stack: Stack, nats_settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    searcher = SearcherActor(bus, nats_settings)
    await searcher.start()
    try:
        stack = nats_stack
        assert isinstance(searcher.storage, NatsObjectStorage)
        user = await stack.user()
        payload = synthetic(tmp_path, "tones.fil")
        file_key = await stack.upload(user, "tones.fil", payload)  # PUT to the edge's signed URL
        assert not (nats_settings.data_dir / "objects" / file_key).exists()  # not on the edge's disk ...
        assert await searcher.storage.get_bytes(file_key) == payload  # ... in the object store
        job_id = await analyze(stack, user, file_key)
        job = await wait_finished(stack, user, job_id, timeout=120.0)
        assert job["status"] == "complete", job
        assert job["results"]["candidates"] >= 1

        outcome = await read_outcome(searcher.storage, user.user_id, job_id)
        assert outcome is not None and outcome.status == "complete"
        async with stack.session.ws_connect(f"{stack.url}/jobs/{job_id}/ws", headers={"x-api-key": user.api_key}) as ws:
            while (await ws.receive_json(timeout=60))["exports"] != ALL_FORMATS:
                pass
        r = await stack.call("GET", f"/jobs/{job_id}/download?format=fits", user)
        assert r.status == 200 and r.body["download_url"].startswith(f"{stack.url}/objects/results/")
        got = await stack.call("GET", r.body["download_url"])
        assert got.status == 200
        with fits.open(io.BytesIO(got.body)) as hdul:
            assert len(hdul[1].data) == job["results"]["raw_hits"]
        scratch = nats_settings.data_dir / "searcher" / "downloads"
        assert not scratch.exists() or not any(scratch.iterdir())  # the streamed input was removed
        leftovers = nats_settings.data_dir / "objects-tmp"  # the edge's, removed once the GET has been sent
        await eventually(lambda: not leftovers.exists() or not list(leftovers.iterdir()), timeout=30.0)
    finally:
        await searcher.stop()


async def test_a_searcher_that_cannot_see_the_uploads_retries_and_another_completes_the_job(
    stack: Stack, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    await probe(stack.storage, role="edge")  # the storage id the edge writes at start (run.py)
    # five deliveries (naks after 1, 2, 5, 10 s): the blind searcher is stopped long before the last
    settings = replace(settings, max_deliveries=5)
    blind = SearcherActor(bus, replace(settings, data_dir=tmp_path / "another-host"))
    await blind.start()
    user = await stack.user()
    key = await stack.upload(user, "good.fil", synthetic(tmp_path, "good.fil", nchans=1 << 12))
    job_id = await analyze(stack, user, key)
    try:
        await eventually(lambda: blind._consumer is not None and blind._consumer.stats.failed >= 1, timeout=60.0)
        r = await stack.call("GET", f"/jobs/{job_id}", user)
        assert r.body["status"] not in ("failed", "complete"), r.body  # not failed as "not in storage"
    finally:
        await blind.stop()
    seeing = SearcherActor(bus, settings)
    await seeing.start()
    try:
        job = await wait_finished(stack, user, job_id, timeout=120.0)
        assert job["status"] == "complete", job
        assert await usage(stack, user) == 1
    finally:
        await seeing.stop()


async def test_a_job_no_searcher_can_read_fails_as_the_service_and_is_not_charged(
    stack: Stack, settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    await probe(stack.storage, role="edge")
    blind = SearcherActor(bus, replace(settings, data_dir=tmp_path / "another-host"))
    await blind.start()
    try:
        user = await stack.user()
        key = await stack.upload(user, "good.fil", synthetic(tmp_path, "good.fil", nchans=1 << 12))
        job_id = await analyze(stack, user, key)
        assert await usage(stack, user) == 1  # counted when admitted
        job = await wait_finished(stack, user, job_id, timeout=120.0)
        assert job["status"] == "failed"
        assert job["error"].startswith(f"storage unavailable after {settings.max_deliveries} attempts"), job["error"]
        assert "not the storage the edge uses" in job["error"] and "not charged" in job["error"], job["error"]
        assert blind._consumer is not None and blind._consumer.stats.failed == settings.max_deliveries - 1
        await eventually_usage(stack, user, 0)
    finally:
        await blind.stop()


async def test_a_file_really_absent_from_reachable_storage_is_still_the_users_error(
    stack: Stack, settings: Settings, bus: Bus
) -> None:
    await probe(stack.storage, role="edge")
    user = await stack.user()
    key = await stack.upload(user)
    job_id = await analyze(stack, user, key)
    await stack.storage.delete(key)  # removed between admission and the search (no searcher runs yet)
    searcher = SearcherActor(bus, settings)
    await searcher.start()
    try:
        job = await wait_finished(stack, user, job_id, timeout=120.0)
        assert job["status"] == "failed" and "is not in storage" in job["error"], job
        assert searcher._consumer is not None and searcher._consumer.stats.failed == 0  # failed at once
    finally:
        await searcher.stop()
