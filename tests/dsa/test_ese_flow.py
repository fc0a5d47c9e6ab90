"""Variability detector + alerter + edge, over a real nats-server: light curves, one ESE candidate,
exactly one Slack alert, the live ``ese_update``, and the operator's status change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import msgspec
import numpy as np
import pytest

from actors.alerter.actor import AlerterActor
from actors.variability.actor import VariabilityActor
from schemas.base import new_id
from tests.conftest import eventually
from tests.dsa.conftest import ESE_EPOCHS, FakeSlack, Sky
from tests.seti.conftest import Stack


async def ws_until(ws: aiohttp.ClientWebSocketResponse, pred: Any, timeout: float = 30.0) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if pred(data):
                    return data
        raise AssertionError("websocket closed")

    return await asyncio.wait_for(read(), timeout)


async def test_injected_ese_is_flagged_alerted_once_and_closed_by_an_operator(
    stack: Stack, actors: Any, sky: Sky, fake_slack: FakeSlack
) -> None:
    await actors(VariabilityActor)
    await actors(AlerterActor)
    operator = await stack.user(role="operator")
    user = await stack.user()

    async with aiohttp.ClientSession() as session, session.ws_connect(stack.url + "/api/ws/status") as ws:
        first = await ws_until(ws, lambda m: m["type"] == "ese_update")
        assert first["data"] == {"candidates": [], "total": 0}
        for image in sky.images:
            await stack.bus.publish(image)
        # Delivered over the WebSocket when the candidate opens.
        update = await ws_until(ws, lambda m: m["type"] == "ese_update" and m["data"]["total"] > 0)
        assert update["data"]["candidates"][0]["source_id"] == sky.ese_source

    async def all_measured() -> Any:
        r = await stack.call("GET", f"/api/sources/{sky.ese_source}")
        return r if r.status == 200 and len(r.body["timeseries"]) == len(sky.images) else None

    detail = (await eventually(all_measured, timeout=60)).body
    # The candidate: the ESE source only, never a constant one.
    r = await stack.call("GET", "/api/ese/candidates")
    assert r.status == 200
    assert r.body["total"] == 1
    cand = r.body["candidates"][0]
    assert cand["source_id"] == sky.ese_source and cand["status"] == "active" and cand["notes"] is None
    assert set(cand) == {
        "id", "source_id", "ra_deg", "dec_deg", "first_detection_at", "last_detection_at", "max_sigma_dev",
        "baseline_flux_jy", "peak_flux_jy", "status", "notes",
    }  # fmt: skip
    assert cand["max_sigma_dev"] >= 5.0
    assert abs(cand["baseline_flux_jy"] - 0.05) < 0.005 and cand["peak_flux_jy"] < 0.025
    assert cand["first_detection_at"] < cand["last_detection_at"]  # extended by the later dip epochs

    # The light curve shows the dip, primary-beam corrected, in mJy.
    assert set(detail) == {
        "source_id", "ra_deg", "dec_deg", "nvss_flux_mjy", "vlass_flux_mjy", "spectral_index",
        "variability_stats", "timeseries",
    }  # fmt: skip
    assert detail["nvss_flux_mjy"] == 50.0
    fluxes = [e["flux_mjy"] for e in detail["timeseries"]]
    assert all(abs(f - 50) < 6 for k, f in enumerate(fluxes) if k not in ESE_EPOCHS)
    assert all(f < 25 for k, f in enumerate(fluxes) if k in ESE_EPOCHS)
    assert set(detail["timeseries"][0]) == {"mjd", "flux_mjy", "error_mjy", "snr", "image_path"}
    assert detail["timeseries"][0]["image_path"] == sky.images[0].path
    stats = detail["variability_stats"]
    assert stats["n_obs"] == 12 and stats["sigma_deviation"] >= 5.0 and stats["chi2_nu"] > 10
    # η (VAST/TraP: the weighted reduced χ²) and V (std / mean) of the dip light curve, from its epochs.
    f = np.array(fluxes)
    w = 1 / np.array([e["error_mjy"] for e in detail["timeseries"]]) ** 2
    eta = float(np.sum(w * (f - np.sum(w * f) / np.sum(w)) ** 2) / (len(f) - 1))
    assert stats["eta"] == pytest.approx(eta, rel=1e-6) and stats["eta"] == pytest.approx(stats["chi2_nu"])
    assert stats["v"] == pytest.approx(np.std(f, ddof=1) / np.mean(f), rel=1e-6) and stats["v"] > 0.2

    # Search: the ESE source first by sigma_deviation; the constant ones are all below 5σ.
    r = await stack.call("POST", "/api/sources/search", json_body={"sort": {"field": "sigma_deviation"}})
    assert r.status == 200 and r.body["total"] == 6 and r.body["limit"] == 100 and r.body["offset"] == 0
    assert r.body["sources"][0]["source_id"] == sky.ese_source
    assert all(s["sigma_deviation"] < 5.0 for s in r.body["sources"][1:])
    assert set(r.body["sources"][0]) == {
        "source_id", "ra_deg", "dec_deg", "nvss_flux_mjy", "mean_flux_mjy", "n_obs", "chi2_nu", "eta", "v",
        "sigma_deviation", "last_measured_at",
    }  # fmt: skip
    assert {k: r.body["sources"][0][k] for k in ("chi2_nu", "eta", "v")} == {
        k: stats[k] for k in ("chi2_nu", "eta", "v")
    }
    # Sorted and filtered by the variability statistics: the dip is the most variable by η and V.
    for field in ("eta", "v", "chi2_nu"):
        r = await stack.call("POST", "/api/sources/search", json_body={"sort": {"field": field, "order": "desc"}})
        assert r.status == 200 and r.body["sources"][0]["source_id"] == sky.ese_source
        values = [s[field] for s in r.body["sources"]]
        assert values == sorted(values, reverse=True)
        r = await stack.call("POST", "/api/sources/search", json_body={"sort": {"field": field, "order": "asc"}})
        assert r.body["sources"][-1]["source_id"] == sky.ese_source
    others_max = {k: max(s[k] for s in r.body["sources"][:-1]) for k in ("eta", "v", "chi2_nu")}
    for key, field in (("eta_min", "eta"), ("v_min", "v"), ("chi2_nu_min", "chi2_nu")):
        threshold = (others_max[field] + stats[field]) / 2
        r = await stack.call("POST", "/api/sources/search", json_body={"filters": {key: threshold}})
        assert r.status == 200 and r.body["total"] == 1, key
        assert r.body["sources"][0]["source_id"] == sky.ese_source
        r = await stack.call("POST", "/api/sources/search", json_body={"filters": {key: 0}})
        assert r.body["total"] == 6
    r = await stack.call("POST", "/api/sources/search", json_body={"filters": {"eta_min": "high"}})
    assert r.status == 422 and r.body["status"] == "error"
    r = await stack.call(
        "POST",
        "/api/sources/search",
        json_body={"query": sky.ese_source[:9].lower(), "filters": {"variability_min": 5}, "limit": 5},
    )
    assert [s["source_id"] for s in r.body["sources"]] == [sky.ese_source] and r.body["total"] == 1

    # Exactly one Slack alert for the source, and its attempt in the history.
    await eventually(lambda: fake_slack.received, timeout=20)
    await asyncio.sleep(1.0)
    ese_posts = [t for t in fake_slack.texts() if "ESE candidate" in t]
    assert len(ese_posts) == 1 and sky.ese_source in ese_posts[0]
    assert fake_slack.received[0]["channel"] == "#ese-alerts"

    async def history() -> Any:
        r = await stack.call("GET", f"/api/alerts/history?source_id={sky.ese_source.replace('+', '%2B')}")
        return r.body if r.body["total"] else None

    hist = await eventually(history)
    assert hist["total"] == 1
    alert = hist["alerts"][0]
    assert alert["alert_type"] == "ese_candidate" and alert["severity"] == "critical" and alert["success"] is True
    assert alert["message"].startswith("ESE candidate detected:") and alert["channel"] == "#ese-alerts"

    # Redelivery of an image (a new event for the same file) changes nothing.
    await stack.bus.publish(msgspec.structs.replace(sky.images[3], id=new_id()))
    await asyncio.sleep(1.0)
    r = await stack.call("GET", f"/api/sources/{sky.constant_sources[0]}")
    assert r.body["variability_stats"]["n_obs"] == 12 and len(r.body["timeseries"]) == 12

    # The operator closes it: 403 without a key and for a non-operator; 422/404/409 for bad input.
    path = f"/api/ese/candidates/{cand['id']}/status"
    body = {"status": "false_positive", "notes": "RFI in the dip epochs"}
    r = await stack.call("POST", path, json_body=body)
    assert r.status == 403 and r.body["status"] == "error" and r.body["code"] == "MISSING_API_KEY"
    r = await stack.call("POST", path, user, json_body=body)
    assert r.status == 403 and r.body["code"] == "OPERATOR_ONLY"
    r = await stack.call("POST", path, operator, json_body={"status": "closed"})
    assert r.status == 422 and r.body["details"]["field"] == "status"
    r = await stack.call("POST", "/api/ese/candidates/9999/status", operator, json_body=body)
    assert r.status == 404
    r = await stack.call("POST", path, operator, json_body=body)
    assert r.status == 200, r.body
    assert r.body["status"] == "false_positive" and r.body["notes"] == "RFI in the dip epochs"
    r = await stack.call("POST", path, operator, json_body={"status": "resolved"})
    assert r.status == 409
    r = await stack.call("GET", "/api/ese/candidates?status=active")
    assert r.body == {"candidates": [], "total": 0}
    r = await stack.call("GET", "/api/ese/candidates?status=false_positive&limit=1")
    assert r.body["total"] == 1 and r.body["candidates"][0]["id"] == cand["id"]
