"""The ingest stack for the watcher tests: a real nats-server, the edge, the quota keeper (operator
keys) and the watcher actor, with tiny simulated groups (4 antennas, 4 channels per subband).

Import the fixtures into a test module with
``ingest = ingest_fixtures.ingest`` (and ``sim_groups``).
(``tests/dsa/conftest.py`` belongs to the science tests; these are kept apart on purpose.)
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from actors.quota_keeper.actor import QuotaKeeperActor
from actors.watcher.actor import WatcherActor
from bus import Bus
from bus.replay import replay
from bus.server import EmbeddedServer
from schemas.base import Event
from schemas.events import decode
from settings import Settings
from sim.observation import SimGroup, simulate
from tests.conftest import eventually
from tests.seti.conftest import Reply, Stack, User


@pytest.fixture(scope="session")
def sim_groups(tmp_path_factory: pytest.TempPathFactory) -> list[SimGroup]:
    """Three consecutive tiny groups at dec +54; the last one holds a calibrator transit."""
    out = tmp_path_factory.mktemp("sim")
    res = simulate(out, 3, "2025-10-24T14:00:00", 54.0, n_ants=4, n_channels=4, seed=5, calibrator=True)
    return list(res.groups)


class IngestStack(Stack):
    def __init__(self, edge: Any, keeper: QuotaKeeperActor, bus: Bus, settings: Settings) -> None:
        super().__init__(edge, keeper, bus, settings)
        self.watchers: list[WatcherActor] = []
        self._operator: User | None = None

    @property
    def incoming(self) -> Path:
        return self.settings.incoming

    async def start_watcher(self, **overrides: Any) -> WatcherActor:
        w = WatcherActor(self.bus, replace(self.settings, **overrides) if overrides else self.settings)
        await w.start()
        self.watchers.append(w)
        return w

    async def stop_watcher(self, w: WatcherActor) -> None:
        await w.stop()
        self.watchers.remove(w)

    async def operator(self) -> User:
        if self._operator is None:
            self._operator = await self.user(role="operator")
        return self._operator

    async def post(self, path: str, body: Any = None, user: User | str | None = None) -> Reply:
        return await self.call("POST", path, user, json_body=body if body is not None else {})

    async def get(self, path: str) -> Reply:
        return await self.call("GET", path)

    def drop(self, files: list[str] | tuple[str, ...], directory: Path | None = None) -> list[Path]:
        """Copy subband files into the incoming directory (mtime now, as a fresh arrival)."""
        dest = directory or self.incoming
        dest.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copy(f, dest / Path(f).name)) for f in files]

    async def events(self, type_: type[Event], pred: Callable[[Any], bool] = lambda e: True) -> list[Any]:
        """Every stored event of this type (in stream order) matching ``pred``."""
        out = []
        async with contextlib.aclosing(replay(self.bus.js, type_.subject())) as msgs:
            async for m in msgs:
                e = decode(m.data)
                if isinstance(e, type_) and pred(e):
                    out.append(e)
        return out

    async def groups(self) -> dict[str, dict[str, Any]]:
        rows = await self.edge.store.fetchall(
            "SELECT group_id, state, subbands_present, expected_subbands, has_calibrator, reason FROM groups"
        )
        return {r[0]: dict(r) for r in rows}

    async def group_of(self, sim: SimGroup) -> dict[str, Any] | None:
        """The watcher's group for a simulated group (its id is the first file seen, not the sim's)."""
        rows = await self.edge.store.fetchall(
            "SELECT group_id, state, subbands_present, has_calibrator, reason FROM groups"
        )
        for r in rows:
            if abs(_unix(r[0]) - _unix(sim.group_id)) <= 60:
                return dict(r)
        return None

    async def wait_group(self, sim: SimGroup, state: str, timeout: float = 90.0) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            g = await self.group_of(sim)
            return g if g is not None and g["state"] == state else None

        try:
            result: dict[str, Any] = await eventually(check, timeout=timeout, interval=0.1)
        except AssertionError as exc:
            info = await self.bus.js.stream_info("EVENTS")
            raise AssertionError(
                f"{exc}; stream last_seq {info.state.last_seq}, edge projection at {self.edge.store.last_seq}, "
                f"edge groups {await self.groups()}, watchers "
                f"{[{k: g.state.value for k, g in w.state.groups.items()} for w in self.watchers]}"
            ) from None
        return result


def _unix(ts: str) -> float:
    from datetime import UTC, datetime

    return datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def ingest_settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_url,
        port=0,
        max_deliveries=3,
        ack_wait_s=5.0,
        heartbeat_s=0.5,
        live_interval_s=10.0,
        incoming_dir=tmp_path / "incoming",
        output_dir=tmp_path / "ms",
        watch_poll_s=0.3,
        watch_settle_s=60.0,  # tests rely on "stable across two scans"
        incomplete_alert_s=1.0,
        group_timeout_s=600.0,
    )


@pytest.fixture
async def ingest(tmp_path: Path, nats_server: EmbeddedServer) -> AsyncIterator[IngestStack]:
    """The stack without a watcher: tests start (and stop) watchers with ``start_watcher``."""
    from web.app import Edge

    settings = ingest_settings(tmp_path, nats_server.url)
    bus = await Bus.connect(settings.nats_url, name="test-ingest")
    keeper = QuotaKeeperActor(bus, settings)
    await keeper.start()
    edge_bus = await Bus.connect(settings.nats_url, name="test-edge")
    edge = Edge(settings, edge_bus)
    await edge.start(host="127.0.0.1", port=0)
    stack = IngestStack(edge, keeper, bus, settings)
    try:
        yield stack
    finally:
        for w in reversed(stack.watchers):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.stop(), 10)
        await stack.close()
        await keeper.stop()
        with contextlib.suppress(Exception):
            await edge.stop()
        await edge_bus.close()
        await bus.close()
