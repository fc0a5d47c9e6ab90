"""A read-only subscriber on a real nats-server with the generated permissions: it reads, it cannot write."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from bus import Bus
from bus.server import EmbeddedServer
from bus.stream import STREAM
from bus.subscribers import authorization_block, inbox_prefix, new_subscriber, platform_user
from harness.env import clean_env
from schemas.dsa import ImageReady
from schemas.seti import JobsPruned
from tests.conftest import PYTHON, ROOT


def image(i: int) -> ImageReady:
    return ImageReady(
        path=f"/i{i}.fits",
        group_id=f"g{i}",
        mjd=1.0,
        noise_jy=1.0,
        bmaj_deg=1,
        bmin_deg=1,
        bpa_deg=0,
        n_sources_5sigma=1,
    )


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedServer, Any, Any]]:
    platform, sub = platform_user(), new_subscriber("lofar")
    server = EmbeddedServer(tmp_path / "nats", authorization=authorization_block([platform, sub]))
    server.start()
    try:
        yield server, platform, sub
    finally:
        server.stop()


async def test_subscriber_reads_dsa_and_cannot_write(secured: tuple[EmbeddedServer, Any, Any]) -> None:
    server, platform, sub = secured
    url = f"nats://{server.host}:{server.port}"
    bus = await Bus.connect(f"nats://{platform.user}:{platform.password}@{server.host}:{server.port}", name="platform")
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(
        url,
        user=sub.user,
        password=sub.password,
        inbox_prefix=inbox_prefix(sub.user),
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        seqs = [(await bus.publish(image(i))).seq for i in range(3)]
        await bus.publish(JobsPruned(user_id="someone", job_ids=["job_secret"]))
        js = nc.jetstream(timeout=1.0)

        # reads: its own durable consumer on dsa.>, pulled and acknowledged
        await js.add_consumer(
            STREAM,
            ConsumerConfig(name="lofar", durable_name="lofar", filter_subject="dsa.>", ack_policy=AckPolicy.EXPLICIT),
        )
        psub = await js.pull_subscribe_bind("lofar", stream=STREAM)
        msgs = await psub.fetch(10, timeout=2.0)
        assert [m.metadata.sequence.stream for m in msgs] == seqs
        for m in msgs:
            await m.ack_sync(timeout=2.0)
        assert (await psub.consumer_info()).num_ack_pending == 0
        # and live events on core NATS
        live = await nc.subscribe("dsa.>")
        await nc.flush()
        await bus.publish(image(9))
        assert (await live.next_msg(timeout=2.0)).subject == "dsa.image.ready"

        before = (await bus.js.stream_info(STREAM)).state.messages

        async def refused(coro: Any) -> None:
            with pytest.raises((nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError)):
                await coro

        # cannot publish an event (the stream never gets it)
        await refused(js.publish("dsa.image.ready", b"{}", timeout=1.0))
        await nc.publish("ops.alert.raised", b"{}")
        # cannot delete or purge the stream, nor delete or re-filter a consumer
        await refused(js.purge_stream(STREAM))
        await refused(js.delete_stream(STREAM))
        await refused(js.delete_consumer(STREAM, "lofar"))
        # cannot create a consumer that reads SETI, nor one named like another's
        await refused(js.add_consumer(STREAM, ConsumerConfig(name="lofar", filter_subject="seti.>")))
        await refused(js.add_consumer(STREAM, ConsumerConfig(name="edge", filter_subject="dsa.>")))
        await refused(js.add_consumer(STREAM, ConsumerConfig(durable_name="lofar_legacy")))
        # cannot read a SETI message by sequence
        await refused(js.get_msg(STREAM, seqs[-1] + 1))
        # nor overhear SETI on core NATS
        await nc.subscribe("seti.>")
        await nc.flush()
        await asyncio.sleep(0.2)

        info = await bus.js.stream_info(STREAM)
        assert info.state.messages == before  # nothing published, deleted or purged
        consumer = await bus.js.consumer_info(STREAM, "lofar")
        assert consumer.config.filter_subject == "dsa.>"
        with contextlib.suppress(Exception):
            assert not await bus.js.consumer_info(STREAM, "edge")
        # and the server said why, each time
        refusals = " ".join(errors).lower()
        for subject in (
            "dsa.image.ready",
            "ops.alert.raised",
            "$js.api.stream.purge.events",
            "$js.api.stream.delete.events",
            "$js.api.consumer.delete.events.lofar",
            "$js.api.consumer.create.events.lofar.seti.>",
            "$js.api.consumer.create.events.edge.dsa.>",
            "$js.api.consumer.durable.create.events.lofar_legacy",
            "$js.api.stream.msg.get.events",
        ):
            assert f'permissions violation for publish to "{subject}"' in refusals, subject
        assert 'permissions violation for subscription to "seti.>"' in refusals
    finally:
        await nc.close()
        await bus.close()


def test_run_subscribers_create_prints_config_and_credentials(tmp_path: Path) -> None:
    out = subprocess.run(
        [PYTHON, "run.py", "subscribers", "create", "lofar", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    password = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("NATS_PASSWORD="))
    assert password and password not in text.split("## For the subscriber")[0]  # the config has only the hash
    assert 'user: "lofar"' in text and 'password: "$2b$' in text
    assert "$JS.API.CONSUMER.CREATE.EVENTS.lofar.dsa.>" in text
    bad = subprocess.run(
        [PYTHON, "run.py", "subscribers", "create", "Bad Name", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "subscriber name" in bad.stderr
