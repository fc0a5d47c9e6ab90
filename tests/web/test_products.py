"""Images, mosaics and QA files over HTTP: real FITS files, real PNG renders, confinement."""

from __future__ import annotations

import io
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import yarl
from astropy.io import fits
from matplotlib import image as mpimg

from actors.imager.clean import Beam
from actors.imager.fitsimage import make_header, write_fits
from bus import Bus
from schemas.dsa import ImageReady, MosaicReady
from settings import Settings
from tests.conftest import eventually

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sky_image(path: Path, n: int = 1024, name: str = "g") -> Path:
    """A DSA-110-like image: 1 mJy/beam noise, a bright source at the centre, fainter ones around."""
    rng = np.random.default_rng(7)
    img = rng.normal(0, 1e-3, (n, n)).astype(np.float32)
    yy, xx = np.mgrid[0:n, 0:n]
    for dy, dx, flux in [(0, 0, 0.5), (40, -60, 0.02), (-90, 70, 0.01)]:
        img += flux * np.exp(-((yy - n // 2 - dy) ** 2 + (xx - n // 2 - dx) ** 2) / (2 * 3.0**2))
    beam = Beam(np.deg2rad(20 / 3600), np.deg2rad(12 / 3600), np.deg2rad(30.0))
    header = make_header(
        n,
        np.deg2rad(3 / 3600),
        (np.deg2rad(150.0), np.deg2rad(37.0)),
        1.4e9,
        187e6,
        60000.5,
        beam,
        1e-3,
        object_name=name,
    )
    return write_fits(path, img, header)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    # encoded=True: the path goes as written (a client would otherwise fold 'a/../b' itself).
    async with aiohttp.ClientSession() as s, s.get(yarl.URL(url, encoded=True), headers=headers or {}) as r:
        raw = await r.read()
        body = raw
        if r.headers.get("Content-Type", "").startswith("application/json"):
            body = await r.json()
        return r.status, body, r.headers


async def publish_image(bus: Bus, path: Path, group_id: str, mjd: float) -> None:
    await bus.publish(
        ImageReady(
            path=str(path),
            group_id=group_id,
            mjd=mjd,
            noise_jy=1e-3,
            bmaj_deg=20 / 3600,
            bmin_deg=12 / 3600,
            bpa_deg=30.0,
            n_sources_5sigma=3,
            ms_path=f"/data/ms/{group_id}.ms",
            thumbnail_path=str(path.with_suffix(".png")),
            ra_deg=150.0,
            dec_deg=37.0,
        )
    )


async def test_images_listed_newest_first_with_fits_quicklook_and_thumbnail(
    bus: Bus, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    first = sky_image(settings.image_dir / "g-1.fits", name="g-1")
    second = sky_image(settings.image_dir / "g-2.fits", n=512, name="g-2")
    await publish_image(bus, first, "g-1", 60000.1)
    await publish_image(bus, second, "g-2", 60000.2)

    async def listed() -> Any:
        _, body, _ = await get(edge.url + "/api/images?limit=10")
        return body if body["total"] == 2 else None

    body = await eventually(listed)
    newest, older = body["images"]
    assert newest["group_id"] == "g-2" and older["group_id"] == "g-1"
    assert newest["beam_major_arcsec"] == 20.0 and newest["beam_minor_arcsec"] == 12.0
    assert newest["beam_pa_deg"] == 30.0 and newest["noise_jy"] == 1e-3 and newest["mid_mjd"] == 60000.2
    assert newest["thumbnail_path"] == str(second.with_suffix(".png"))  # seed 000's meaning kept
    image_id = older["id"]
    assert older["fits_url"] == f"/api/images/{image_id}"
    assert older["quicklook_url"] == f"/api/images/{image_id}/quicklook.png"
    assert older["thumbnail_url"] == f"/api/images/{image_id}/thumbnail.png"
    status, page, _ = await get(edge.url + "/api/images?limit=1&offset=1")
    assert status == 200 and [i["group_id"] for i in page["images"]] == ["g-1"] and page["total"] == 2
    status, err, _ = await get(edge.url + "/api/images?limit=0")
    assert status == 422 and err["details"]["field"] == "limit"

    # The FITS bytes, as a download.
    status, raw, headers = await get(edge.url + older["fits_url"])
    assert status == 200 and headers["Content-Type"] == "application/fits"
    assert headers["Content-Disposition"] == 'attachment; filename="g-1.fits"'
    with fits.open(io.BytesIO(raw)) as hdul:
        assert hdul[0].data.shape == (1, 1, 1024, 1024) and hdul[0].header["BUNIT"] == "Jy/beam"

    # The quicklook: a figure (axes, colour bar: wider than tall), made once and then from the cache.
    status, png, headers = await get(edge.url + older["quicklook_url"])
    assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(PNG_MAGIC)
    figure = mpimg.imread(io.BytesIO(png))
    assert figure.shape[1] > figure.shape[0] > 400
    renders = settings.projection_db.parent / "renders"
    made = list(renders.glob("*.png"))
    assert len(made) == 1
    made[0].write_bytes(png + b"served from the cache")  # a re-render would not have this tail
    status, again, _ = await get(edge.url + older["quicklook_url"])
    assert again == png + b"served from the cache" and list(renders.glob("*.png")) == made

    # The thumbnail: small, and the centre's sources show above the noise (the stretch works).
    status, thumb, headers = await get(edge.url + older["thumbnail_url"])
    assert status == 200 and headers["Content-Type"] == "image/png"
    tile = mpimg.imread(io.BytesIO(thumb))[..., :3].mean(axis=2)
    assert max(tile.shape) <= 256
    cy, cx = tile.shape[0] // 2, tile.shape[1] // 2
    assert tile[cy - 2 : cy + 3, cx - 2 : cx + 3].max() > 4 * np.median(tile)
    faint = tile[cy + 40 * tile.shape[0] // 256 - 3 : cy + 40 * tile.shape[0] // 256 + 4]
    assert faint.max() > 2 * np.median(tile)  # the 20 mJy (20σ) source is visible too

    # A re-written file gets a new render (the cache is keyed by mtime).
    sky_image(first, name="g-1")
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    status, _, _ = await get(edge.url + older["quicklook_url"])
    assert status == 200 and len(list(renders.glob("*.png"))) == 3

    status, err, _ = await get(edge.url + "/api/images/999999/quicklook.png")
    assert status == 404 and err["code"] == "IMAGE_NOT_FOUND"


async def test_image_files_are_confined_and_checked(
    bus: Bus, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    settings.image_dir.mkdir(parents=True, exist_ok=True)
    outside = settings.data_dir.parent / "outside.fits"
    sky_image(outside, n=256)
    not_fits = settings.image_dir / "broken.fits"
    not_fits.write_text("SIMPLE  = nonsense")
    gone = settings.image_dir / "gone.fits"
    await publish_image(bus, outside, "g-out", 1.0)
    await publish_image(bus, not_fits, "g-broken", 2.0)
    await publish_image(bus, gone, "g-gone", 3.0)

    async def listed() -> Any:
        _, body, _ = await get(edge.url + "/api/images")
        return {i["group_id"]: i for i in body["images"]} if body["total"] == 3 else None

    by_group = await eventually(listed)
    status, err, _ = await get(edge.url + by_group["g-out"]["fits_url"])
    assert status == 403 and err["code"] == "PATH_NOT_ALLOWED"
    status, err, _ = await get(edge.url + by_group["g-out"]["quicklook_url"])
    assert status == 403 and err["code"] == "PATH_NOT_ALLOWED"
    status, err, _ = await get(edge.url + by_group["g-broken"]["quicklook_url"])
    assert status == 422 and err["code"] == "UNREADABLE_FITS"
    status, err, _ = await get(edge.url + by_group["g-gone"]["thumbnail_url"])
    assert status == 404 and err["code"] == "FILE_NOT_FOUND"


async def test_mosaics_get_urls_fits_and_pngs(
    bus: Bus, settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    path = sky_image(settings.mosaic_dir / "hourly-1.fits", n=400, name="hourly-1")
    await bus.publish(
        MosaicReady(
            name="hourly-1",
            path=str(path),
            start_mjd=60000.0,
            end_mjd=60000.04,
            n_images=12,
            n_sources=30,
            noise_jy=1e-3,
            thumbnail_path=str(path.with_name("hourly-1_thumb.png")),
        )
    )

    async def listed() -> Any:
        _, body, _ = await get(edge.url + "/api/mosaics/query?start_mjd=59999&end_mjd=60001&query_only=true")
        return body["mosaics"]

    (mosaic,) = await eventually(listed)
    mid = mosaic["id"]
    assert mosaic["thumbnail_path"].endswith("hourly-1_thumb.png")
    assert (mosaic["fits_url"], mosaic["quicklook_url"], mosaic["thumbnail_url"]) == (
        f"/api/mosaics/{mid}",
        f"/api/mosaics/{mid}/quicklook.png",
        f"/api/mosaics/{mid}/thumbnail.png",
    )
    status, raw, headers = await get(edge.url + mosaic["fits_url"])
    assert status == 200 and headers["Content-Type"] == "application/fits" and raw.startswith(b"SIMPLE")
    for url in (mosaic["quicklook_url"], mosaic["thumbnail_url"]):
        status, png, headers = await get(edge.url + url)
        assert status == 200 and headers["Content-Type"] == "image/png" and png.startswith(PNG_MAGIC)
    status, err, _ = await get(edge.url + "/api/mosaics/12345")
    assert status == 404 and err["code"] == "MOSAIC_NOT_FOUND"


async def test_qa_files_are_served_only_inside_the_roots(
    settings: Settings, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    edge = await edge_factory()
    qa = settings.data_dir / "qa"
    qa.mkdir(parents=True, exist_ok=True)
    png = qa / "bandpass.png"
    mpimg.imsave(png, np.arange(64, dtype=float).reshape(8, 8))
    fits_file = sky_image(settings.calset_dir / "cal-1" / "image.fits", n=256)
    (qa / "notes.txt").write_text("hello")
    secret = settings.data_dir.parent / "secret.png"
    secret.write_bytes(PNG_MAGIC + b"secret")
    (qa / "leak.png").symlink_to(secret)

    # The listing gives each PNG/FITS file the URL a browser fetches it from.
    status, listing, _ = await get(edge.url + "/api/qa/directories?path=qa")
    urls = {f["name"]: f["url"] for f in listing["files"]}
    assert urls["bandpass.png"] == "/api/qa/file/qa/bandpass.png" and urls["notes.txt"] is None
    assert "leak.png" not in urls
    status, body, _ = await get(edge.url + urls["bandpass.png"])
    assert status == 200 and body == png.read_bytes()
    status, body, headers = await get(edge.url + f"/api/qa/file/{png}")
    assert status == 200 and headers["Content-Type"] == "image/png" and body == png.read_bytes()
    status, body, _ = await get(edge.url + "/api/qa/file/qa/bandpass.png")  # relative to the data dir
    assert status == 200 and body == png.read_bytes()
    status, body, headers = await get(edge.url + f"/api/qa/file/{fits_file}")
    assert status == 200 and headers["Content-Type"] == "application/fits" and body == fits_file.read_bytes()

    for raw, code in [
        (f"{secret}", 403),  # outside the roots
        ("qa/leak.png", 403),  # a symlink that leads out
        ("qa/../../secret.png", 403),  # '..' is refused before anything is resolved
        ("qa/notes.txt", 403),  # not a PNG or FITS file
        ("qa", 404),  # a directory is not a regular file
        ("qa/missing.png", 404),
    ]:
        status, err, _ = await get(edge.url + f"/api/qa/file/{raw}")
        assert status == code, (raw, status, err)
        assert isinstance(err, dict) and err["status"] == "error"  # the envelope, never the file
    # '..' percent-encoded is decoded before the check, and still refused.
    async with aiohttp.ClientSession() as s:
        async with s.get(edge.url + "/api/qa/file/qa/%2E%2E/%2E%2E/secret.png") as r:
            assert r.status in (403, 404) and PNG_MAGIC not in await r.read()


async def test_openapi_documents_the_product_endpoints(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    _, doc, _ = await get(edge.url + "/api/openapi.json")
    paths = doc["paths"]
    assert "/api/images" in paths and "/api/session" in paths
    ql = paths["/api/images/{image_id}/quicklook.png"]["get"]["responses"]
    assert set(ql) == {"200", "400", "403", "404", "422"} and "image/png" in ql["200"]["content"]
    assert "application/fits" in paths["/api/mosaics/{mosaic_id}"]["get"]["responses"]["200"]["content"]
    assert "/api/qa/file/{path}" in paths
    (param,) = paths["/api/images/{image_id}"]["get"]["parameters"]
    assert param["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    assert set(paths["/api/session"]) == {"get", "post", "delete"}
