"""The edge: an aiohttp application that projects the event stream into REST, WebSocket and SSE.

It never asks an actor anything to answer a read: every GET is served from its own projection
(SQLite under the data dir) or from bytes cached when that projection last changed. Commands
(admissions, key creation) go to actors by request/reply, and facts come back through the stream.

Lifecycle: open the projection, follow the stream from the last applied sequence, start serving;
on stop, close every live socket with a proper close frame, then the HTTP server, then the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

import logs
import telemetry
from bus import Bus
from bus.replay import StoredMessage, replay
from bus.stream import STREAM
from schemas.ops import ActorHeartbeat
from settings import Settings
from web import cors
from web.errors import EnvelopeAppRunner, error_middleware
from web.health import HealthChecks
from web.live import LiveHub
from web.metrics import system_metrics
from web.projections.dsa import pipeline_status
from web.projections.store import ProjectionStore
from web.routes import core
from web.routing import Api
from web.sessions import SessionStore
from web.state import CAUGHT_UP, SESSIONS, SETTINGS, STORE

log = logs.get("web.app")

VERSION = "0.3.0"
COALESCE_S = 0.015
EDGE: web.AppKey[Edge] = web.AppKey("edge")
_enc = msgspec.json.Encoder()


class AccessLogger(AbstractAccessLogger):
    """Path only, never the query string (it may carry a URL signature); errors at info."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        level = "info" if response.status >= 400 else "debug"
        getattr(log, level)(
            "http", method=request.method, path=request.path, status=response.status, ms=round(time * 1000, 2)
        )

    @property
    def enabled(self) -> bool:
        return True


Snapshot = Callable[[], Awaitable[Any]]


