"""The real ``run.py``: it starts everything on an embedded nats-server and stops within 10 s."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env


async def _wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} did not appear")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_all_in_one_start_and_graceful_shutdown(tmp_path: Path, sig: signal.Signals) -> None:
    data = tmp_path / "var"
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "--data-dir",
        str(data),
        "--port",
        "0",
        cwd=ROOT,
        env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        edge_url = await _wait_for_file(data / "edge.url")
        nats_url = await _wait_for_file(data / "nats.url")
        assert nats_url.startswith("nats://127.0.0.1:")
        assert (data / "nats" / "jetstream").is_dir()  # JetStream file storage under the data dir
        async with aiohttp.ClientSession() as session:
            async with session.get(edge_url + "/health") as r:
                assert r.status == 200
            ws = await session.ws_connect(edge_url + "/api/ws/status")
            await ws.receive()  # the snapshot
            started = time.monotonic()
            proc.send_signal(sig)
            msg = await asyncio.wait_for(ws.receive(), 10)
            while msg.type == aiohttp.WSMsgType.TEXT:  # the rest of the snapshot, then the close frame
                msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001  # a proper close frame
            rc = await asyncio.wait_for(proc.wait(), 10)
            assert rc == 0
            assert time.monotonic() - started < 10
        assert not (data / "nats.url").exists() and not (data / "edge.url").exists()
        port = int(nats_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)  # the embedded server is gone too
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_edge_alone_without_a_running_system_says_so(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "edge",
        "--data-dir",
        str(tmp_path),
        cwd=ROOT,
        env=subprocess_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"no NATS found" in err
