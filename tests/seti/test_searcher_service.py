"""The de-Doppler searcher actor in the running stack: edge, quota keeper, searcher and a real nats-server.

Files are synthetic filterbanks with injected drifting tones (``actors.searcher.synth``), uploaded
through the API like any client's, and everything is checked over HTTP, WebSocket and SSE.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import h5py
import numpy as np
import pytest
from astropy.io import fits

from actors.searcher.actor import SearcherActor
from actors.searcher.synth import Tone, make_filterbank
from bus import Bus
from bus.replay import replay
from schemas.events import decode
from schemas.seti import JobCompleted, JobProgressed, JobSubmitted
from settings import Settings
from tests.seti.conftest import Stack, User, _header, filterbank_bytes, sigproc_header

FOFF_MHZ = -2.7939677238464355e-06
FCH1_MHZ = 1400.0
TONES = [Tone(1399.95, 2.0, 30.0), Tone(1399.80, -3.5, 30.0), Tone(1399.62, 0.6, 25.0)]
ALL_FORMATS = ["json", "csv", "catalog_json", "classified", "fits", "waterfall", "waterfall_thumb", "dat"]


@pytest.fixture
async def searcher(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[SearcherActor]:
    actor = SearcherActor(bus, settings)
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()


def synthetic(tmp_path: Path, name: str, *, nchans: int = 1 << 16, tones: list[Tone] | None = None) -> bytes:
    path = make_filterbank(
        tmp_path / name, nchans=nchans, ntime=16, fch1=FCH1_MHZ, foff=FOFF_MHZ, nbits=8, tones=tones or TONES
    )
    return path.read_bytes()


async def analyze(stack: Stack, user: User, file_key: str, **extra: Any) -> str:
    r = await stack.call("POST", "/analyze", user, {"file_key": file_key, **extra})
    assert r.status == 202, r.body
    return str(r.body["job_id"])


async def wait_finished(stack: Stack, user: User, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} (as the seed's client does, at a short interval) until complete or failed."""
    deadline = time.monotonic() + timeout
    while True:
        r = await stack.call("GET", f"/jobs/{job_id}", user)
        assert r.status == 200, r.body
        if r.body["status"] in ("complete", "failed"):
            return dict(r.body)
        assert time.monotonic() < deadline, f"job {job_id} still {r.body['status']} after {timeout}s"
        await asyncio.sleep(0.05)


async def completions(bus: Bus, job_id: str) -> list[JobCompleted]:
    out = []
    async for stored in replay(bus.js, JobCompleted.subject()):
        event = decode(stored.data)
        if isinstance(event, JobCompleted) and event.job_id == job_id:
            out.append(event)
    return out


async def ws_updates(stack: Stack, user: User, job_id: str, until_exports: int) -> list[dict[str, Any]]:
    """Every job_update of the job's WebSocket until it is complete with ``until_exports`` formats."""
    seen: list[dict[str, Any]] = []
    async with stack.session.ws_connect(f"{stack.url}/jobs/{job_id}/ws", headers={"x-api-key": user.api_key}) as ws:
        async for msg in ws:
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            body = json.loads(msg.data)
            assert body["type"] == "job_update"
            seen.append(body)
            if body["data"]["status"] == "failed" or len(body["exports"]) >= until_exports:
                break
    return seen


