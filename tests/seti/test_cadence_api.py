"""``POST /analyze-cadence`` through real HTTP, the quota keeper, two real searcher actors, the cadence
actor and a real nats-server: the same events as ``run.py events`` on the same files, each file counted."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.searcher.actor import SearcherActor
from actors.searcher.cadence_actor import CadenceActor
from actors.searcher.synth_cadence import make_cadence
from bus import Bus
from harness.env import clean_env
from settings import Settings
from tests.conftest import PYTHON, ROOT
from tests.seti.conftest import Stack
from tests.seti.test_cadence import OUT_OF_BAND, RFI, SKY
from tests.seti.test_searcher_service import wait_finished


@pytest.fixture
async def actors(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[None]:
    started = [SearcherActor(bus, settings), SearcherActor(bus, settings), CadenceActor(bus, settings)]
    for a in started:
        await a.start()
    try:
        yield
    finally:
        for a in started:
            await a.stop()


async def _download(stack: Stack, user: Any, job_id: str, fmt: str) -> Any:
    """The file's bytes (or, for JSON, the parsed document)."""
    r = await stack.call("GET", f"/jobs/{job_id}/download?format={fmt}", user)
    assert r.status == 200, r.body
    got = await stack.call("GET", r.body["download_url"])
    assert got.status == 200
    return got.body


async def _usage(stack: Stack, user: Any) -> int:
    r = await stack.call("GET", "/usage", user)
    assert r.status == 200, r.body
    return int(r.body["usage_this_month"])


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_cadence_job_gives_the_cli_events_and_counts_each_file(
    stack: Stack, actors: None, tmp_path: Path
) -> None:
    files = make_cadence(tmp_path / "cad", [SKY, RFI, OUT_OF_BAND])
    user = await stack.user()
    keys = [await stack.upload(user, p.name, p.read_bytes()) for p in files]
    before = await _usage(stack, user)
    body = {"files": [{"file_key": k, "on": i % 2 == 0} for i, k in enumerate(keys)], "source_name": "TARGET"}
    r = await stack.call("POST", "/analyze-cadence", user, body)
    assert r.status == 202, r.body
    job_id = r.body["job_id"]
    assert len(r.body["search_job_ids"]) == 6
    assert await _usage(stack, user) == before + 6  # quotas count each file
    job = await wait_finished(stack, user, job_id, timeout=240.0)
    assert job["status"] == "complete", job
    assert job["results"]["events"] == 1 and job["results"]["candidates"] == 1
    assert job["results"]["top_events"][0]["classification"] == "CANDIDATE_ET"
    for search in r.body["search_job_ids"]:  # each search is a job of its own, complete
        s = await stack.call("GET", f"/jobs/{search}", user)
        assert s.body["status"] == "complete"
    # the exports (waiting for them to be announced)
    for _ in range(200):
        got = await stack.call("GET", f"/jobs/{job_id}/download?format=events_csv", user)
        if got.status == 200:
            break
        await asyncio.sleep(0.1)
    api_csv = bytes(await _download(stack, user, job_id, "events_csv")).decode()
    api_json = await _download(stack, user, job_id, "events_json")
    plots = zipfile.ZipFile(io.BytesIO(bytes(await _download(stack, user, job_id, "events_plots"))))
    assert len(plots.namelist()) == 1 and plots.read(plots.namelist()[0]).startswith(b"\x89PNG")
    # the same files through the command line
    out = tmp_path / "cli"
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "run.py", "events", *map(str, files), "--out", str(out), "--quiet", cwd=ROOT, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, err.decode()
    cli_rows = _rows((out / "events.csv").read_text())
    assert _rows(api_csv) == cli_rows and len(cli_rows) == 3
    cli_json = json.loads((out / "events.json").read_text())
    assert api_json["counts"] == cli_json["counts"]
    assert [(h["classification"], h["reason"], h["frequency_mhz"]) for h in api_json["hits"]] == [
        (h["classification"], h["reason"], h["frequency_mhz"]) for h in cli_json["hits"]
    ]


async def test_cadence_request_errors(stack: Stack, actors: None, tmp_path: Path) -> None:
    user = await stack.user(tier="free")  # 10 files a month
    files = make_cadence(tmp_path / "cad", [SKY], n_files=6, nchans=1 << 12, fch1=1399.995)
    keys = [await stack.upload(user, p.name, p.read_bytes()) for p in files]
    one_on = {"files": [{"file_key": keys[0], "on": True}]}
    r = await stack.call("POST", "/analyze-cadence", user, one_on)
    assert r.status == 400 and r.body["code"] == "INVALID_CADENCE"
    all_on = {"files": [{"file_key": k, "on": True} for k in keys[:2]]}
    assert (await stack.call("POST", "/analyze-cadence", user, all_on)).status == 400
    other = await stack.user()
    r = await stack.call("POST", "/analyze-cadence", other, {"files": [{"file_key": k, "on": i == 0} for i, k in
                                                                     enumerate(keys[:2])]})
    assert r.status == 403
    six = {"files": [{"file_key": k, "on": i % 2 == 0} for i, k in enumerate(keys)]}
    r = await stack.call("POST", "/analyze-cadence", user, six)
    assert r.status == 202, r.body
    assert (await wait_finished(stack, user, r.body["job_id"], timeout=240.0))["status"] == "complete"
    # 6 of 10 used: a second cadence of six does not fit, and nothing of it is counted
    r = await stack.call("POST", "/analyze-cadence", user, six)
    assert r.status == 429 and "cadence of 6 files" in r.body["error"], r.body
    assert await _usage(stack, user) == 6
