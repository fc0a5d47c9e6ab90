"""Prometheus metrics: what every process of the platform counts, and how it is scraped.

One module beside ``logs.py`` because metrics, like logs, are a property of a *process*: the
all-in-one process serves them on the edge's ``/metrics``; an actor started alone
(``run.py actor NAME``) serves the same registry on ``--metrics-port``. The names are
``obs_*`` plus prometheus-client's own ``process_*`` (CPU seconds, resident memory) and
``python_gc_*``.

Labels are bounded on purpose: ``subject`` is an event type (a fixed set of Structs), ``consumer``
is a role's durable name, ``state`` a job state. Never a job id, user or path.
"""

from __future__ import annotations

import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

import logs

log = logs.get("telemetry")

# -- the bus: every process ------------------------------------------------------------------
EVENTS_PUBLISHED = Counter("obs_events_published_total", "Events stored in the stream by this process", ["subject"])
EVENTS_CONSUMED = Counter(
    "obs_events_consumed_total",
    "Deliveries handled by this process's consumers, by outcome (handled, failed, dead_lettered)",
    ["consumer", "subject", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "obs_handler_duration_seconds",
    "Time a handler took for one delivery",
    ["consumer", "subject"],
    buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
REDELIVERIES = Counter(
    "obs_redeliveries_total", "Deliveries that were not the first (a crash, a nak or an ack_wait)", ["consumer"]
)
DEAD_LETTERS = Counter("obs_dead_letters_total", "Events dead-lettered by this process", ["consumer"])
CONSUMER_PENDING = Gauge(
    "obs_consumer_pending", "Events in the stream not yet delivered to this durable consumer (lag)", ["consumer"]
)
CONSUMER_ACK_PENDING = Gauge(
    "obs_consumer_ack_pending", "Events delivered to this durable consumer and not yet acknowledged", ["consumer"]
)
CONSUMER_REDELIVERED = Gauge(
    "obs_consumer_redelivered", "Events of this consumer currently being redelivered (server's count)", ["consumer"]
)

# -- the edge ------------------------------------------------------------------------------
LIVE_CLIENTS = Gauge("obs_live_clients", "Connected live-view clients", ["kind"])
PROJECTION_LAG = Gauge("obs_projection_lag_events", "Stream events this edge's projection has not applied yet")
SETI_JOBS = Gauge("obs_seti_jobs", "SETI jobs by state, as this edge's projection has them", ["state"])
DSA_GROUPS = Gauge("obs_dsa_groups", "Observation groups by state, as this edge's projection has them", ["state"])
UPLOAD_BYTES = Counter("obs_upload_bytes_total", "Bytes of SETI uploads received by this edge (local storage)")


def exposition() -> bytes:
    """The whole registry in Prometheus text format."""
    return generate_latest(REGISTRY)


CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0]


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=exposition(), content_type=CONTENT_TYPE, charset="utf-8")


class MetricsServer:
    """``/metrics`` alone on a port, for a process that runs actors without the edge."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/metrics", metrics_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{bound[0]}:{bound[1]}/metrics"
        log.info("metrics served", url=self.url)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None