async def sse_updates(stack: Stack, user: User, job_id: str) -> list[dict[str, Any]]:
    """Every job_update of the job's SSE stream until it is complete or failed."""
    seen: list[dict[str, Any]] = []
    async with stack.session.get(f"{stack.url}/jobs/{job_id}/events", headers={"x-api-key": user.api_key}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if not line.startswith("data: "):
                continue
            body = json.loads(line[len("data: ") :])
            seen.append(body)
            if body["data"]["status"] in ("complete", "failed"):
                break
    return seen


async def _job_events(stack: Stack, type_: type[Any], job_id: str) -> Any:
    from bus.replay import replay
    from schemas.events import decode

    async for stored in replay(stack.bus.js, type_.subject()):
        event = decode(stored.data)
        if isinstance(event, type_) and getattr(event, "job_id", None) == job_id:
            yield event


def processing_percents(updates: list[dict[str, Any]]) -> list[float]:
    return [u["data"]["progress"]["percent"] for u in updates if u["data"]["status"] == "processing"]


async def test_search_job_live_progress_results_and_every_download(
    stack: Stack, searcher: SearcherActor, tmp_path: Path
) -> None:
    user = await stack.user()
    # 4 coarse channels of 2^16 (so progress has steps to show), 8-bit, 16 time steps: 4 MiB.
    payload = synthetic(tmp_path, "tones.fil", nchans=4 << 16)
    file_key = await stack.upload(user, "tones.fil", payload)
    job_id = await analyze(stack, user, file_key, max_drift=10, source_name="Synthetic tones")

    ws_task = asyncio.create_task(ws_updates(stack, user, job_id, until_exports=len(ALL_FORMATS)))
    sse_task = asyncio.create_task(sse_updates(stack, user, job_id))
    ws_seen, sse_seen = await asyncio.wait_for(asyncio.gather(ws_task, sse_task), 60)

    # Progress is published as the coarse channels are searched (throttled in time, so a fast search
    # may go from 0 straight to 100): it rises through the search.
    published = [e.percent async for e in _job_events(stack, JobProgressed, job_id)]
    assert published == sorted(published) and published[0] == 0 and published[-1] == 100, published
    # ...and shows live on both endpoints. A live view shows the job's state as it is applied, so a
    # fast search may show fewer steps than were published: it must show valid, rising progress.
    for seen in (ws_seen, sse_seen):
        percents = processing_percents(seen)
        assert percents == sorted(percents), percents
        assert percents and all(0 <= p <= 100 for p in percents), percents
        stages = {u["data"]["progress"]["stage"] for u in seen if u["data"]["status"] == "processing"}
        assert stages <= {"ingest", "dedoppler", "classify"} and "dedoppler" in stages, stages
        assert seen[-1]["data"]["status"] == "complete"
    assert ws_seen[-1]["exports"] == ALL_FORMATS  # the exports arrive (live) after the completion

    # the job, as GET /jobs/{id} serves it: the seed's fields, the same document as the live views
    job = await wait_finished(stack, user, job_id)
    assert job == ws_seen[-1]["data"]
    assert job["source_name"] == "Synthetic tones" and job["filename"] == "tones.fil"
    assert job["file_size"] == len(payload) and job["completed_at"] >= job["created_at"]
    results = job["results"]
    assert results["raw_hits"] >= results["filtered_hits"] >= results["candidates"] >= len(TONES)
    assert 0 < results["processing_time_seconds"] < 60
    res = results["drift_rate_resolution"]
    assert res > 0 and "power of two" in results["drift_rate_convention"]
    seed_fields = {"frequency_hz", "drift_rate", "snr", "classification", "interestingness", "rfi_source", "source"}
    for c in results["top_candidates"]:
        assert set(c) == seed_fields
        assert 0 <= c["interestingness"] <= 1
    for tone in TONES:  # every injected signal is found, within two channels and one drift bin
        match = [
            c
            for c in results["top_candidates"]
            if abs(c["frequency_hz"] - tone.freq_mhz * 1e6) <= 2 * abs(FOFF_MHZ) * 1e6
            and abs(c["drift_rate"] - tone.drift_rate) <= res + 1e-9
        ]
        assert match, (tone, results["top_candidates"])
        assert match[0]["snr"] >= 10 and match[0]["classification"] in ("DRIFTING_UNCONFIRMED", "NARROWBAND_DRIFTING")

    # every download format is available, and each is what it says it is
    files: dict[str, bytes] = {}
    for fmt in ALL_FORMATS:
        r = await stack.call("GET", f"/jobs/{job_id}/download?format={fmt}", user)
        assert r.status == 200, (fmt, r.body)
        if fmt == "csv":
            assert r.headers["Content-Type"].startswith("text/csv")
            files[fmt] = r.body
            continue
        assert r.body["format"] == fmt
        got = await stack.call("GET", r.body["download_url"])
        assert got.status == 200, (fmt, got.body)
        files[fmt] = got.body if isinstance(got.body, bytes) else json.dumps(got.body).encode()

    full = json.loads(files["json"])
    assert full["raw_hits"] == results["raw_hits"] and len(full["hits"]) == results["raw_hits"]
    assert full["search"]["max_drift"] == 10
    csv_lines = files["csv"].decode().strip().splitlines()
    assert csv_lines[0].startswith("source_name,frequency_hz,drift_rate,snr,classification")
    assert len(csv_lines) == 1 + results["raw_hits"]
    assert isinstance(json.loads(files["catalog_json"]), list | dict)
    assert isinstance(json.loads(files["classified"]), list | dict)
    with fits.open(io.BytesIO(files["fits"])) as hdul:
        table = hdul[1].data
        assert len(table) == results["raw_hits"]
        assert {"FREQUENCY_HZ", "DRIFT_RATE", "SNR"} <= {n.upper() for n in table.columns.names}
    for fmt in ("waterfall", "waterfall_thumb"):
        assert files[fmt].startswith(b"\x89PNG\r\n\x1a\n")
    dat = files["dat"].decode()
    assert "Top_Hit_#" in dat and "Drift_Rate" in dat

    # exactly one completion in the stream
    assert len(await completions(stack.bus, job_id)) == 1


def bad_files() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a word the failure reason must contain)."""
    header = _header(4096)
    good = filterbank_bytes(nchans=4096, ntime=16)
    with_nan = np.random.default_rng(0).normal(100.0, 1.0, (16, 4096)).astype("<f4")
    with_nan[3, 100] = np.nan
    h5 = io.BytesIO()
    with h5py.File(h5, "w") as f:
        f.create_dataset("not_data", data=np.zeros((4, 4), dtype="f4"))
    return {
        "truncated.fil": (good[:-1000], "truncated"),
        "unknown_keyword.fil": (
            sigproc_header(**header, frobnicate=3) + np.ones((16, 4096), "<f4").tobytes(),
            "frobnicate",
        ),
        "nchans_mismatch.fil": (
            sigproc_header(**{**header, "nchans": 5000}) + np.ones((16, 4096), "<f4").tobytes(),
            "nchans",
        ),
        "nan.fil": (sigproc_header(**header) + with_nan.tobytes(), "NaN"),
        "one_step.fil": (sigproc_header(**header) + np.ones((1, 4096), "<f4").tobytes(), "fewer than 2 time steps"),
        "no_data.h5": (h5.getvalue(), "'data'"),
        "not_a_filterbank.fil": (b"this is a text file, not a filterbank\n" * 50, "not a filterbank"),
    }


async def test_bad_files_fail_with_their_reason_while_a_good_job_completes(
    stack: Stack, searcher: SearcherActor, tmp_path: Path
) -> None:
    # Two users: at most 5 running jobs each, and there are 7 bad files and a good one.
    users = [await stack.user(), await stack.user()]
    cases = bad_files()
    jobs: dict[str, tuple[User, str, str]] = {}
    good_user = users[1]
    good_key = await stack.upload(good_user, "good.fil", synthetic(tmp_path, "good.fil"))
    for i, (name, (payload, reason)) in enumerate(cases.items()):
        user = users[i % 2]
        key = await stack.upload(user, name, payload)
        jobs[name] = (user, await analyze(stack, user, key), reason)
        if i == 3:  # the good job goes in among the bad ones
            good_job = await analyze(stack, good_user, good_key)

    good = await wait_finished(stack, good_user, good_job)
    assert good["status"] == "complete", good
    assert good["results"]["candidates"] >= 1  # the one tone inside this 2^16-channel band
    for name, (user, job_id, reason) in jobs.items():
        job = await wait_finished(stack, user, job_id)
        assert job["status"] == "failed", (name, job)
        assert reason in job["error"] and name in job["error"], (name, job["error"])
        r = await stack.call("GET", f"/jobs/{job_id}/download?format=json", user)
        assert r.status == 404

    # the searcher is still there and well: a failed job is acked, not retried or dead-lettered
    assert searcher._consumer is not None
    assert searcher._consumer.stats.failed == 0 and searcher._consumer.stats.dead_lettered == 0
    # and every running slot was freed: the user can run 5 jobs again
    usage = await stack.call("GET", "/usage", users[0])
    assert usage.status == 200


async def test_max_drift_above_50_is_refused_at_analyze(stack: Stack, tmp_path: Path) -> None:
    user = await stack.user()
    key = await stack.upload(user, "obs.fil")
    r = await stack.call("POST", "/analyze", user, {"file_key": key, "max_drift": 50.5})
    assert r.status == 422, r.body
    assert "max_drift" in json.dumps(r.body)
    r = await stack.call("POST", "/analyze", user, {"file_key": key, "max_drift": 50})
    assert r.status == 202, r.body


async def test_live_endpoints_are_per_user(stack: Stack, searcher: SearcherActor, tmp_path: Path) -> None:
    owner, other = await stack.user(), await stack.user()
    key = await stack.upload(owner, "obs.fil", synthetic(tmp_path, "obs.fil"))
    job_id = await analyze(stack, owner, key)
    for suffix in ("ws", "events"):
        path = f"/jobs/{job_id}/{suffix}"
        assert (await stack.call("GET", path)).status == 403  # no key
        assert (await stack.call("GET", path, "sk_live_" + "x" * 43)).status == 403  # unknown key
        r = await stack.call("GET", path, other)
        assert r.status == 403 and r.body["code"] == "FORBIDDEN"
        assert (await stack.call("GET", f"/jobs/nope/{suffix}", owner)).status == 404
    await wait_finished(stack, owner, job_id)
    # connecting after the end still gives the whole state at once
    async with stack.session.ws_connect(f"{stack.url}/jobs/{job_id}/ws", headers={"x-api-key": owner.api_key}) as ws:
        first = json.loads((await ws.receive(timeout=10)).data)
    assert first["type"] == "job_update" and first["data"]["status"] == "complete"
    assert first["data"] == (await stack.call("GET", f"/jobs/{job_id}", owner)).body


async def test_a_redelivered_job_does_not_complete_twice(
    stack: Stack, searcher: SearcherActor, bus: Bus, tmp_path: Path
) -> None:
    user = await stack.user()
    key = await stack.upload(user, "obs.fil", synthetic(tmp_path, "obs.fil"))
    job_id = await analyze(stack, user, key)
    await wait_finished(stack, user, job_id)
    assert searcher._consumer is not None
    handled = searcher._consumer.stats.handled
    # The same job again, as a redelivery (or a client re-sending it) would bring it.
    async for stored in replay(bus.js, JobSubmitted.subject()):
        submitted = decode(stored.data)
        if isinstance(submitted, JobSubmitted) and submitted.job_id == job_id:
            break
    again = JobSubmitted(**{f: getattr(submitted, f) for f in submitted.__struct_fields__ if f not in ("id", "time")})
    await bus.publish(again)
    deadline = time.monotonic() + 30
    while searcher._consumer.stats.handled == handled:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert len(await completions(bus, job_id)) == 1
    assert (await stack.call("GET", f"/jobs/{job_id}", user)).body["status"] == "complete"
