"""Issue 7 stack: a real nats-server, the edge, the quota keeper (operator keys), and the variability,
mosaicker and alerter actors, with a local HTTP server standing in for Slack.

``FakeSlack`` records every webhook POST and answers from a script (``script`` is a list of
(status, headers) answers used in order, then 200 ``ok``), like Slack's incoming webhooks do.

``sky`` writes a small reference catalogue and synthetic restored FITS tiles (correlated noise,
point sources as the restoring beam; ``tests/actors/variability/synth.py``) five minutes apart,
one source of which has an ESE-like dip in its last epochs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.runtime import Actor
from astro.catalogue import Catalogue, Source, nvss_name, save_catalogue
from bus import Bus
from bus.server import EmbeddedServer
from schemas.dsa import ImageReady
from settings import Settings
from tests.actors.variability.synth import make_image, write_fits
from tests.seti.conftest import Stack, stack  # noqa: F401  (fixture re-exported)

RA0, DEC0 = 150.0, 40.0
MJD0 = 60238.5
TILE_DAYS = 5.0 / 1440.0
ESE_EPOCHS = (9, 10, 11)  # the dip: 50 mJy -> 15 mJy


@dataclass
class FakeSlack:
    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.received.append(payload)
        status, headers = self.script.pop(0) if self.script else (200, {})
        self.answers.append(status)
        self.arrived.set()
        body = "ok" if status == 200 else ("rate_limited" if status == 429 else "internal_error")
        return web.Response(status=status, text=body, headers=headers)

    def texts(self) -> list[str]:
        return [str(p.get("text", "")) for p in self.received]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/services/T000/B000/secret", fake.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/services/T000/B000/secret"
    yield fake
    await runner.cleanup()


@pytest.fixture
def settings(tmp_path: Path, nats_server: EmbeddedServer, fake_slack: FakeSlack) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        port=0,
        max_deliveries=3,
        ack_wait_s=30.0,
        heartbeat_s=0.5,
        live_interval_s=10.0,
        catalogue=tmp_path / "sky" / "catalogue.json",
        slack_webhook_url=fake_slack.url,
        slack_channel="#ese-alerts",
        slack_retry_base_s=0.05,
        slack_max_attempts=4,
        alert_summary_s=1.0,
        alert_stall_factor=4.0,
    )


@dataclass
class Sky:
    catalogue: Catalogue
    images: list[ImageReady]
    ese_source: str
    constant_sources: list[str]


def make_sky(directory: Path, n_tiles: int = 12, *, ese: bool = True, catalogue_path: Path | None = None) -> Sky:
    directory.mkdir(parents=True, exist_ok=True)
    offsets = [(0.0, 0.0), (0.08, 0.05), (-0.1, 0.07), (0.06, -0.1), (-0.07, -0.06), (0.12, 0.11)]
    fluxes = [0.05, 0.08, 0.04, 0.06, 0.05, 0.07]
    sources = [
        Source(name=nvss_name(RA0 + dra, DEC0 + ddec), ra_deg=RA0 + dra, dec_deg=DEC0 + ddec, flux_jy=f)
        for (dra, ddec), f in zip(offsets, fluxes, strict=True)
    ]
    cat = Catalogue(tuple(sources), dec_deg=DEC0)
    save_catalogue(cat, catalogue_path or directory / "catalogue.json")
    images = []
    for k in range(n_tiles):
        mjd = MJD0 + k * TILE_DAYS
        amps = [
            (s.ra_deg, s.dec_deg, s.flux_jy * (0.3 if ese and i == 0 and k in ESE_EPOCHS else 1.0))
            for i, s in enumerate(sources)
        ]
        img = make_image(ra0=RA0, dec0=DEC0, shape=(256, 256), sigma=1e-3, sources=amps, seed=100 + k)
        path = write_fits(img, directory / f"tile_{k:02d}.fits", mjd=mjd)
        images.append(
            ImageReady(
                path=str(path),
                group_id=f"g{k:02d}",
                mjd=mjd,
                noise_jy=1e-3,
                bmaj_deg=img.beam.bmaj_deg,
                bmin_deg=img.beam.bmin_deg,
                bpa_deg=img.beam.bpa_deg,
                n_sources_5sigma=len(sources),
                ra_deg=RA0,
                dec_deg=DEC0,
                correlation_id=f"g{k:02d}",
            )
        )
    return Sky(cat, images, sources[0].name, [s.name for s in sources[1:]])


@pytest.fixture
def sky(settings: Settings) -> Sky:
    assert settings.catalogue is not None
    return make_sky(settings.catalogue.parent)


@pytest.fixture
async def actors(settings: Settings, bus: Bus) -> AsyncIterator[Callable[..., Awaitable[Actor]]]:
    started: list[Actor] = []

    async def start(cls: type[Actor], **overrides: Any) -> Actor:
        actor = cls(bus, replace(settings, **overrides) if overrides else settings)
        await actor.start()
        started.append(actor)
        return actor

    yield start
    for actor in reversed(started):
        await actor.stop()
