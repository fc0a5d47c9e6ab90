"""Bad input to the science endpoints: every error in the seed's envelope, naming the field."""

from __future__ import annotations

from typing import Any

from tests.seti.conftest import Stack


async def test_source_search_and_detail_validation(stack: Stack) -> None:
    async def search(body: Any, raw: bytes | None = None) -> Any:
        if raw is not None:
            return await stack.call(
                "POST", "/api/sources/search", data=raw, headers={"Content-Type": "application/json"}
            )
        return await stack.call("POST", "/api/sources/search", json_body=body)

    r = await search({})
    assert r.status == 200 and r.body == {"sources": [], "total": 0, "limit": 100, "offset": 0}
    r = await search({"sort": {"field": "brightness"}})
    assert r.status == 422 and r.body["details"]["field"] == "sort.field" and "brightness" in r.body["error"]
    assert "sigma_deviation" in r.body["details"]["allowed"]
    r = await search({"sort": {"field": "n_obs", "order": "sideways"}})
    assert r.status == 422 and r.body["details"]["field"] == "sort.order"
    r = await search({"limit": 0})
    assert r.status == 422 and r.body["details"]["field"] == "limit"
    r = await search({"limit": 5000})
    assert r.status == 422 and r.body["details"]["field"] == "limit"
    r = await search({"offset": -1})
    assert r.status == 422 and r.body["details"]["field"] == "offset"
    r = await search({"filters": {"dec_min": 50, "dec_max": 40}})
    assert r.status == 422 and r.body["details"]["field"] == "filters.dec_min"
    r = await search({"filters": {"dec_min": -100}})
    assert r.status == 422 and r.body["details"]["field"] == "filters.dec_min"
    r = await search({"filters": {"variability_min": "high"}})
    assert r.status == 422 and r.body["details"]["field"] == "filters.variability_min"
    r = await search({"filters": {"brightness": 1}})
    assert r.status == 400 and r.body["code"] == "UNKNOWN_FIELD" and r.body["details"]["field"] == "filters.brightness"
    r = await search(None, raw=b"{not json")
    assert r.status == 400 and r.body["code"] == "INVALID_JSON"
    r = await search(None, raw=b"")
    assert r.status == 400
    for r in (await search({"query": 5}),):
        assert r.status == 422 and r.body["details"]["field"] == "query"
    r = await stack.call("GET", "/api/sources/NVSS%20J000000.0%2B000000")
    assert r.status == 404 and r.body["status"] == "error" and r.body["code"] == "NOT_FOUND"


async def test_ese_and_alert_query_validation(stack: Stack) -> None:
    r = await stack.call("GET", "/api/ese/candidates")
    assert r.status == 200 and r.body == {"candidates": [], "total": 0}
    for query, field, status in (("limit=abc", "limit", 422), ("limit=0", "limit", 422), ("status=open", "status", 400)):
        r = await stack.call("GET", f"/api/ese/candidates?{query}")
        assert r.status == status and r.body["details"]["field"] == field, (query, r.body)
    assert "'open'" in r.body["error"] and set(r.body["details"]["allowed"]) == {"active", "resolved", "false_positive"}
    r = await stack.call("GET", "/api/alerts/history")
    assert r.status == 200 and r.body == {"alerts": [], "total": 0}
    operator = await stack.user(role="operator")
    r = await stack.call("POST", "/api/ese/candidates/abc/status", operator, json_body={"status": "resolved"})
    assert r.status == 422 and r.body["details"]["field"] == "candidate_id"
    # past any row SQLite holds (the fuzz run's case): no such candidate, not an overflow (was 500)
    r = await stack.call(
        "POST", "/api/ese/candidates/941940735825813686448029696/status", operator, json_body={"status": "resolved"}
    )
    assert r.status == 404 and r.body["code"] == "NOT_FOUND", r.body
    r = await stack.call("POST", "/api/ese/candidates/1/status", operator, json_body={"status": "resolved", "x": 1})
    assert r.status == 400 and r.body["details"]["unknown"] == ["x"]
    # The variability detector is not running: 503, not a hang.
    r = await stack.call("POST", "/api/ese/candidates/1/status", operator, json_body={"status": "resolved"})
    assert r.status == 503 and r.body["status"] == "error"


async def test_openapi_documents_the_science_routes(stack: Stack) -> None:
    r = await stack.call("GET", "/api/openapi.json")
    paths = r.body["paths"]
    for p in (
        "/api/ese/candidates",
        "/api/ese/candidates/{candidate_id}/status",
        "/api/alerts/history",
        "/api/sources/search",
        "/api/sources/{source_id}",
        "/api/mosaics/query",
        "/api/mosaics/generate",
    ):
        assert p in paths, p
    assert "SourceSearchRequest" in r.body["components"]["schemas"]
