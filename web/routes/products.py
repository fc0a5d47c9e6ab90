"""The products over HTTP: images and mosaics as FITS, quicklook PNG and thumbnail, and QA files.

* ``GET /api/images?limit=&offset=``: image records, newest first, each with browser URLs;
* ``GET /api/images/{id}``: the FITS file; ``/quicklook.png``: WCS axes, colour bar (Jy/beam),
  the beam and the noise, zoomed on the centre (``astro.quicklook``); ``/thumbnail.png``: ~256 px;
* ``GET /api/mosaics/{id}`` and its ``/quicklook.png`` and ``/thumbnail.png`` (the whole mosaic);
* ``GET /api/qa/file/{path}``: a PNG or FITS file under the data roots (what ``/api/qa/directories``
  lists), with the confinement of ``/api/qa/*``: no ``..``, no symlink out, regular files only.

Every file path, also those recorded from events, is confined to the data roots before it is read.
Renders are cached on disk and made in worker threads (``web/render.py``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from aiohttp import web

from web.auth import require_reader
from web.errors import ApiError
from web.projections import images
from web.render import Kind, RenderCache
from web.routes.dsa_qa import confine
from web.routing import json_response, path_id, read_query

if TYPE_CHECKING:
    from web.app import Edge

TAG = "products"
FILE_TYPES = {".png": "image/png", ".fits": "application/fits", ".fit": "application/fits", ".fts": "application/fits"}
PNG_CACHE = "public, max-age=300"


class ImageView(msgspec.Struct):
    id: int
    path: str
    group_id: str
    ms_path: str
    mid_mjd: float
    created_at: str
    noise_jy: float
    beam_major_arcsec: float
    beam_minor_arcsec: float
    beam_pa_deg: float
    ra_deg: float
    dec_deg: float
    n_sources_5sigma: int
    thumbnail_path: str  # seed 000: the PNG the imager wrote beside the FITS (a server path)
    fits_url: str
    quicklook_url: str
    thumbnail_url: str


class ImagesResponse(msgspec.Struct):
    images: list[ImageView]
    total: int


class ImagesQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    offset: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 0


def image_urls(image_id: int) -> dict[str, str]:
    base = f"/api/images/{image_id}"
    return {"fits_url": base, "quicklook_url": base + "/quicklook.png", "thumbnail_url": base + "/thumbnail.png"}


def mosaic_urls(mosaic_id: int) -> dict[str, str]:
    base = f"/api/mosaics/{mosaic_id}"
    return {"fits_url": base, "quicklook_url": base + "/quicklook.png", "thumbnail_url": base + "/thumbnail.png"}


def _image_view(r: dict[str, Any]) -> ImageView:
    return ImageView(
        id=r["id"],
        path=r["path"],
        group_id=r["group_id"],
        ms_path=r["ms_path"],
        mid_mjd=r["mid_mjd"],
        created_at=r["created_at"],
        noise_jy=r["noise_jy"],
        beam_major_arcsec=r["bmaj_deg"] * 3600.0,
        beam_minor_arcsec=r["bmin_deg"] * 3600.0,
        beam_pa_deg=r["bpa_deg"],
        ra_deg=r["ra_deg"],
        dec_deg=r["dec_deg"],
        n_sources_5sigma=r["n_sources_5sigma"],
        thumbnail_path=r["thumbnail_path"],
        **image_urls(r["id"]),
    )


def register(edge: Edge) -> None:
    api = edge.api
    settings = edge.settings
    renders = RenderCache(settings.projection_db.parent / "renders", int(settings.render_cache_mb * 2**20))
    png_errors = {
        403: "read auth required, or the file is outside the data roots",
        404: "no such record, or its file is gone",
        422: "the file is not a readable FITS image",
    }

    async def regular_file(raw: str) -> str:
        real = await confine(settings, raw)
        if not await asyncio.to_thread(os.path.isfile, real):
            raise ApiError(404, "the file is gone or is not a regular file", "FILE_NOT_FOUND", {"path": raw})
        return real

    def fits_response(real: str, name: str) -> web.FileResponse:
        name = name.replace('"', "_").replace("\\", "_")
        return web.FileResponse(
            real,
            headers={
                "Content-Type": "application/fits",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-cache",  # revalidate: a re-imaged group rewrites the same file
            },
        )

    async def png_response(real: str, kind: Kind, zoom: bool) -> web.FileResponse:
        try:
            out = await renders.png(real, kind, zoom=zoom)
        except (OSError, ValueError, IndexError, TypeError) as exc:
            raise ApiError(422, f"cannot render this file: {exc}", "UNREADABLE_FITS") from None
        return web.FileResponse(out, headers={"Content-Type": "image/png", "Cache-Control": PNG_CACHE})

    async def image_record(request: web.Request) -> dict[str, Any]:
        await require_reader(request)
        image_id = path_id(request, "image_id")
        row = await images.image_by_id(edge.store, image_id)
        if row is None:
            raise ApiError(404, f"no image {image_id}", "IMAGE_NOT_FOUND")
        return row

    async def mosaic_record(request: web.Request) -> dict[str, Any]:
        await require_reader(request)
        mosaic_id = path_id(request, "mosaic_id")
        row = await images.mosaic_by_id(edge.store, mosaic_id)
        if row is None:
            raise ApiError(404, f"no mosaic {mosaic_id}", "MOSAIC_NOT_FOUND")
        return row

    @api.route(
        "GET",
        "/api/images",
        response=ImagesResponse,
        tag=TAG,
        summary="FITS images the imager wrote, newest first, with FITS, quicklook and thumbnail URLs",
        query=ImagesQuery,
        responses={403: "read auth required", 422: "bad limit or offset"},
    )
    async def list_images(request: web.Request) -> web.Response:
        await require_reader(request)
        q = read_query(request, ImagesQuery)
        rows, total = await images.list_images(edge.store, q.limit, q.offset)
        return json_response(ImagesResponse(images=[_image_view(r) for r in rows], total=total))

    @api.route(
        "GET",
        r"/api/images/{image_id:\d+}",
        tag=TAG,
        content_type="application/fits",
        summary="The image's FITS file (download)",
        responses=png_errors,
    )
    async def image_fits(request: web.Request) -> web.FileResponse:
        row = await image_record(request)
        real = await regular_file(row["path"])
        return fits_response(real, Path(real).name)

    @api.route(
        "GET",
        r"/api/images/{image_id:\d+}/quicklook.png",
        tag=TAG,
        content_type="image/png",
        summary="Quicklook PNG: the central region with RA/Dec axes, colour bar (Jy/beam), beam and noise",
        responses=png_errors,
    )
    async def image_quicklook(request: web.Request) -> web.FileResponse:
        row = await image_record(request)
        return await png_response(await regular_file(row["path"]), "quicklook", zoom=True)

    @api.route(
        "GET",
        r"/api/images/{image_id:\d+}/thumbnail.png",
        tag=TAG,
        content_type="image/png",
        summary="Thumbnail PNG (~256 px) of the central region",
        responses=png_errors,
    )
    async def image_thumbnail(request: web.Request) -> web.FileResponse:
        row = await image_record(request)
        return await png_response(await regular_file(row["path"]), "thumbnail", zoom=True)

    @api.route(
        "GET",
        r"/api/mosaics/{mosaic_id:\d+}",
        tag=TAG,
        content_type="application/fits",
        summary="The mosaic's FITS file (download)",
        responses=png_errors,
    )
    async def mosaic_fits(request: web.Request) -> web.FileResponse:
        row = await mosaic_record(request)
        real = await regular_file(row["path"])
        return fits_response(real, Path(real).name)

    @api.route(
        "GET",
        r"/api/mosaics/{mosaic_id:\d+}/quicklook.png",
        tag=TAG,
        content_type="image/png",
        summary="Quicklook PNG of the whole mosaic: RA/Dec axes, colour bar (Jy/beam), beam and noise",
        responses=png_errors,
    )
    async def mosaic_quicklook(request: web.Request) -> web.FileResponse:
        row = await mosaic_record(request)
        return await png_response(await regular_file(row["path"]), "quicklook", zoom=False)

    @api.route(
        "GET",
        r"/api/mosaics/{mosaic_id:\d+}/thumbnail.png",
        tag=TAG,
        content_type="image/png",
        summary="Thumbnail PNG (~256 px) of the whole mosaic",
        responses=png_errors,
    )
    async def mosaic_thumbnail(request: web.Request) -> web.FileResponse:
        row = await mosaic_record(request)
        return await png_response(await regular_file(row["path"]), "thumbnail", zoom=False)

    @api.route(
        "GET",
        "/api/qa/file/{path:.+}",
        tag="qa",
        content_type="application/octet-stream",
        summary="A PNG or FITS file under the data roots (the QA plots /api/qa/directories lists)",
        responses={
            403: "outside the data roots, or not a PNG/FITS file",
            404: "no such regular file",
        },
    )
    async def qa_file(request: web.Request) -> web.FileResponse:
        await require_reader(request)
        raw = request.match_info["path"]
        real = await regular_file(raw)
        ctype = FILE_TYPES.get(Path(real).suffix.lower())
        if ctype is None:
            raise ApiError(
                403, "only PNG and FITS files are served", "FILE_TYPE_NOT_ALLOWED", {"allowed": sorted(FILE_TYPES)}
            )
        headers = {"Content-Type": ctype, "Cache-Control": "no-cache"}
        if ctype == "application/fits":
            headers["Content-Disposition"] = f'attachment; filename="{Path(real).name}"'
        return web.FileResponse(real, headers=headers)
