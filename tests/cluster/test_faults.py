"""The cluster fault suite: three nats-server nodes on loopback, the edge, the quota keeper and two
searchers as separate processes; parts are killed with SIGKILL and the outcome is counted.

* the stream leader's node killed during 10 in-flight jobs: every job completes exactly once and
  the edge keeps answering; the node comes back and catches up;
* a searcher killed mid-job: the other takes the job over within 10 s and completes it once;
* one of two quota keepers killed during a burst of /analyze: the other keeps admitting; no
  overshoot of the tier and no double charge when the refused requests are retried with their
  Idempotency-Keys;
* the stream is still R3 after every role has restarted with the default settings.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from actors.searcher.synth import Tone, make_filterbank
from harness.cluster import ApiUser, System
from schemas.seti import JobCompleted, JobProgressed, JobSubmitted
from tests.seti.test_searcher_processes import MAX_DRIFT, coarse_channels_for

pytestmark = pytest.mark.timeout(400)


def observation(tmp_path: Path, seconds: float) -> bytes:
    """A filterbank whose search takes about ``seconds`` here, with one drifting tone."""
    coarse = coarse_channels_for(tmp_path, seconds)
    path = make_filterbank(
        tmp_path / f"obs{seconds}.fil", nchans=coarse << 16, ntime=16, nbits=8, fch1=1400.0,
        tones=[Tone(1399.95, 1.5, 30.0)],
    )  # fmt: skip
    return path.read_bytes()


async def analyze(system: System, user: ApiUser, key: str, **headers: str) -> tuple[int, dict[str, object]]:
    status, body = await system.call(
        "POST", "/analyze", user, {"file_key": key, "max_drift": MAX_DRIFT}, headers=headers or None
    )
    return status, body


async def test_stream_leader_killed_during_ten_jobs(system: System, tmp_path: Path) -> None:
    await system.start_role("edge")
    await system.start_role("quota_keeper")
    for _ in range(2):
        await system.start_role("searcher")
    await system.wait_heartbeats("searcher", 2)
    payload = observation(tmp_path, 1.5)
    users = [await system.user(), await system.user()]  # 5 running jobs at most per user
    keys = [await system.upload(u, payload) for u in users]
    jobs: dict[str, ApiUser] = {}
    for i in range(10):
        user, key = users[i % 2], keys[i % 2]
        status, body = await analyze(system, user, key)
        assert status == 202, body
        jobs[str(body["job_id"])] = user

    # the first job is under way: take the stream leader's node away
    while not await system.events(JobProgressed, set(jobs)):
        await asyncio.sleep(0.2)
    leader = (await system.bus.js.stream_info("EVENTS")).cluster.leader  # type: ignore[union-attr]
    index = next(i for i, n in enumerate(system.cluster.nodes) if n.server_name == leader)
    system.cluster.kill(index)
    killed_at = time.monotonic()

    # the edge answers throughout (from its projection), while the jobs finish elsewhere
    answers: list[int] = []
    first_write_s: float | None = None

    async def probe() -> None:
        nonlocal first_write_s
        while True:
            for job_id, user in jobs.items():
                status, _ = await system.call("GET", f"/jobs/{job_id}", user)
                answers.append(status)
            if first_write_s is None and len(await system.events(JobProgressed, set(jobs))) > 1:
                first_write_s = time.monotonic() - killed_at
            await asyncio.sleep(0.5)

    prober = asyncio.create_task(probe())
    try:
        states = await system.finished(set(jobs), timeout=180)
    finally:
        prober.cancel()
    assert set(states.values()) == {"complete"}, states
    completions = [e.job_id for _, e in await system.events(JobCompleted, set(jobs))]
    assert sorted(completions) == sorted(jobs), "a job completed twice, or not at all"
    assert answers and set(answers) == {200}, f"edge answers during the outage: {sorted(set(answers))}"

    system.cluster.start_node(index)  # the lost node returns and catches up
    deadline = time.monotonic() + 60
    while (await system.stream_replicas()) != (3, 3):
        assert time.monotonic() < deadline, await system.stream_replicas()
        await asyncio.sleep(0.5)
    print(f"\nleader lost: {len(jobs)} jobs completed once each; {len(answers)} edge reads, all 200")


async def test_searcher_killed_mid_job_is_taken_over_within_ten_seconds(system: System, tmp_path: Path) -> None:
    await system.start_role("edge")
    await system.start_role("quota_keeper")
    searchers = [await system.start_role("searcher") for _ in range(2)]
    await system.wait_heartbeats("searcher", 2)
    user = await system.user()
    key = await system.upload(user, observation(tmp_path, 8.0))
    status, body = await analyze(system, user, key)
    assert status == 202, body
    job_id = str(body["job_id"])

    # which searcher holds it: the one whose heartbeat shows work in flight
    deadline = time.monotonic() + 60
    holder = None
    while holder is None:
        assert time.monotonic() < deadline, "no searcher took the job"
        async with system.http.get(system.edge_url + "/api/actors") as r:
            actors = (await r.json())["actors"]
        busy = {a["pid"] for a in actors if a["role"] == "searcher" and a["in_flight"]}
        holder = next((s for s in searchers if s.proc.pid in busy), None)
        await asyncio.sleep(0.2)
    while not await system.events(JobProgressed, {job_id}):
        await asyncio.sleep(0.1)
    await holder.kill()
    killed_at = time.time()

    # taken over: a progress event for the job stored after the kill comes from the survivor
    deadline = time.monotonic() + 30
    while True:
        later = [s for s, _ in await system.events(JobProgressed, {job_id}) if s.time.timestamp() > killed_at + 0.05]
        if later:
            takeover_s = later[0].time.timestamp() - killed_at
            break
        assert time.monotonic() < deadline, "the job was not taken over"
        await asyncio.sleep(0.2)
    assert takeover_s < 10.0, f"taken over after {takeover_s:.1f} s"
    states = await system.finished({job_id}, timeout=120)
    assert states == {job_id: "complete"}
    assert len(await system.events(JobCompleted, {job_id})) == 1
    print(f"\nsearcher killed: job taken over after {takeover_s:.1f} s and completed once")


async def test_one_of_two_quota_keepers_killed_during_a_burst(system: System, tmp_path: Path) -> None:
    """Two keepers share the KV ledger; one is SIGKILLed mid-burst: the other keeps admitting, no
    request makes two jobs, nothing overshoots the tier, and usage is one charge per job."""
    await system.start_role("edge")
    # both at the same instant, on a fresh cluster: both create the R3 QUOTA bucket (bus.kv)
    keepers = [await system.start_role("quota_keeper", "--kv-replicas", "3") for _ in range(2)]
    await system.wait_heartbeats("quota_keeper", 2)
    user = await system.user("free")  # 10 files a month, at most 5 running
    key = await system.upload(user, observation(tmp_path, 0.2))
    requests = [f"burst-{i}" for i in range(20)]  # no searcher runs: every admitted job stays running

    async def one(request_id: str, who: ApiUser = user, file_key: str = key) -> tuple[str, int, str]:
        status, body = await analyze(system, who, file_key, **{"Idempotency-Key": request_id})
        return request_id, status, str(body.get("job_id", "")) if isinstance(body, dict) else ""

    first = asyncio.gather(*(one(r) for r in requests[:10]))
    await asyncio.sleep(0.05)
    await keepers[0].kill()  # mid-burst
    answered = list(await first) + list(await asyncio.gather(*(one(r) for r in requests[10:])))
    refused = [r for r, status, _ in answered if status == 503]

    # the survivor keeps admitting, with no restart: a second user's job starts
    other = await system.user("free")
    other_key = await system.upload(other, observation(tmp_path, 0.2))
    deadline = time.monotonic() + 60
    while (after := await one("after-the-kill", other, other_key))[1] == 503:  # same key: retry-safe
        assert time.monotonic() < deadline, "the surviving keeper does not admit"
        await asyncio.sleep(0.5)
    assert after[1] == 202, after

    deadline = time.monotonic() + 60
    retried = []
    for request_id in refused:  # the client retries as told, with the same keys
        while True:
            got = await one(request_id)
            if got[1] != 503:
                retried.append(got)
                break
            assert time.monotonic() < deadline, "the surviving keeper does not answer"
            await asyncio.sleep(0.5)

    outcomes = [a for a in answered if a[1] != 503] + retried
    admitted = {job for _, status, job in outcomes if status == 202}
    by_request: dict[str, set[str]] = {}
    for request_id, status, job in outcomes:
        if status == 202:
            by_request.setdefault(request_id, set()).add(job)
    assert all(len(j) == 1 for j in by_request.values()), "a request made two jobs"
    assert len(admitted) == 5, f"{len(admitted)} running jobs admitted: the limit is 5"
    assert {s for _, s, _ in outcomes} <= {202, 429}, outcomes
    submitted = {e.job_id for _, e in await system.events(JobSubmitted) if e.user_id == user.user_id}
    assert submitted == admitted, f"started but never told, or told but never started: {sorted(submitted ^ admitted)}"
    status, usage = await system.call("GET", "/usage", user)
    assert usage["usage_this_month"] == len(admitted), usage  # charged once per job, never per retry
    print(
        f"\none of two keepers killed mid-burst: {len(refused)} refused with 503, {len(admitted)} admitted, usage {usage}"
    )


async def test_stream_stays_r3_after_every_role_restarts_with_default_settings(system: System) -> None:
    """Every role started, stopped and started again with the default --stream-replicas (1)."""
    names = ("edge", "quota_keeper", "searcher", "watcher", "calibrator", "imager", "variability", "alerter")
    for _ in range(2):
        roles = [await system.start_role(name, replicas=1) for name in names]
        await system.wait_heartbeats("searcher", 1)
        assert await system.stream_replicas() == (3, 3)
        await asyncio.gather(*(role.stop() for role in roles))
    assert await system.stream_replicas() == (3, 3)
