"""The seed's example Python client runs unchanged (bar API and API_KEY) against the running stack.

One run uploads a file under 50 MB (single PUT), the other one over 50 MB (multipart, 10 MB parts);
both run at once, as subprocesses, against the edge + quota keeper + nats-server of this test. The
search itself is done by ``SearcherStandIn`` (a test stand-in for the searcher actor). The script
polls every 10 s and sleeps 15 s before downloading, so this test takes about 25 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from pathlib import Path

from bus import Bus
from settings import Settings
from tests.seti.conftest import CSV, RESULTS, SearcherStandIn, Stack, User, write_filterbank

SCRIPT = Path(__file__).parent / "fixtures" / "seed_client.py"
MB = 1024 * 1024


def prepare(workdir: Path, api: str, api_key: str, size: int) -> Path:
    workdir.mkdir(parents=True)
    text = SCRIPT.read_text()
    text, n_api = re.subn(r'^API = ".*"$', f"API = {json.dumps(api)}", text, flags=re.M)
    text, n_key = re.subn(r'^API_KEY = ".*"$', f"API_KEY = {json.dumps(api_key)}", text, flags=re.M)
    assert n_api == 1 and n_key == 1
    script = workdir / "client.py"
    script.write_text(text)
    write_filterbank(workdir / "observation.fil", size)
    return script


async def run_client(script: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        script.name,
        cwd=script.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


async def check_run(stack: Stack, user: User, workdir: Path, output: str, multipart: bool) -> None:
    assert ("Multipart upload complete" if multipart else "Upload complete") in output
    assert "Status: complete" in output
    job_id = re.search(r"Job submitted: ([0-9a-f-]{36})", output)
    assert job_id, output
    jid = job_id.group(1)
    assert "Results: 543 raw hits, 163 filtered, 20 candidates" in output
    assert "1420.406 MHz | SNR=14.2 | NARROWBAND_DRIFTING" in output
    for fmt in ("json", "csv", "fits", "waterfall"):
        assert f"Saved {fmt}:" in output, output
    assert json.loads((workdir / f"{jid[:8]}.json").read_text()) == RESULTS
    assert (workdir / f"{jid[:8]}_signals.csv").read_text() == CSV
    assert (workdir / f"{jid[:8]}.png").read_bytes().startswith(b"\x89PNG")
    assert (workdir / f"{jid[:8]}.fits").read_bytes().startswith(b"SIMPLE")
    # the uploaded object is the file, byte for byte
    job = await stack.call("GET", f"/jobs/{jid}", user)
    assert job.body["status"] == "complete"
    key = (await stack.edge.store.fetchone("SELECT file_key FROM seti_jobs WHERE job_id=?", (jid,)))["file_key"]
    stored = await stack.storage.get_bytes(key)
    assert stored is not None and hashlib.md5(stored, usedforsecurity=False).hexdigest() == md5(
        workdir / "observation.fil"
    )
    assert job.body["file_size"] == (workdir / "observation.fil").stat().st_size


async def run_both(stack: Stack, tmp_path: Path, sizes: dict[str, int]) -> None:
    user = await stack.user("researcher")
    scripts = {name: prepare(tmp_path / name, stack.url, user.api_key, size) for name, size in sizes.items()}
    outputs = await asyncio.gather(*(run_client(s) for s in scripts.values()))
    for (name, size), output in zip(sizes.items(), outputs, strict=True):
        await check_run(stack, user, tmp_path / name, output, multipart=size > 50 * MB)
    usage = await stack.call("GET", "/usage", user)
    assert usage.body["usage_this_month"] == len(sizes)


async def test_seed_client_small_and_multipart(stack: Stack, bus: Bus, settings: Settings, tmp_path: Path) -> None:
    searcher = SearcherStandIn(bus, settings)
    await searcher.start()
    try:
        await run_both(stack, tmp_path, {"small": 3 * MB, "large": 55 * MB})
    finally:
        await searcher.stop()
