"""The mechanism that keeps the OpenAPI document true for every route, present and future:
405s carry ``Allow``, the statuses the framework answers are declared, query parameters come from
Structs with their limits, unknown fields and unknown query values are 400s that name them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import aiohttp
import msgspec
import pytest

from web.errors import ApiError
from web.routing import decode_body


async def test_405_carries_allow_and_query_values_are_named(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    async with aiohttp.ClientSession() as http:
        async with http.request("TRACE", edge.url + "/api/health") as r:
            assert r.status == 405 and r.headers["Allow"] == "GET"
            assert (await r.json())["details"]["allowed"] == ["GET"]
        # a literal route is not shadowed by a templated sibling: GET /api/sources/search is 405
        async with http.get(edge.url + "/api/sources/search") as r:
            assert r.status == 405 and r.headers["Allow"] == "POST"
        async with http.get(edge.url + "/api/control/ms/list?stage=bogus") as r:
            body = await r.json()
            assert r.status == 400 and "'bogus'" in body["error"] and body["details"]["field"] == "stage"
            assert set(body["details"]["allowed"]) == {"converted", "calibrated", "imaged"}
        async with http.get(edge.url + "/api/control/ms/list?limit=") as r:
            assert r.status == 422  # an empty value is a value, not the default
        async with http.get(edge.url + "/api/openapi.json") as r:
            doc = await r.json()
    ops = doc["paths"]
    assert ops["/api-keys"]["post"]["requestBody"]["required"] is False  # the body may be left out
    for path, method in (("/upload-url", "post"), ("/analyze", "post"), ("/complete-upload", "post"),
                         ("/reports", "post"), ("/abort-upload", "post"), ("/api/mosaics/generate", "post")):  # fmt: skip
        assert {"400", "403", "422", "503"} <= set(ops[path][method]["responses"]), path
    assert "400" in ops["/api/ws/status"]["get"]["responses"]
    limit = next(p for p in ops["/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1
    fmt = next(p for p in ops["/jobs/{job_id}/download"]["get"]["parameters"] if p["name"] == "format")
    assert "csv" in fmt["schema"]["enum"]
    # format=csv is answered inline as text/csv: the document says so beside the JSON body
    download_ok = ops["/jobs/{job_id}/download"]["get"]["responses"]["200"]["content"]
    assert set(download_ok) == {"application/json", "text/csv"}
    ttl = doc["components"]["schemas"]["CreateKeyRequest"]["properties"]["ttl_days"]
    assert (ttl["minimum"], ttl["maximum"]) == (1, 365)
    assert doc["components"]["schemas"]["NotebookRequest"]["properties"]["output_path"]["anyOf"][0]["pattern"]
    assert doc["components"]["schemas"]["AnalyzeRequest"]["additionalProperties"] is False


class Inner(msgspec.Struct):
    kind: Literal["a", "b"]
    n: int = 0


class Outer(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(min_length=1)]
    inner: list[Inner] = []


def _err(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as ei:
        decode_body(raw, Outer)
    return ei.value


def test_decode_body_names_unknown_fields_and_allowed_values() -> None:
    e = _err(b'{"name": "x", "colour": 1}')
    assert e.status == 400 and e.code == "UNKNOWN_FIELD" and e.details["field"] == "colour" and "'colour'" in e.message
    e = _err(b'{"name": "x", "inner": [{"kind": "a", "extra": 1}]}')
    assert e.status == 400 and e.details["field"] == "inner[0].extra"
    e = _err(b'{"name": "x", "inner": [{"kind": "c"}]}')
    assert e.status == 422 and e.details["allowed"] == ["a", "b"] and "allowed: a, b" in e.message
    e = _err(b'{"name": ""}')
    assert e.status == 400 and e.code == "MISSING_FIELD"
    # JSON Schema's integer includes 3.0: so does the server
    assert decode_body(b'{"name": "x", "inner": [{"kind": "a", "n": 3.0}]}', Outer).inner[0].n == 3
