"""What "ready" means for an edge: the checks behind ``/ready`` and ``/api/health``.

``/health`` stays a constant liveness probe (a process that answers HTTP is alive; restarting it
because NATS is down would not bring NATS back). Readiness is what a load balancer and an
operator need instead: can this edge serve true answers *now*? That takes four things:

* its NATS connection is up;
* the event stream exists, has a leader, and has the replicas the settings ask for, all current;
* its projection is caught up with the stream (a lagging edge answers from the past);
* every actor role has at least one live instance somewhere on the bus (from heartbeats).

The stream is asked at most every ``CACHE_S``, so a probe every second costs one JetStream
request per second per edge at most, whatever the number of prober.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import msgspec

from bus.connection import server_address
from bus.stream import STREAM

if TYPE_CHECKING:
    from web.app import Edge

CACHE_S = 1.0
STREAM_TIMEOUT_S = 2.0


class Component(msgspec.Struct):
    ok: bool
    detail: dict[str, Any] = {}


class Readiness(msgspec.Struct):
    status: str  # ready | not_ready
    components: dict[str, Component]


class HealthReport(msgspec.Struct):
    status: str  # healthy | degraded | unhealthy
    version: str
    components: dict[str, Component]


class HealthChecks:
    """The checks, with the stream's answer cached briefly (see the module docstring)."""

    def __init__(self, edge: Edge) -> None:
        self.edge = edge
        self._stream: tuple[float, Any, str] | None = None  # (asked at, info or None, error)

    async def stream_info(self) -> tuple[Any, str]:
        """The stream's info and '' (or None and why), asked at most once per ``CACHE_S``."""
        now = time.monotonic()
        if self._stream is not None and now - self._stream[0] < CACHE_S:
            return self._stream[1], self._stream[2]
        try:
            info, error = await asyncio.wait_for(self.edge.bus.js.stream_info(STREAM), STREAM_TIMEOUT_S), ""
        except Exception as exc:  # no leader, no stream, no connection: all mean "not ready"
            info, error = None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self._stream = (now, info, error)
        return info, error

    async def readiness(self) -> Readiness:
        edge, settings = self.edge, self.edge.settings
        components: dict[str, Component] = {}
        connected = edge.bus.nc.is_connected
        components["nats"] = Component(connected, {"connected": connected, "server": server_address(edge.bus.nc)})

        info, error = await self.stream_info() if connected else (None, "not connected")
        if info is None:
            components["stream"] = Component(False, {"error": error})
            components["projection"] = Component(False, {"applied_seq": edge.store.last_seq, "error": error})
        else:
            components["stream"] = stream_component(info, settings.stream_replicas)
            lag = max(0, int(info.state.last_seq) - edge.store.last_seq)
            components["projection"] = Component(
                lag <= settings.ready_max_lag,
                {"applied_seq": edge.store.last_seq, "stream_last_seq": int(info.state.last_seq), "lag": lag},
            )

        components["roles"] = roles_component(edge.live_instances(), settings.ready_roles_list())
        ok = all(c.ok for c in components.values())
        return Readiness("ready" if ok else "not_ready", components)

    async def health(self) -> HealthReport:
        ready = await self.readiness()
        c = ready.components
        if not (c["nats"].ok and c["stream"].ok):
            status = "unhealthy"  # nothing new can be stored or seen
        elif ready.status == "ready":
            status = "healthy"
        else:
            status = "degraded"  # serving, but behind or with a role missing
        return HealthReport(status, self.edge.api.version, ready.components)


def stream_component(info: Any, wanted_replicas: int) -> Component:
    """The stream is ready when it has a leader and as many current replicas as asked for."""
    replicas = int(info.config.num_replicas or 1)
    detail: dict[str, Any] = {"replicas": replicas, "messages": int(info.state.messages)}
    ok = replicas >= wanted_replicas
    cluster = info.cluster
    if cluster is not None:
        peers = cluster.replicas or []
        detail["leader"] = cluster.leader or ""
        detail["peers"] = [{"name": p.name, "current": bool(p.current), "offline": bool(p.offline)} for p in peers]
        current = 1 + sum(1 for p in peers if p.current and not p.offline) if cluster.leader else 0
        detail["current_replicas"] = current
        ok = ok and bool(cluster.leader) and current >= replicas
    if replicas < wanted_replicas:
        detail["problem"] = f"the stream has {replicas} replicas, the settings ask {wanted_replicas}"
    return Component(ok, detail)


def roles_component(live: dict[str, int], expected: list[str]) -> Component:
    """Every expected role has a live instance; ``live`` counts live instances by role."""
    missing = [role for role in expected if live.get(role, 0) == 0]
    detail: dict[str, Any] = {"live": dict(sorted(live.items()))}
    if missing:
        detail["missing"] = missing
    return Component(not missing, detail)
