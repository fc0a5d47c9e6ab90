"""Every 4xx and 5xx is the seed-000 envelope, and no stack trace reaches a client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

from web.app import Edge
from web.routing import json_response, read_json


class Probe(msgspec.Struct):
    name: str
    count: int
    tags: list[str] = []


class ProbeEdge(Edge):
    """The core edge plus two routes that exercise body decoding and an unexpected failure."""

    def route_modules(self) -> list[Any]:
        class Extra:
            @staticmethod
            def register(edge: Edge) -> None:
                @edge.api.route("POST", "/api/probe", request=Probe, response=Probe)
                async def probe(request: web.Request) -> web.Response:
                    return json_response(await read_json(request, Probe))

                @edge.api.route("GET", "/api/boom")
                async def boom(request: web.Request) -> web.Response:
                    raise RuntimeError("secret internals /srv/app.py line 42")

        return [Extra]


async def _call(method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, url, **kw) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        return r.status, await r.json()


def _is_envelope(body: dict[str, Any], code: str) -> None:
    assert body["status"] == "error" and body["code"] == code and isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)


async def test_error_envelope_for_each_kind_of_bad_request(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory(ProbeEdge)
    u = edge.url

    status, body = await _call("GET", u + "/api/does-not-exist")
    assert status == 404
    _is_envelope(body, "NOT_FOUND")

    status, body = await _call("DELETE", u + "/api/status")
    assert status == 405
    _is_envelope(body, "METHOD_NOT_ALLOWED")
    assert body["details"]["allowed"] == ["GET"]

    status, body = await _call(
        "POST", u + "/api/probe", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400
    _is_envelope(body, "INVALID_JSON")

    status, body = await _call("POST", u + "/api/probe", data=b"", headers={"Content-Type": "application/json"})
    assert status == 400
    _is_envelope(body, "INVALID_JSON")

    status, body = await _call("POST", u + "/api/probe", json={"name": "x"})
    assert status == 400
    _is_envelope(body, "MISSING_FIELD")
    assert body["details"]["field"] == "count"

    status, body = await _call("POST", u + "/api/probe", json={"name": "x", "count": "three"})
    assert status == 422
    _is_envelope(body, "VALIDATION_ERROR")
    assert body["details"]["field"] == "count" and "count" in body["error"]

    status, body = await _call("POST", u + "/api/probe", json={"name": "x", "count": 1, "tags": [1]})
    assert status == 422
    assert body["details"]["field"] == "tags[0]"

    status, body = await _call(
        "POST",
        u + "/api/probe",
        data=b"{" + b'"name":"' + b"x" * (2 * 1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    _is_envelope(body, "PAYLOAD_TOO_LARGE")

    status, body = await _call("GET", u + "/api/boom")
    assert status == 500
    _is_envelope(body, "INTERNAL_ERROR")
    assert "secret" not in body["error"] and "Traceback" not in str(body)

    status, body = await _call("POST", u + "/api/probe", json={"name": "ok", "count": 2})
    assert status == 200 and body == {"name": "ok", "count": 2, "tags": []}


async def test_a_header_over_8_kb_gets_the_envelope(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    """aiohttp's parser refuses it before any middleware: its plain-text 400 is now the envelope."""
    import asyncio
    import json

    edge = await edge_factory()
    host, port = edge.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", head
    assert b"application/json" in head
    doc = json.loads(body)
    assert doc["status"] == "error" and doc["code"] == "BAD_REQUEST" and "malformed HTTP request" in doc["error"]
