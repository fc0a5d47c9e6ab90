"""Prometheus metrics, scraped over HTTP as Prometheus would: from the edge's /metrics and from an
actor process started alone with --metrics-port."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bus import Bus
from bus.server import free_port
from harness.env import clean_env
from settings import Settings
from tests.bus.test_consume import Recorder, group
from tests.conftest import PYTHON, ROOT, eventually

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_edge_metrics_count_events_outcomes_lag_clients_and_process(
    bus: Bus, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory(live_interval_s=0.3)
    before = await scrape(edge.url + "/metrics")
    Recorder.fail_first, Recorder.always_fail = {"flaky"}, {"poison"}
    actor = Recorder(bus, settings)
    await actor.start()
    try:
        for i in range(5):
            await bus.publish(group(f"m{i}"))
        await bus.publish(group("flaky"))
        await bus.publish(group("poison"))
        await eventually(lambda: len(actor.done) == 6, timeout=20)

        async with aiohttp.ClientSession() as s, s.ws_connect(edge.url + "/api/ws/status") as ws:
            await ws.receive()

            async def settled() -> Samples | None:
                after = await scrape(edge.url + "/metrics")
                dead = value(after, "obs_dead_letters_total") - value(before, "obs_dead_letters_total")
                groups = value(after, "obs_dsa_groups", state="collecting")
                return after if dead >= 1 and groups >= 7 else None

            after = await eventually(settled, timeout=20)
            assert value(after, "obs_live_clients", kind="ws") == 1
    finally:
        await actor.stop()
        Recorder.fail_first, Recorder.always_fail = set(), set()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    subject = "dsa.group.updated"
    assert delta("obs_events_published_total", subject=subject) >= 7
    assert delta("obs_events_consumed_total", subject=subject, outcome="handled") == 6
    assert delta("obs_events_consumed_total", subject=subject, outcome="failed") >= 1 + 3  # flaky once, poison 3x
    assert delta("obs_redeliveries_total") >= 1 + 2
    assert delta("obs_dead_letters_total") == 1
    assert delta("obs_handler_duration_seconds_count", subject=subject) >= 10
    consumers = {dict(ls).get("consumer") for (n, ls) in after if n == "obs_consumer_pending"}
    assert any(c and "recorder" in c for c in consumers), consumers
    assert value(after, "obs_projection_lag_events") >= 0
    assert value(after, "process_resident_memory_bytes") > 10e6
    assert value(after, "process_cpu_seconds_total") > 0


async def test_actor_process_serves_metrics_on_its_own_port(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "alerter.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "actor",
        "alerter",
        "--nats-url",
        settings.nats_url,
        "--data-dir",
        str(settings.data_dir),
        "--metrics-port",
        str(port),
        cwd=ROOT,
        env=clean_env(),
        stdout=log,
        stderr=log,
    )
    log.close()
    try:

        async def scraped() -> Samples | None:
            with contextlib.suppress(aiohttp.ClientError):
                samples = await scrape(f"http://127.0.0.1:{port}/metrics")
                if any(n == "obs_consumer_pending" for n, _ in samples):
                    return samples
            return None

        samples = await eventually(scraped, timeout=60, interval=0.5)
        assert value(samples, "process_resident_memory_bytes") > 10e6
        assert any(
            dict(ls).get("consumer", "").startswith("alerter") for n, ls in samples if n == "obs_consumer_pending"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def test_grafana_dashboard_queries_only_metrics_we_export() -> None:
    """deploy/grafana/observatory.json parses, and every metric it queries is one we define."""
    import json
    import re

    from prometheus_client.metrics import MetricWrapperBase

    import telemetry

    ours = {m._name for m in vars(telemetry).values() if isinstance(m, MetricWrapperBase)}
    ours |= {"process_cpu_seconds", "process_resident_memory_bytes"}  # prometheus-client's process collector
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "observatory.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"\b(?:obs|process)_\w+", e)
    }
    assert used <= ours, used - ours
    assert {"obs_consumer_pending", "obs_handler_duration_seconds", "obs_seti_jobs", "obs_live_clients"} <= used
