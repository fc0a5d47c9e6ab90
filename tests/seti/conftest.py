"""The running SETI stack for tests: a real nats-server, the quota keeper actor, and the edge.

``stack.user(...)`` creates a user exactly as ``run.py users create`` does (a request to the quota
keeper), and waits until the edge has applied it. ``SearcherStandIn`` is a test stand-in for the
de-Doppler searcher actor (not part of this issue): for every submitted job it publishes progress,
writes export files to storage and publishes the completion, as the searcher will.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import numpy as np
import pytest
from multidict import CIMultiDict

from actors.quota_keeper import commands, keys
from actors.quota_keeper.actor import QuotaKeeperActor
from actors.runtime import Actor
from bus import Bus
from bus.request import request
from schemas.base import Event
from schemas.seti import ExportsWritten, JobCompleted, JobProgressed, JobSubmitted
from settings import Settings
from storage import ObjectStorage, open_storage


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)


@dataclass
class User:
    user_id: str
    api_key: str
    key_id: str
    email: str


class Stack:
    def __init__(self, edge: Any, keeper: QuotaKeeperActor, bus: Bus, settings: Settings) -> None:
        self.edge = edge
        self.keeper = keeper
        self.bus = bus
        self.settings = settings
        self.url: str = edge.url
        self.session = aiohttp.ClientSession()
        self._n = 0

    @property
    def storage(self) -> ObjectStorage:
        return self.keeper.storage

    async def user(self, tier: str = "researcher", role: str = "user", email: str = "") -> User:
        self._n += 1
        email = email or f"user{self._n}-{time.monotonic_ns()}@example.org"
        api_key, key_id = keys.generate()
        cmd = commands.CreateUser(email=email, tier=tier, role=role, key_id=key_id, key_hash=keys.key_hash(api_key))
        reply = await request(self.bus.nc, commands.subject("create_user"), cmd)
        assert reply.ok, reply
        await self.edge.wait_applied(reply.data["seq"])
        return User(reply.data["user_id"], api_key, key_id, email)

    async def call(
        self,
        method: str,
        path: str,
        user: User | str | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if user is not None:
            hdrs["x-api-key"] = user if isinstance(user, str) else user.api_key
        url = path if path.startswith("http") else (base or self.url) + path
        kwargs: dict[str, Any] = {"headers": hdrs}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, url, **kwargs) as r:
            raw = await r.read()
            ctype = r.headers.get("Content-Type", "")
            body: Any = json.loads(raw) if "json" in ctype and raw else raw
            return Reply(r.status, body, CIMultiDict(r.headers))

    async def upload(self, user: User, name: str = "obs.fil", payload: bytes | None = None) -> str:
        """Upload a small file with a single PUT; return its file_key."""
        payload = payload if payload is not None else filterbank_bytes(nchans=256, ntime=16)
        r = await self.call("POST", "/upload-url", user, {"filename": name, "file_size": len(payload)})
        assert r.status == 200, r.body
        put = await self.call("PUT", r.body["upload_url"], data=payload)
        assert put.status == 200, put.body
        return str(r.body["file_key"])

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def stack(settings: Settings, bus: Bus, edge_factory: Callable[..., Awaitable[Any]]) -> AsyncIterator[Stack]:
    keeper = QuotaKeeperActor(bus, settings)
    await keeper.start()
    edge = await edge_factory()
    s = Stack(edge, keeper, bus, settings)
    try:
        yield s
    finally:
        await s.close()
        await keeper.stop()


def sigproc_header(**values: Any) -> bytes:
    def s(text: str) -> bytes:
        return struct.pack("<i", len(text)) + text.encode()

    out = s("HEADER_START")
    for k, v in values.items():
        if isinstance(v, str):
            out += s(k) + s(v)
        elif isinstance(v, float):
            out += s(k) + struct.pack("<d", v)
        else:
            out += s(k) + struct.pack("<i", v)
    return out + s("HEADER_END")


def _header(nchans: int) -> dict[str, Any]:
    return {
        "telescope_id": 6,
        "machine_id": 10,
        "data_type": 1,
        "source_name": "Voyager1",
        "rawdatafile": "test.fil",
        "fch1": 8421.386717353016,
        "foff": -2.7939677238464355e-06,
        "nchans": nchans,
        "nbits": 32,
        "nifs": 1,
        "tstart": 57650.78209490741,
        "tsamp": 18.253611008,
        "src_raj": 171010.0,
        "src_dej": 120000.0,
        "az_start": 0.0,
        "za_start": 0.0,
        "barycentric": 0,
        "pulsarcentric": 0,
    }


def filterbank_bytes(nchans: int = 256, ntime: int = 16, seed: int = 1) -> bytes:
    """A real SIGPROC filterbank (32-bit float, one IF) of noise: header then (ntime, nchans) samples."""
    data = np.random.default_rng(seed).normal(100.0, 1.0, (ntime, nchans)).astype("<f4")
    return sigproc_header(**_header(nchans)) + data.tobytes()


def write_filterbank(path: Path, size_bytes: int) -> Path:
    """A real SIGPROC filterbank of about ``size_bytes`` (written in slices, never held whole)."""
    nchans = 1 << 18  # 1 MiB per spectrum at 32 bits
    ntime = max(1, size_bytes // (nchans * 4))
    rng = np.random.default_rng(7)
    with open(path, "wb") as fh:
        fh.write(sigproc_header(**_header(nchans)))
        for _ in range(ntime):
            fh.write(rng.normal(100.0, 1.0, nchans).astype("<f4").tobytes())
    return path


RESULTS = {
    "raw_hits": 543,
    "filtered_hits": 163,
    "candidates": 20,
    "processing_time_seconds": 28.4,
    "top_candidates": [
        {
            "frequency_hz": 1420405751.68,
            "drift_rate": 0.15,
            "snr": 14.2,
            "classification": "NARROWBAND_DRIFTING",
            "interestingness": 0.82,
            "rfi_source": "",
            "source": "matched_filter",
        }
    ],
}

CSV = (
    "source_name,frequency_hz,drift_rate,snr,classification,interestingness\n"
    "Voyager1,1420405751.68,0.15,14.2,NARROWBAND_DRIFTING,0.82\n"
)


async def write_exports(storage: ObjectStorage, job: JobSubmitted) -> dict[str, str]:
    prefix = f"results/{job.user_id}/{job.job_id}"
    files = {
        "json": ("results.json", json.dumps(RESULTS).encode()),
        "csv": ("signals.csv", CSV.encode()),
        "fits": ("catalog.fits", b"SIMPLE  =                    T" + b" " * 2850),
        "waterfall": ("waterfall.png", b"\x89PNG\r\n\x1a\nfake-waterfall"),
    }
    out = {}
    for fmt, (name, data) in files.items():
        await storage.put_bytes(f"{prefix}/{name}", data)
        out[fmt] = f"{prefix}/{name}"
    return out


class SearcherStandIn(Actor):
    """TEST STAND-IN for the de-Doppler searcher: completes every submitted job with canned results."""

    role = "test_searcher_standin"
    consumes: ClassVar[tuple[type[Event], ...]] = (JobSubmitted,)
    delay_s: ClassVar[float] = 0.0

    async def setup(self) -> None:
        self.storage = open_storage(self.settings)

    async def handle(self, event: Event) -> None:
        assert isinstance(event, JobSubmitted)
        common = {"job_id": event.job_id, "user_id": event.user_id, "correlation_id": event.job_id}
        await self.publish(JobProgressed(percent=50.0, stage="dedoppler", **common))
        await asyncio.sleep(self.delay_s)
        keys_ = await write_exports(self.storage, event)
        await self.publish(JobCompleted(completed_at=int(time.time()), results=RESULTS, **common))
        await self.publish(ExportsWritten(keys=keys_, **common))
