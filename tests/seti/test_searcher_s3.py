"""The searcher with S3 storage (moto's server): the upload is downloaded to a scratch file, the
exports and the outcome record go to the bucket, and the scratch file is gone afterwards."""

from __future__ import annotations

import io
from pathlib import Path

from astropy.io import fits

from actors.searcher.actor import SearcherActor
from actors.searcher.storage_io import read_outcome
from bus import Bus
from settings import Settings
from tests.seti.conftest import Stack
from tests.seti.test_s3 import s3_endpoint, s3_settings, s3_stack  # noqa: F401  (fixtures)
from tests.seti.test_searcher_service import ALL_FORMATS, analyze, synthetic, wait_finished


async def test_search_job_with_s3_storage(
    s3_stack: Stack,  # noqa: F811
    s3_settings: Settings,  # noqa: F811
    bus: Bus,
    tmp_path: Path,
) -> None:
    searcher = SearcherActor(bus, s3_settings)
    await searcher.start()
    try:
        stack = s3_stack
        user = await stack.user()
        file_key = await stack.upload(user, "tones.fil", synthetic(tmp_path, "tones.fil"))
        job_id = await analyze(stack, user, file_key)
        job = await wait_finished(stack, user, job_id)
        assert job["status"] == "complete", job
        assert job["results"]["candidates"] >= 1

        outcome = await read_outcome(searcher.storage, user.user_id, job_id)
        assert outcome is not None and outcome.status == "complete"
        # the exports are written after the completion: wait for them through the live view
        async with stack.session.ws_connect(f"{stack.url}/jobs/{job_id}/ws", headers={"x-api-key": user.api_key}) as ws:
            while (await ws.receive_json(timeout=30))["exports"] != ALL_FORMATS:
                pass
        r = await stack.call("GET", f"/jobs/{job_id}/download?format=fits", user)
        assert r.status == 200 and r.body["download_url"].startswith(s3_settings.s3_endpoint)
        got = await stack.call("GET", r.body["download_url"])
        with fits.open(io.BytesIO(got.body)) as hdul:
            assert len(hdul[1].data) == job["results"]["raw_hits"]
        scratch = s3_settings.data_dir / "searcher" / "downloads"
        assert not scratch.exists() or not any(scratch.iterdir())  # the downloaded input was removed
    finally:
        await searcher.stop()
