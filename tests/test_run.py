"""The real ``run.py``: it starts everything on an embedded nats-server and stops within 10 s."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from harness.env import clean_env
from tests.conftest import PYTHON, ROOT


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
        env=clean_env(),
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
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"no NATS found" in err


async def test_processes_started_separately_form_one_system(tmp_path: Path) -> None:
    """The all-in-one process, a second quota keeper started alone, and operator commands that find
    the system through the same --data-dir: one system, one stream, one durable consumer per role."""
    import json

    data = tmp_path / "var"
    env = clean_env()
    main = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "--data-dir",
        str(data),
        "--port",
        "0",
        "--heartbeat",
        "0.5",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    extra = None
    try:
        edge_url = await _wait_for_file(data / "edge.url")
        extra = await asyncio.create_subprocess_exec(
            PYTHON,
            "run.py",
            "actor",
            "quota_keeper",
            "--data-dir",
            str(data),
            "--heartbeat",
            "0.5",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with aiohttp.ClientSession() as session:

            async def keepers() -> list[dict[str, object]]:
                async with session.get(edge_url + "/api/actors") as r:
                    body = await r.json()
                return [a for a in body["actors"] if a["role"] == "quota_keeper" and a["alive"]]

            deadline = time.monotonic() + 30
            while len(await keepers()) < 2:
                assert time.monotonic() < deadline, "second quota keeper never showed up"
                await asyncio.sleep(0.2)
            pids = {a["pid"] for a in await keepers()}
            assert extra.pid in pids and len(pids) == 2

            cli = await asyncio.create_subprocess_exec(
                PYTHON,
                "run.py",
                "users",
                "create",
                "--email",
                "ops@example.org",
                "--tier",
                "researcher",
                "--data-dir",
                str(data),
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, err.decode()
            created = json.loads(out)
            async with session.get(edge_url + "/usage", headers={"x-api-key": created["api_key"]}) as r:
                assert r.status == 200
                assert (await r.json())["user_id"] == created["user_id"]

        replay = await asyncio.create_subprocess_exec(
            PYTHON,
            "run.py",
            "replay",
            "--subject",
            "seti.>",
            "--data-dir",
            str(data),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(replay.communicate(), 60)
        assert replay.returncode == 0, err.decode()
        types = [json.loads(line)["event"]["type"] for line in out.splitlines()]
        assert "seti.user.updated" in types and "seti.key.created" in types
        assert created["api_key"].encode() not in out  # only the key's hash ever crosses the bus
    finally:
        for proc in (extra, main):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 15)
