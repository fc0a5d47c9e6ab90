"""The imaging stack: a real nats-server, the edge, the quota keeper (operator keys), the watcher,
the calibrator and the imager, with small simulated groups dropped into the incoming directory.

Import the fixtures into a test module with ``imaging = imaging_fixtures.imaging`` (and
``imaging_sim``). ``tests/dsa/conftest.py`` belongs to the science tests; this builds on the
ingest stack of ``tests/dsa/ingest_fixtures.py``.

Two tiles at the declination of 3C286, one instrument (the simulator's gains are a function of
time, so the two share one drifting instrument): the calibrator group, centred on the transit of
3C286, and the target group right after it, whose sky is a few injected sources near its phase
centre (0.03-0.6 Jy within 0.15 deg, all inside the small test image) and the calibrators in its
beam - 3C286 itself, 1 deg west and ~9 Jy apparent, outside the image, as in the real sky. 16
antennas (outriggers included, a ~12" x 100" beam), 8 channels per subband.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from astropy import units as u
from astropy.time import Time

from actors.calibrator.actor import CalibratorActor
from actors.imager.actor import ImagerActor
from actors.runtime import Actor
from astro.catalogue import Catalogue, Source, nvss_name
from astro.coordinates import tile_phase_center
from astro.instrument import TILE_DURATION_S
from bus.server import EmbeddedServer
from sim.observation import SimGroup, simulate
from tests.dsa import ingest_fixtures
from tests.dsa.ingest_fixtures import IngestStack

N_ANTS = 16
N_CHANNELS = 8
SEED = 11
IMAGING = {
    "image_size": 512,
    "image_cell_arcsec": 4.0,
    "image_niter": 5000,
    "image_robust": 0.0,
    "image_max_major": 20,
}
#: injected target sources: (east offset deg, north offset deg, 1.4 GHz flux Jy)
TARGET_SOURCES = ((0.05, 0.08, 0.6), (-0.12, 0.03, 0.4), (0.02, -0.10, 0.3), (0.10, -0.05, 0.05), (-0.06, -0.09, 0.03))


@dataclass(frozen=True)
class ImagingSim:
    calibrator: SimGroup
    target: SimGroup
    catalogue: Catalogue  # the target's sky


@pytest.fixture(scope="session")
def imaging_sim(tmp_path_factory: pytest.TempPathFactory) -> ImagingSim:
    out = tmp_path_factory.mktemp("imaging_sim")
    cal = simulate(
        out / "cal",
        1,
        "2025-10-24T00:00:00",
        None,
        n_ants=N_ANTS,
        n_channels=N_CHANNELS,
        seed=SEED,
        calibrator="3C286",
        jitter_s=3,
        catalogue=Catalogue(()),
        run_check=False,
    ).groups[0]
    start = Time(cal.start_isot) + TILE_DURATION_S * u.s
    ra0, dec0 = tile_phase_center(start + (TILE_DURATION_S / 2) * u.s, cal.dec_deg)
    sources = []
    for de, dn, f in TARGET_SOURCES:
        ra, dec = ra0 + de / math.cos(math.radians(dec0)), dec0 + dn
        sources.append(Source(nvss_name(ra, dec), ra, dec, f, -0.7))
    sky = Catalogue(tuple(sources), dec_deg=dec0)
    target = simulate(
        out / "target",
        1,
        start,
        cal.dec_deg,
        n_ants=N_ANTS,
        n_channels=N_CHANNELS,
        seed=SEED,
        jitter_s=3,
        catalogue=sky,
        include_calibrators=True,
        run_check=False,
    ).groups[0]
    return ImagingSim(cal, target, sky)


class ImagingStack(IngestStack):
    actors: list[Actor]

    async def start_pipeline(self) -> None:
        """The watcher, the calibrator and the imager."""
        await self.start_watcher()
        for cls in (CalibratorActor, ImagerActor):
            a = cls(self.bus, self.settings)
            await a.start()
            self.actors.append(a)


@pytest.fixture
async def imaging(tmp_path: Path, nats_server: EmbeddedServer) -> AsyncIterator[ImagingStack]:
    from actors.quota_keeper.actor import QuotaKeeperActor
    from bus import Bus
    from web.app import Edge

    base = ingest_fixtures.ingest_settings(tmp_path, nats_server.url)
    settings = replace(base, ack_wait_s=30.0, **IMAGING)  # type: ignore[arg-type]
    bus = await Bus.connect(settings.nats_url, name="test-imaging")
    keeper = QuotaKeeperActor(bus, settings)
    await keeper.start()
    edge_bus = await Bus.connect(settings.nats_url, name="test-edge")
    edge = Edge(settings, edge_bus)
    await edge.start(host="127.0.0.1", port=0)
    stack = ImagingStack(edge, keeper, bus, settings)
    stack.actors = []
    try:
        yield stack
    finally:
        for a in reversed(stack.actors):
            await a.stop()
        for w in list(stack.watchers):
            await stack.stop_watcher(w)
        await stack.close()
        await edge.stop()
        await edge_bus.close()
        await keeper.stop()
        await bus.close()


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


@dataclass(frozen=True)
class Products:
    """Converted MSs, the calibrator's set and the target's image, made without the bus."""

    root: Path
    cal_ms: Path
    target_ms: Path
    calset: Path
    image: Path


@pytest.fixture(scope="session")
def products(imaging_sim: ImagingSim, tmp_path_factory: pytest.TempPathFactory) -> Products:
    from actors.calibrator import work as calwork
    from actors.imager import work as imwork
    from actors.imager.pipeline import ImagingParams
    from actors.watcher.convert import convert_group

    root = tmp_path_factory.mktemp("products")
    cal_ms = convert_group(imaging_sim.calibrator.files, root / "ms").path
    target_ms = convert_group(imaging_sim.target.files, root / "ms").path
    solved = calwork.solve_group(str(cal_ms), str(root / "calsets"), cal_ms.stem)
    assert solved is not None
    params = asdict(ImagingParams(imsize=256, cellsize_arcsec=8.0, niter=500, max_major=5))
    image = imwork.image_ms(
        str(target_ms), [solved["path"]], imwork.image_path(root / "images", target_ms.stem), params
    )
    return Products(root, cal_ms, target_ms, Path(solved["path"]), Path(image["path"]))


def install(products: Products, settings: Any) -> None:
    """Copy the products into a stack's data roots (MS dir, calibration sets, images)."""
    import shutil

    for sub, dest in (("ms", settings.ms_dir), ("calsets", settings.calset_dir), ("images", settings.image_dir)):
        shutil.copytree(products.root / sub, dest, dirs_exist_ok=True)
