"""Admission, the job lifecycle, downloads, usage, reports, history pruning and result retention."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from openapi_spec_validator import validate

from schemas.seti import ExportsWritten, JobCompleted, JobFailed, JobProgressed, JobSubmitted
from storage.local import LocalStorage
from tests.conftest import eventually
from tests.seti.conftest import CSV, RESULTS, Stack, User, write_exports

MB = 1024 * 1024


async def finish(stack: Stack, user: User, job_id: str, *, ok: bool = True) -> None:
    """Complete (or fail) a job as the searcher would, and wait until keeper and edge have seen it."""
    now = int(time.time())
    event = (
        JobCompleted(job_id=job_id, user_id=user.user_id, completed_at=now, results=RESULTS)
        if ok
        else JobFailed(job_id=job_id, user_id=user.user_id, completed_at=now, error="not a SIGPROC file")
    )
    ack = await stack.bus.publish(event)
    await stack.edge.wait_applied(ack.seq)

    async def keeper_done() -> bool:
        row = await stack.keeper.ledger._one("SELECT state FROM jobs WHERE job_id=?", (job_id,))
        return row is not None and row[0] != "running"

    await eventually(keeper_done)


async def analyze(stack: Stack, user: User, file_key: str, **extra: object) -> tuple[int, dict[str, object]]:
    r = await stack.call("POST", "/analyze", user, {"file_key": file_key, **extra})
    return r.status, r.body


async def test_job_lifecycle(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user, "Voyager1_trimmed.fil")
    status, body = await analyze(stack, user, key, source_name="Voyager1_trimmed", max_drift=10.0)
    assert status == 202
    job_id = str(body["job_id"])
    assert uuid.UUID(job_id).version == 4
    assert body == {
        "job_id": job_id,
        "status": "submitted",
        "message": f"Processing started. Poll GET /jobs/{job_id} for status.",
        "status_url": f"/jobs/{job_id}",
    }
    r = await stack.call("GET", f"/jobs/{job_id}", user)
    assert r.status == 200 and r.body["status"] == "submitted" and r.body["source_name"] == "Voyager1_trimmed"
    assert r.body["filename"] == "Voyager1_trimmed.fil" and r.body["file_size"] > 0
    assert abs(r.body["created_at"] - time.time()) < 60

    ack = await stack.bus.publish(
        JobProgressed(
            job_id=job_id,
            user_id=user.user_id,
            percent=42.0,
            stage="dedoppler",
            coarse_channels_done=21,
            coarse_channels_total=50,
        )
    )
    await stack.edge.wait_applied(ack.seq)
    r = await stack.call("GET", f"/jobs/{job_id}", user)
    assert r.body["status"] == "processing"
    assert r.body["progress"] == {
        "percent": 42.0,
        "stage": "dedoppler",
        "coarse_channels_done": 21,
        "coarse_channels_total": 50,
    }
    assert "results" not in r.body

    # not ready yet: 404 for downloads
    r = await stack.call("GET", f"/jobs/{job_id}/download?format=json", user)
    assert r.status == 404 and "not available" in r.body["error"]

    await finish(stack, user, job_id)
    r = await stack.call("GET", f"/jobs/{job_id}", user)
    assert r.body["status"] == "complete" and r.body["results"] == RESULTS and r.body["completed_at"] > 0
    assert "progress" not in r.body

    # complete, exports still being written: 404 per format
    r = await stack.call("GET", f"/jobs/{job_id}/download?format=fits", user)
    assert r.status == 404
    submitted = JobSubmitted(
        job_id=job_id,
        user_id=user.user_id,
        file_key=key,
        filename="x",
        source_name="x",
        file_size=1,
        created_at=0,
    )
    keys_ = await write_exports(stack.storage, submitted)
    ack = await stack.bus.publish(ExportsWritten(job_id=job_id, user_id=user.user_id, keys=keys_))
    await stack.edge.wait_applied(ack.seq)

    r = await stack.call("GET", f"/jobs/{job_id}/download", user)  # format defaults to json
    assert r.status == 200 and r.body["format"] == "json" and r.body["filename"] == "results.json"
    got = await stack.call("GET", r.body["download_url"])
    assert got.status == 200 and got.body == RESULTS
    assert 'filename="results.json"' in got.headers["Content-Disposition"]
    r = await stack.call("GET", f"/jobs/{job_id}/download?format=waterfall", user)
    assert r.body["filename"] == "waterfall.png"
    # the download URL is signed and expiring
    url = r.body["download_url"]
    parts = urlsplit(url)
    q = dict(parse_qsl(parts.query))
    assert int(q["X-Expires"]) - time.time() <= 3600
    forged = urlunsplit(parts._replace(path=parts.path.replace("waterfall.png", "results.json")))
    assert (await stack.call("GET", forged)).status == 403
    q["X-Expires"] = str(int(q["X-Expires"]) + 10)
    assert (await stack.call("GET", urlunsplit(parts._replace(query=urlencode(q))))).status == 403

    r = await stack.call("GET", f"/jobs/{job_id}/download?format=csv", user)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv") and r.body.decode() == CSV
    r = await stack.call("GET", f"/jobs/{job_id}/download?format=classified", user)
    assert r.status == 404  # not among this job's exports
    r = await stack.call("GET", f"/jobs/{job_id}/download?format=pdf", user)
    assert r.status == 400 and "pdf" in r.body["error"] and r.body["code"] == "INVALID_FORMAT"


async def test_failed_job_carries_its_error(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)
    _, body = await analyze(stack, user, key)
    await finish(stack, user, str(body["job_id"]), ok=False)
    r = await stack.call("GET", f"/jobs/{body['job_id']}", user)
    assert r.body["status"] == "failed" and r.body["error"] == "not a SIGPROC file" and "results" not in r.body


async def test_admission_errors(stack: Stack) -> None:
    user = await stack.user("researcher")
    # not uploaded
    status, body = await analyze(stack, user, f"uploads/{user.user_id}/{uuid.uuid4()}/missing.fil")
    assert status == 404 and "upload first" in str(body["error"])
    # missing field, invalid JSON, bad parameter
    r = await stack.call("POST", "/analyze", user, {"filename": "x.fil"})
    assert r.status == 400 and "file_key" in r.body["error"]
    r = await stack.call("POST", "/analyze", user, data=b"nope", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.body["code"] == "INVALID_JSON"
    key = await stack.upload(user)
    status, body = await analyze(stack, user, key, max_drift=51)
    assert status == 422 and "max_drift" in str(body["error"])

    # larger than the tier allows (a sparse 101 MB file placed straight into storage)
    free = await stack.user("free")
    big_key = f"uploads/{free.user_id}/{uuid.uuid4()}/big.fil"
    storage = stack.storage
    assert isinstance(storage, LocalStorage)
    path = storage.path(big_key)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as fh:
        fh.truncate(101 * MB)
    status, body = await analyze(stack, free, big_key)
    assert status == 413 and "100 MB" in str(body["error"])

    # five running jobs: the sixth is 429 until one finishes
    jobs = []
    for _ in range(5):
        status, body = await analyze(stack, user, key)
        assert status == 202
        jobs.append(str(body["job_id"]))
    status, body = await analyze(stack, user, key)
    assert status == 429 and "concurrent" in str(body["error"])
    await finish(stack, user, jobs[0])
    status, _ = await analyze(stack, user, key)
    assert status == 202
    usage = await stack.call("GET", "/usage", user)
    assert usage.body["usage_this_month"] == 6 and usage.body["remaining"] == 494
    # nothing was counted for the refused ones
    assert await stack.keeper.counters.used(user.user_id, time.time()) == 6


async def test_twenty_concurrent_requests_with_three_files_left_admit_exactly_three(stack: Stack) -> None:
    user = await stack.user("free")  # 10 files a month
    key = await stack.upload(user)
    for batch in (5, 2):  # use 7 of them (at most 5 running at once)
        ids = []
        for _ in range(batch):
            status, body = await analyze(stack, user, key)
            assert status == 202, body
            ids.append(str(body["job_id"]))
        for job_id in ids:
            await finish(stack, user, job_id)
    usage = (await stack.call("GET", "/usage", user)).body
    assert usage["usage_this_month"] == 7 and usage["remaining"] == 3

    results = await asyncio.gather(*(analyze(stack, user, key) for _ in range(20)))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(202) == 3 and statuses.count(429) == 17, statuses
    assert all("monthly limit" in str(b["error"]) for s, b in results if s == 429)
    usage = (await stack.call("GET", "/usage", user)).body
    assert usage == {
        "user_id": user.user_id,
        "tier": "free",
        "usage_this_month": 10,
        "limit": 10,
        "remaining": 0,
        "tier_details": {"files_per_month": 10, "max_file_mb": 100, "price": "$0 USD/mo", "retention_days": 7},
    }


async def test_jobs_list_newest_first_with_limit(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)
    ids = []
    for _ in range(4):
        _, body = await analyze(stack, user, key)
        ids.append(body["job_id"])
        await finish(stack, user, str(body["job_id"]))
    r = await stack.call("GET", "/jobs", user)
    assert r.status == 200 and isinstance(r.body, list)
    assert [j["job_id"] for j in r.body] == list(reversed(ids))
    assert all(j["status"] == "complete" and j["results"] == RESULTS for j in r.body)
    r = await stack.call("GET", "/jobs?limit=2", user)
    assert [j["job_id"] for j in r.body] == list(reversed(ids))[:2]
    assert len((await stack.call("GET", "/jobs?limit=1000", user)).body) == 4  # capped at 100
    assert (await stack.call("GET", "/jobs?limit=0", user)).status == 422
    assert (await stack.call("GET", "/jobs?limit=abc", user)).status == 422
    r = await stack.call("GET", f"/jobs/{uuid.uuid4()}", user)
    assert r.status == 404 and r.body["code"] == "JOB_NOT_FOUND"


async def test_history_is_pruned_per_tier_and_shared_with_other_clients(stack: Stack) -> None:
    """Jobs from another client (published straight to the stream) share the history and its limit."""
    user = await stack.user("free")  # history limit 10
    key = await stack.upload(user)
    _, body = await analyze(stack, user, key)  # one through the API, still running
    running = str(body["job_id"])
    others = []
    for i in range(11):
        job_id = str(uuid.uuid4())
        others.append(job_id)
        await stack.bus.publish(
            JobSubmitted(
                job_id=job_id,
                user_id=user.user_id,
                file_key=key,
                filename=f"dash-{i}.fil",
                source_name=f"dash-{i}",
                file_size=1,
                created_at=int(time.time()) + i,
            )
        )
        await stack.bus.publish(
            JobCompleted(job_id=job_id, user_id=user.user_id, completed_at=int(time.time()), results={})
        )

    async def listed() -> list[str]:
        r = await stack.call("GET", "/jobs?limit=100", user)
        ids = [j["job_id"] for j in r.body]
        return ids if len(ids) == 10 and others[1] not in ids else []

    ids = await eventually(listed)
    # the two oldest finished jobs went; the running one (oldest of all) stays
    assert running in ids and others[0] not in ids and others[1] not in ids and others[-1] in ids
    assert (await stack.call("GET", f"/jobs/{others[0]}", user)).status == 404


async def test_results_removed_after_retention(stack: Stack) -> None:
    user = await stack.user("researcher")  # 90 days
    key = await stack.upload(user)
    _, body = await analyze(stack, user, key)
    job_id = str(body["job_id"])
    await finish(stack, user, job_id)
    submitted = JobSubmitted(
        job_id=job_id, user_id=user.user_id, file_key=key, filename="x", source_name="x", file_size=1, created_at=0
    )
    keys_ = await write_exports(stack.storage, submitted)
    ack = await stack.bus.publish(ExportsWritten(job_id=job_id, user_id=user.user_id, keys=keys_))
    await stack.edge.wait_applied(ack.seq)

    async def keeper_knows() -> bool:
        row = await stack.keeper.ledger._one("SELECT exports FROM jobs WHERE job_id=?", (job_id,))
        return bool(row and row[0] != "{}")

    await eventually(keeper_knows)
    assert await stack.keeper.sweep(now=int(time.time()) + 89 * 86400) == 0
    assert (await stack.call("GET", f"/jobs/{job_id}/download?format=json", user)).status == 200
    assert await stack.keeper.sweep(now=int(time.time()) + 91 * 86400) == 1
    for k in keys_.values():
        assert await stack.storage.head(k) is None

    async def gone() -> bool:
        r = await stack.call("GET", f"/jobs/{job_id}/download?format=json", user)
        return r.status == 404 and "retention" in r.body["error"]

    await eventually(gone)
    assert (await stack.call("GET", f"/jobs/{job_id}", user)).body["status"] == "complete"


async def test_reports(stack: Stack) -> None:
    user = await stack.user()
    key = await stack.upload(user)
    _, body = await analyze(stack, user, key)
    job_id = body["job_id"]
    r = await stack.call(
        "POST",
        "/reports",
        user,
        {"job_id": job_id, "error_type": "pipeline_failure", "description": "stuck", "metadata": {"browser": "x"}},
    )
    assert r.status == 201 and r.body["report_id"].startswith("rpt-") and r.body["message"]

    async def stored() -> bool:
        row = await stack.edge.store.fetchone("SELECT * FROM seti_reports WHERE report_id=?", (r.body["report_id"],))
        return row is not None and row["description"] == "stuck"

    await eventually(stored)
    assert (await stack.call("POST", "/reports", user, {"description": "x"})).status == 400
    assert (await stack.call("POST", "/reports", user, {"job_id": str(uuid.uuid4())})).status == 404
    bad = await stack.call("POST", "/reports", user, {"job_id": job_id, "error_type": "other"})
    assert bad.status == 422


async def test_health(stack: Stack) -> None:
    r = await stack.call("GET", "/health")
    assert r.status == 200 and r.body == {"status": "healthy", "version": "0.3.0"}
    doc = (await stack.call("GET", "/api/openapi.json")).body
    for path in ("/upload-url", "/complete-upload", "/abort-upload", "/analyze", "/jobs", "/jobs/{job_id}"):
        assert path in doc["paths"], path
    validate(doc)


async def test_a_job_dead_lettered_by_the_searcher_is_failed_and_frees_its_slot(stack: Stack) -> None:
    """A submission that crashed the searcher on every delivery is dead-lettered by the consumer;
    the quota keeper turns that into a failed job (once), so it does not stay "processing"."""
    from bus.replay import replay
    from schemas.base import encode
    from schemas.events import decode
    from schemas.ops import DeadLettered
    from schemas.seti import JobSubmitted

    user = await stack.user()
    key = await stack.upload(user)
    _, body = await analyze(stack, user, key)
    job_id = str(body["job_id"])
    submitted = None
    async for stored in replay(stack.bus.js, "seti.job.submitted"):
        event = decode(stored.data)
        if isinstance(event, JobSubmitted) and event.job_id == job_id:
            submitted = event
    assert submitted is not None
    dead = DeadLettered(
        consumer="searcher",
        original_subject="seti.job.submitted",
        original_seq=1,
        deliveries=5,
        reason="delivered 6 times without an answer",
        payload=encode(submitted).decode(),
    )
    await stack.bus.publish(dead)
    await stack.bus.publish(msgspec.structs.replace(dead, id="another-copy"))  # a second dead letter

    async def failed() -> Any:
        r = await stack.call("GET", f"/jobs/{job_id}", user)
        return r.body if r.body["status"] == "failed" else None

    job = await eventually(failed)
    assert "could not be processed after 5 attempts" in job["error"]
    failures = [decode(s.data) async for s in replay(stack.bus.js, "seti.job.failed")]
    assert len([f for f in failures if getattr(f, "job_id", "") == job_id]) == 1