class Edge:
    def __init__(self, settings: Settings, bus: Bus) -> None:
        self.settings = settings
        self.bus = bus
        self.store = ProjectionStore(settings.projection_db)
        self.sessions = SessionStore(settings.projection_db.with_name(f"{settings.edge_name}-sessions.sqlite"))
        self.hub = LiveHub()
        self.api = Api("Observatory platform", VERSION)
        self.heartbeats: dict[str, tuple[ActorHeartbeat, float]] = {}
        self.health = HealthChecks(self)
        for kind in ("ws", "sse"):
            telemetry.LIVE_CLIENTS.labels(kind).set_function(
                lambda kind=kind: sum(1 for c in self.hub.clients if c.kind == kind)  # type: ignore[misc]
            )
        self.status_bytes = b"{}"
        self.metrics: dict[str, Any] = {}
        #: live-view snapshots by topic; issues add theirs (ese candidates, jobs, ...)
        self.snapshots: dict[str, Snapshot] = {"ese": self._empty_ese}
        self.topic_messages: dict[str, str] = {"ese": "ese_update"}
        self._snapshot_cache: dict[str, Any] = {}
        self._dirty = asyncio.Event()
        self._dirty_topics: set[str] = set()
        self._tasks: list[asyncio.Task[Any]] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._applied = asyncio.Condition()
        self.runner: web.AppRunner | None = None  # an EnvelopeAppRunner
        self.url = ""
        #: the projection has applied everything the stream held when the edge started (and
        #: follows live since): until then authentication answers 503, never from stale rows
        self.caught_up = asyncio.Event()

    # -- projection ----------------------------------------------------------------------------
    async def _empty_ese(self) -> Any:
        return {"candidates": [], "total": 0}

    async def _check_stream_reset(self) -> None:
        info = await self.bus.js.stream_info(STREAM)
        if info.state.last_seq < self.store.last_seq:
            log.warning(
                "stream is behind the projection (new stream?); rebuilding",
                stream_last=info.state.last_seq,
                projection_last=self.store.last_seq,
            )
            await self.store.close()
            self.store.path.unlink(missing_ok=True)
            await self.store.open()
        if info.state.last_seq <= self.store.last_seq:
            self.caught_up.set()  # nothing to replay

    async def _follow(self, queue: asyncio.Queue[StoredMessage]) -> None:
        while True:
            try:
                # aclosing: on cancel the generator's finally runs now and unsubscribes, instead of
                # leaving a subscription whose callback blocks the connection's drain.
                async with contextlib.aclosing(
                    replay(self.bus.js, ">", seq=self.store.last_seq + 1, follow=True)
                ) as stored_messages:
                    async for stored in stored_messages:
                        await queue.put(stored)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projection follow interrupted; resuming", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)

    async def _apply_loop(self, queue: asyncio.Queue[StoredMessage]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < 500 and not queue.empty():
                batch.append(queue.get_nowait())
            changed = await self.store.apply(batch)
            if batch[-1].pending == 0 and queue.empty():
                self.caught_up.set()
            async with self._applied:
                self._applied.notify_all()
            if changed:
                self._dirty_topics |= changed
                self._dirty.set()

    async def wait_applied(self, seq: int, timeout: float = 10.0) -> None:
        """Wait until the projection has applied stream sequence ``seq`` (read-your-writes)."""
        async with self._applied:
            await asyncio.wait_for(self._applied.wait_for(lambda: self.store.last_seq >= seq), timeout)

    def mark_dirty(self, topic: str) -> None:
        self._dirty_topics.add(topic)
        self._dirty.set()

    async def refresh_status(self) -> dict[str, Any]:
        status = await pipeline_status(self.store)
        self.status_bytes = _enc.encode(status)
        return status

    async def snapshot(self, topic: str, *, fresh: bool = False) -> Any:
        """A topic's live snapshot, recomputed only when its projection changed (``fresh``)."""
        if fresh or topic not in self._snapshot_cache:
            self._snapshot_cache[topic] = await self.snapshots[topic]()
        return self._snapshot_cache[topic]

    async def status_message_data(self, status: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "pipeline_status": status if status is not None else msgspec.json.decode(self.status_bytes),
            "metrics": self.metrics,
            "ese_candidates": await self.snapshot("ese"),
        }

    def cursor(self) -> dict[str, Any]:
        return {"seq": self.store.last_seq, "event_time": self.store.last_event_time}

    async def _broadcaster(self) -> None:
        """Coalesce projection changes into live messages; at least one status every interval."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self.settings.live_interval_s)
            # A short coalescing window: a burst of events becomes one message per client, which
            # bounds the fan-out cost at (clients / window) whatever the event rate.
            await asyncio.sleep(COALESCE_S)
            self._dirty.clear()
            topics, self._dirty_topics = self._dirty_topics, set()
            try:
                for topic in topics & self.snapshots.keys():
                    await self.snapshot(topic, fresh=True)
                if not topics or topics & {"status", *self.snapshots}:  # the periodic one, or a change it shows
                    status = await self.refresh_status()
                    self.hub.broadcast("status_update", await self.status_message_data(status), cursor=self.cursor())
                for topic in topics:
                    if topic in self.topic_messages and topic in self.snapshots:
                        self.hub.broadcast(self.topic_messages[topic], await self.snapshot(topic), cursor=self.cursor())
            except Exception:
                log.exception("broadcast failed")

    async def _metrics_loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a metric is never worth stopping the live view
                await self._refresh_gauges()
            self.metrics = await asyncio.to_thread(system_metrics, self.settings.data_dir)
            self.hub.broadcast("metrics_update", self.metrics)
            await asyncio.sleep(self.settings.live_interval_s)

    async def _refresh_gauges(self) -> None:
        """Prometheus gauges read from the projection (jobs and groups by state, lag)."""
        for state, n in await self.store.fetchall("SELECT status, COUNT(*) FROM seti_jobs GROUP BY status"):
            telemetry.SETI_JOBS.labels(state).set(n)
        for state, n in await self.store.fetchall("SELECT state, COUNT(*) FROM groups GROUP BY state"):
            telemetry.DSA_GROUPS.labels(state).set(n)
        info, _ = await self.health.stream_info()  # shared with /ready's cache: one request for both
        if info is not None:
            telemetry.PROJECTION_LAG.set(max(0, int(info.state.last_seq) - self.store.last_seq))

    async def _live_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            msg = self.hub.make("heartbeat", {"ts": time.time()})
            for client in list(self.hub.clients):
                self.hub._offer(client, msg)

    async def snapshot_messages(self) -> list[Any]:
        msgs = [self.hub.make("status_update", await self.status_message_data(), cursor=self.cursor())]
        if self.metrics:
            msgs.append(self.hub.make("metrics_update", self.metrics))
        for topic, message_type in self.topic_messages.items():
            msgs.append(self.hub.make(message_type, await self.snapshot(topic), cursor=self.cursor()))
        return msgs

    # -- heartbeats of actors ------------------------------------------------------------------
    async def _on_heartbeat(self, msg: Any) -> None:
        try:
            hb = msgspec.json.decode(msg.data, type=ActorHeartbeat)
        except msgspec.MsgspecError:
            return
        self.heartbeats[hb.instance] = (hb, time.time())

    def actor_heartbeats(self) -> list[tuple[ActorHeartbeat, float]]:
        """Instances heard from within the grace period; older ones are forgotten.

        An instance silent for 3 heartbeats is shown as not alive (it may be busy or restarting);
        one silent past ``actor_grace_s`` is gone — a killed process, or one on a host that left —
        and listing it forever made /api/actors grow with every restart.
        """
        cutoff = time.time() - self.settings.actor_grace_s
        for instance in [i for i, (_, seen) in self.heartbeats.items() if seen < cutoff]:
            del self.heartbeats[instance]
        return sorted(self.heartbeats.values(), key=lambda v: (v[0].role, v[0].instance))

    def live_instances(self) -> dict[str, int]:
        """Live instances by role: heard from within 3 heartbeat intervals."""
        alive_after = time.time() - 3 * self.settings.heartbeat_s
        counts: dict[str, int] = {}
        for hb, seen in self.actor_heartbeats():
            if seen >= alive_after:
                counts[hb.role] = counts.get(hb.role, 0) + 1
        return counts

    # -- lifecycle -----------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
        app[EDGE] = self
        app[STORE] = self.store
        app[CAUGHT_UP] = self.caught_up
        app[SETTINGS] = self.settings
        app[SESSIONS] = self.sessions
        core.register(self)
        for extra in self.route_modules():
            extra.register(self)
        self.api.mount(app)
        cors.enable(app, cors.origins_of(self.settings.cors_origins))
        app.on_shutdown.append(self._close_sockets)
        return app

    def route_modules(self) -> list[Any]:
        """Route modules beyond the core, one per seed section (see ``web/routes/__init__.py``)."""
        import importlib

        from web.routes import ROUTE_MODULES

        return [importlib.import_module(name) for name in ROUTE_MODULES]

    def track_socket(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def untrack_socket(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)

    async def _close_sockets(self, _app: web.Application) -> None:
        await self.hub.close_all()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")

    async def start(self, host: str | None = None, port: int | None = None) -> str:
        await self.store.open()
        await self.sessions.open()
        await self._check_stream_reset()
        await self.refresh_status()
        self.metrics = await asyncio.to_thread(system_metrics, self.settings.data_dir)
        queue: asyncio.Queue[StoredMessage] = asyncio.Queue(maxsize=5000)
        self._tasks = [
            asyncio.create_task(self._follow(queue), name="edge:follow"),
            asyncio.create_task(self._apply_loop(queue), name="edge:apply"),
            asyncio.create_task(self._broadcaster(), name="edge:broadcast"),
            asyncio.create_task(self._metrics_loop(), name="edge:metrics"),
            asyncio.create_task(self._live_heartbeat(), name="edge:live-heartbeat"),
        ]
        self._hb_sub = await self.bus.nc.subscribe(ActorHeartbeat.subject(), cb=self._on_heartbeat)
        app = self.build_app()
        self.runner = EnvelopeAppRunner(app, access_log_class=AccessLogger, handle_signals=False, shutdown_timeout=3.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host or self.settings.host, self.settings.port if port is None else port)
        await site.start()
        server: Any = site._server
        sockets = server.sockets if server is not None else []
        bound = sockets[0].getsockname() if sockets else (host, port)
        self.url = f"http://{bound[0]}:{bound[1]}"
        with contextlib.suppress(OSError):
            Path(self.settings.edge_url_file).parent.mkdir(parents=True, exist_ok=True)
            self.settings.edge_url_file.write_text(self.url)
        log.info("edge listening", url=self.url, projection_seq=self.store.last_seq)
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()  # on_shutdown closes sockets with 1001 first
        for task in self._tasks:
            task.cancel()
        # Bounded: a task inside a nats-py call can take seconds to see its cancellation (seen with
        # the ordered consumer), and shutdown has a 10 s budget. Closing the connection ends it.
        _, slow = await asyncio.wait(self._tasks, timeout=1.0)
        if slow:
            log.debug("edge tasks still finishing at stop", tasks=[t.get_name() for t in slow])
        with contextlib.suppress(Exception):
            await self._hb_sub.unsubscribe()
        await self.store.close()
        await self.sessions.close()
        with contextlib.suppress(OSError):
            if self.settings.edge_url_file.read_text() == self.url:
                self.settings.edge_url_file.unlink()
        log.info("edge stopped")
