"""The mosaicker: an hourly mosaic from 12 consecutive tiles, mosaics on request with job events,
and the mosaic endpoints' validation."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from astropy.io import fits

from actors.mosaicker.actor import MosaickerActor
from schemas.base import decode
from schemas.dsa import MosaicReady, PipelineJobUpdated
from tests.conftest import eventually
from tests.dsa.conftest import MJD0, TILE_DAYS, Sky
from tests.seti.conftest import Stack


async def test_hourly_mosaic_from_12_tiles_and_mosaics_on_request(stack: Stack, actors: Any, sky: Sky) -> None:
    await actors(MosaickerActor)
    operator = await stack.user(role="operator")
    user = await stack.user()
    jobs: list[PipelineJobUpdated] = []
    ready: list[MosaicReady] = []

    async def collect(msg: Any) -> None:
        ev = decode(msg.data)
        (jobs if isinstance(ev, PipelineJobUpdated) else ready).append(ev)  # type: ignore[arg-type]

    sub = await stack.bus.nc.subscribe("dsa.job.updated", cb=collect)
    sub2 = await stack.bus.nc.subscribe("dsa.mosaic.ready", cb=collect)
    # 11 tiles: no hourly mosaic yet; the 12th completes the group.
    for image in sky.images[:11]:
        await stack.bus.publish(image)
    await asyncio.sleep(1.0)
    assert not jobs
    await stack.bus.publish(sky.images[11])
    window = f"start_mjd={MJD0 - 0.01}&end_mjd={MJD0 + 0.1}"

    async def hourly() -> Any:
        r = await stack.call("GET", f"/api/mosaics/query?{window}&query_only=true")
        return r.body if r.body["total"] else None

    body = await eventually(hourly, timeout=60)
    m = body["mosaics"][0]
    assert set(m) == {
        "id", "name", "path", "start_mjd", "end_mjd", "n_images", "n_sources", "noise_jy", "thumbnail_path",
        "fits_url", "quicklook_url", "thumbnail_url",
    }  # fmt: skip
    assert m["fits_url"] == f"/api/mosaics/{m['id']}"
    assert m["name"] == "2023-10-21_hourly_12-13UTC" and m["n_images"] == 12
    assert m["start_mjd"] == MJD0 and abs(m["end_mjd"] - (MJD0 + 11 * TILE_DAYS)) < 1e-9
    assert m["n_sources"] >= 6  # the six catalogue sources (at 12 tiles' depth)
    assert 0 < m["noise_jy"] < 1e-3  # 12 tiles beat one tile's noise
    assert Path(m["path"]).exists() and Path(m["thumbnail_path"]).read_bytes()[:4] == b"\x89PNG"
    assert fits.getheader(m["path"])["NIMAGES"] == 12
    assert Path(m["path"].replace(".fits", "_noise.fits")).exists()
    assert [j.status for j in jobs if j.job_id.startswith("mosaic_hourly")] == ["pending", "running", "completed"]

    # On request: POST needs an operator key, answers a job id; events follow; the mosaic appears.
    req = {"start_mjd": MJD0, "end_mjd": MJD0 + 0.02, "dec_min": 39.0, "dec_max": 41.0}
    r = await stack.call("POST", "/api/mosaics/generate", json_body=req)
    assert r.status == 403
    r = await stack.call("POST", "/api/mosaics/generate", user, json_body=req)
    assert r.status == 403 and r.body["code"] == "OPERATOR_ONLY"
    r = await stack.call("POST", "/api/mosaics/generate", operator, json_body=req)
    assert r.status == 200, r.body
    assert r.body["status"] == "pending" and re.fullmatch(r"mosaic_\d{8}_001", r.body["job_id"])
    job_id = r.body["job_id"]
    await eventually(lambda: any(j.job_id == job_id and j.status == "completed" for j in jobs), timeout=60)
    made = next(m for m in ready if m.job_id == job_id)
    assert made.n_images == 6 and made.kind == "request" and made.name == job_id  # tiles 0..5 in 0.02 d

    # GET without query_only starts a job too (operator key), with the seed's message.
    r = await stack.call("GET", f"/api/mosaics/query?{window}", user)
    assert r.status == 403
    r = await stack.call("GET", "/api/mosaics/query?start_mjd=50000&end_mjd=50000.5", operator)
    assert r.status == 200 and r.body["message"] == "Mosaic generation job created"
    empty_job = r.body["job_id"]
    assert empty_job.endswith("_002")
    failed = await eventually(lambda: next((j for j in jobs if j.job_id == empty_job and j.status == "failed"), None))
    assert "no images" in failed.error

    async def both() -> Any:
        r = await stack.call("GET", f"/api/mosaics/query?{window}&query_only=true&dec_min=39&dec_max=41")
        return r.body if r.body["total"] == 2 else None

    await eventually(both, timeout=10)
    r = await stack.call("GET", f"/api/mosaics/query?{window}&query_only=true&dec_min=60&dec_max=70")
    assert r.body == {"mosaics": [], "total": 0}
    await sub.unsubscribe()
    await sub2.unsubscribe()


async def test_mosaic_endpoints_reject_bad_input(stack: Stack) -> None:
    operator = await stack.user(role="operator")
    r = await stack.call("GET", "/api/mosaics/query?end_mjd=1&query_only=true")
    assert r.status == 400 and r.body["details"]["field"] == "start_mjd"
    r = await stack.call("GET", "/api/mosaics/query?start_mjd=abc&end_mjd=1&query_only=true")
    assert r.status == 422 and r.body["details"]["field"] == "start_mjd"
    r = await stack.call("GET", "/api/mosaics/query?start_mjd=1&end_mjd=2&query_only=maybe")
    assert r.status == 422 and r.body["details"]["field"] == "query_only"
    r = await stack.call("POST", "/api/mosaics/generate", operator, json_body={"start_mjd": 2, "end_mjd": 1})
    assert r.status == 422 and r.body["details"]["field"] == "start_mjd"
    r = await stack.call("POST", "/api/mosaics/generate", operator, json_body={"start_mjd": 1, "end_mjd": 5})
    assert r.status == 422 and r.body["details"]["field"] == "end_mjd"
    r = await stack.call(
        "POST", "/api/mosaics/generate", operator, json_body={"start_mjd": 1, "end_mjd": 1.5, "dec_min": 95}
    )
    assert r.status == 422 and r.body["details"]["field"] == "dec_min"
    r = await stack.call("POST", "/api/mosaics/generate", operator, json_body={"end_mjd": 1.5})
    assert r.status == 400 and r.body["code"] == "MISSING_FIELD"
    # No mosaicker running: 503 in the envelope, not a hang.
    r = await stack.call("POST", "/api/mosaics/generate", operator, json_body={"start_mjd": 1, "end_mjd": 1.5})
    assert r.status == 503 and r.body["status"] == "error"
