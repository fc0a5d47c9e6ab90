"""The browser's side of the edge: the dashboard page, its static files, and the API docs.

* ``GET /``: ``web/static/index.html`` (a short placeholder while no page is installed);
* ``GET /static/{path}``: files under ``web/static/`` only (no ``..``, no symlink out, regular
  files), with ETag/Last-Modified from aiohttp's FileResponse. Cache policy: the page and its own
  scripts are ``no-cache`` (always revalidated, so a deploy shows at the next load, at the price
  of a 304 round trip); vendored libraries under ``vendor/`` are stable and cached for a day;
* ``GET /api/docs``: Swagger UI (vendored in ``web/static/vendor/swagger-ui``, no CDN) over
  ``/api/openapi.json``; ``/docs`` and ``/redoc`` redirect there.

No build step: the files are served as committed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from web.errors import ApiError

if TYPE_CHECKING:
    from web.app import Edge

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
DOCS_PATH = "/api/docs"
TAG = "pages"
REVALIDATE = "no-cache"
VENDOR_CACHE = "public, max-age=86400"
PLACEHOLDER = b"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Observatory platform</title></head>
<body><h1>Observatory platform</h1><p>The dashboard page is not installed here (web/static/index.html).
The API is described at <a href="/api/docs">/api/docs</a>.</p></body></html>"""


def static_file(raw: str, root: Path = STATIC_DIR) -> Path:
    """The real path of `raw` under `root`, or a 404 envelope (never a hint of what lies outside)."""
    parts = raw.replace("\\", "/").split("/")
    if "\x00" in raw or ".." in parts or raw.startswith("/"):
        raise ApiError(404, f"no such static file: {raw!r}", "NOT_FOUND")
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, raw))
    if not real.startswith(real_root + os.sep) or not os.path.isfile(real):
        raise ApiError(404, f"no such static file: {raw!r}", "NOT_FOUND")
    return Path(real)


def register(edge: Edge) -> None:
    api = edge.api

    @api.route("GET", "/", tag=TAG, content_type="text/html", summary="The dashboard page")
    async def index(request: web.Request) -> web.StreamResponse:
        page = STATIC_DIR / "index.html"
        if not await asyncio.to_thread(page.is_file):
            return web.Response(body=PLACEHOLDER, content_type="text/html", headers={"Cache-Control": REVALIDATE})
        return web.FileResponse(page, headers={"Cache-Control": REVALIDATE, "Content-Type": "text/html"})

    @api.route(
        "GET",
        "/static/{path:.+}",
        tag=TAG,
        content_type="application/octet-stream",
        summary="The dashboard's static files (scripts, styles, vendored libraries with their licences)",
        responses={404: "no such file"},
    )
    async def static(request: web.Request) -> web.StreamResponse:
        raw = request.match_info["path"]
        real = await asyncio.to_thread(static_file, raw)
        cache = VENDOR_CACHE if raw.startswith("vendor/") else REVALIDATE
        return web.FileResponse(real, headers={"Cache-Control": cache})

    @api.route("GET", DOCS_PATH, tag=TAG, content_type="text/html", summary="Interactive API docs (Swagger UI)")
    async def docs(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC_DIR / "api-docs.html", headers={"Cache-Control": REVALIDATE, "Content-Type": "text/html"}
        )

    for alias in ("/docs", "/redoc"):

        @api.route("GET", alias, tag=TAG, status=302, summary=f"Redirects to {DOCS_PATH}")
        async def to_docs(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(DOCS_PATH)
