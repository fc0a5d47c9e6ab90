"""The subscriber examples run, as a user would run them, against a real edge and a real nats-server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bus import Bus
from bus.server import EmbeddedServer
from bus.subscribers import authorization_block, new_subscriber, platform_user
from harness.env import clean_env
from tests.conftest import ROOT
from tests.web.test_event_feed import candidate, image

EXAMPLES = ROOT / "examples"


async def run_example(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        env=clean_env(**(env or {})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_sse_example_triggers_once_per_new_candidate(
    bus: Bus, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    first = (await bus.publish(image(1))).seq
    await bus.publish(candidate(7))
    await bus.publish(candidate(7))  # the same candidate extended: no second trigger
    await bus.publish(candidate(8))
    out = await run_example("sse_ese_trigger.py", "--edge", edge.url, "--since-seq", str(first), "--max", "2")
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("new ESE candidate 7 source=src7")
    assert lines[0].endswith(f"light_curve={edge.url}/api/sources/src7")
    assert lines[1].startswith("new ESE candidate 8 source=src8")


async def test_nats_example_reads_with_a_durable_consumer_and_resumes(tmp_path: Path) -> None:
    platform, sub = platform_user(), new_subscriber("lofar")
    server = EmbeddedServer(tmp_path / "nats", authorization=authorization_block([platform, sub]))
    server.start()
    try:
        bus = await Bus.connect(f"nats://{platform.user}:{platform.password}@{server.host}:{server.port}")
        try:
            seqs = [(await bus.publish(image(i))).seq for i in range(3)]
            await bus.publish(candidate(1))  # not an image: not for this consumer
            env = {"NATS_URL": server.url, "NATS_USER": sub.user, "NATS_PASSWORD": sub.password}
            out = await run_example("nats_image_subscriber.py", "--max", "3", env=env)
            assert [line.split()[0] for line in out.splitlines()] == [f"seq={s}" for s in seqs]
            # stopped; one more image; a new run carries on after the last acknowledged one
            later = (await bus.publish(image(9))).seq
            out = await run_example("nats_image_subscriber.py", "--max", "1", env=env)
            assert out.splitlines() == [
                f"seq={later} image=/data/images/img9.fits mjd=60009.0 noise_jy=0.001 schema_version=1"
            ]
        finally:
            await bus.close()
    finally:
        server.stop()
