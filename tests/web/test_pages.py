"""The page, its static files, the API docs, the 404 that names them, and CORS."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from openapi_spec_validator import validate

from web.errors import ApiError
from web.routes.pages import STATIC_DIR, static_file


async def fetch(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, yarl.URL(url, encoded=True), headers=headers or {}, allow_redirects=False) as r,
    ):
        return r.status, await r.read(), r.headers


async def test_page_static_files_and_docs(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    status, body, headers = await fetch("GET", edge.url + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body.lower()
    assert headers["Cache-Control"] == "no-cache"

    status, body, headers = await fetch("GET", edge.url + "/api/docs")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"/static/vendor/swagger-ui/swagger-ui-bundle.js" in body and b"https://" not in body  # no CDN
    status, script, _ = await fetch("GET", edge.url + "/static/api-docs.js")
    assert status == 200 and b'"/api/openapi.json"' in script
    status, bundle, headers = await fetch("GET", edge.url + "/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert status == 200 and len(bundle) > 500_000 and "max-age=86400" in headers["Cache-Control"]
    assert "javascript" in headers["Content-Type"] and (headers.get("ETag") or headers.get("Last-Modified"))
    assert "Apache License" in (STATIC_DIR / "vendor" / "swagger-ui" / "LICENSE").read_text()
    for alias in ("/docs", "/redoc"):
        status, _, headers = await fetch("GET", edge.url + alias)
        assert status == 302 and headers["Location"] == "/api/docs"

    for bad in ("/static/../settings.py", "/static/%2e%2e/settings.py", "/static/vendor", "/static/nope.js"):
        status, body, _ = await fetch("GET", edge.url + bad)
        assert status == 404 and b"Settings" not in body, bad

    # Unknown paths answer with the envelope, naming the docs.
    async with aiohttp.ClientSession() as s, s.get(edge.url + "/api/nothing-here") as r:
        err = await r.json()
    assert r.status == 404 and "/api/docs" in err["error"] and err["details"]["docs"] == "/api/docs"


def test_static_files_stay_under_their_root(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "js" / "app.js").write_text("ok")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    assert static_file("js/app.js", root).read_text() == "ok"
    for raw in ("leak.txt", "../secret.txt", "js/../../secret.txt", "/etc/hostname", "js", "a\x00b"):
        with pytest.raises(ApiError) as exc:
            static_file(raw, root)
        assert exc.value.status == 404


async def test_openapi_covers_the_new_endpoints_and_stays_valid(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    async with aiohttp.ClientSession() as s, s.get(edge.url + "/api/openapi.json") as r:
        doc = await r.json()
    validate(doc)
    for path in ("/", "/api/docs", "/api/session", "/api/images", "/api/images/{image_id}", "/api/qa/file/{path}"):
        assert path in doc["paths"], path
    assert "text/html" in doc["paths"]["/"]["get"]["responses"]["200"]["content"]
    assert set(doc["paths"]["/api/session"]["delete"]["responses"]) == {"204", "400", "403"}


async def test_cors_preflight_and_credentials_for_listed_origins_only(
    edge_factory: Callable[..., Awaitable[Any]],
) -> None:
    plain = await edge_factory()
    preflight = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"}
    status, _, headers = await fetch("OPTIONS", plain.url + "/api/status", preflight)
    assert "Access-Control-Allow-Origin" not in headers  # none allowed by default

    edge = await edge_factory(cors_origins="http://localhost:5173, https://ops.example.org")
    status, _, headers = await fetch(
        "OPTIONS", edge.url + "/api/status", {**preflight, "Access-Control-Request-Headers": "X-CSRF-Token"}
    )
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "GET" in headers["Access-Control-Allow-Methods"]
    assert "X-CSRF-TOKEN" in headers["Access-Control-Allow-Headers"].upper()
    status, _, headers = await fetch("GET", edge.url + "/api/status", {"Origin": "https://ops.example.org"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://ops.example.org"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    # A preflight for a POST route works too.
    status, _, headers = await fetch(
        "OPTIONS",
        edge.url + "/api/session",
        {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://localhost:5173"

    # An origin not listed gets no CORS headers (the browser then refuses the response).
    evil = {"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}
    status, _, headers = await fetch("OPTIONS", edge.url + "/api/status", evil)
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, _, headers = await fetch("GET", edge.url + "/api/status", {"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in headers
