"""SETI in the browser: a user signs in, uploads a real filterbank through the signed URL (single
PUT, and multipart above the single-PUT limit) with a progress bar, analyzes it with the real
de-Doppler searcher, watches the job's progress live, then sees the results, the waterfall PNG and
the download links; usage against the tier; API keys created and revoked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.searcher.actor import SearcherActor
from actors.searcher.synth import Tone, make_filterbank
from bus import Bus
from settings import Settings
from storage import SINGLE_PUT_MAX
from tests.browser.conftest import Dashboard
from tests.seti.conftest import Stack

TONES = [Tone(1399.95, 2.0, 30.0), Tone(1399.80, -3.5, 30.0)]


@pytest.fixture
async def searcher(stack: Stack, bus: Bus, settings: Settings) -> AsyncIterator[SearcherActor]:
    actor = SearcherActor(bus, settings)
    await actor.start()
    try:
        yield actor
    finally:
        await actor.stop()


async def test_upload_analyze_progress_results_and_waterfall(
    stack: Stack, searcher: SearcherActor, dashboard: Dashboard, tmp_path: Path
) -> None:
    page = dashboard.page
    user = await stack.user(tier="researcher")
    # 4 coarse channels of 2^16, 8-bit, 16 spectra: progress has steps to show
    fil = make_filterbank(
        tmp_path / "tones.fil",
        nchans=4 << 16,
        ntime=16,
        fch1=1400.0,
        foff=-2.7939677238464355e-06,
        nbits=8,
        tones=TONES,
    )
    await dashboard.open("seti")
    assert await page.is_visible("#seti-signin")
    await dashboard.login(user)
    await page.wait_for_selector("#usage-count")
    assert (await page.text_content("#usage-count") or "").startswith("0 of ")
    await dashboard.mark_no_reload()

    # Record every progress value the page shows, as it shows it.
    await page.evaluate(
        """() => { window.__progress = [];
           new MutationObserver(() => window.__progress.push(Number(document.querySelector('#job-progress').dataset.percent)))
             .observe(document.querySelector('#job-progress'), {attributes: true}); }"""
    )
    await page.set_input_files("#seti-file", str(fil))
    await page.fill("#seti-source", "Synthetic tones")
    await page.click("#seti-run")
    await page.wait_for_selector('#upload-text:has-text("uploaded")', timeout=30_000)
    await page.wait_for_selector("#job-text .state", timeout=30_000)
    await page.wait_for_selector("#waterfall", timeout=90_000)
    await page.wait_for_function("document.querySelector('#waterfall').naturalWidth > 100", timeout=15_000)
    percents = await page.evaluate("window.__progress")
    assert percents and percents[-1] == 100 and percents == sorted(percents), percents
    assert await page.text_content("#job-text .state") == "complete"
    await page.wait_for_selector("#job-plot canvas")  # progress against time (uPlot)
    hits = await page.eval_on_selector_all("#hits tbody tr", "rows => rows.length")
    assert hits >= len(TONES)
    formats = await page.eval_on_selector_all("#downloads a", "as => as.map(a => a.dataset.format)")
    assert {"json", "csv", "fits", "waterfall"} <= set(formats), formats
    csv = await dashboard.call("GET", await page.get_attribute('#downloads a[data-format="json"]', "href") or "", None)
    assert csv["status"] == 200 and csv["body"]["raw_hits"] >= len(TONES)
    await page.wait_for_selector("#jobs .state.complete")
    assert (await page.text_content("#usage-count") or "").startswith("1 of ")
    await dashboard.assert_not_reloaded()
    await dashboard.shot("seti")

    # API keys: create one (shown once), then revoke it.
    before = await page.eval_on_selector_all("#keys tbody tr", "rows => rows.length")
    await page.fill("#key-name", "browser-test")
    await page.click("#key-create")
    await page.wait_for_selector("#new-key .secret")
    await page.wait_for_function(f"document.querySelectorAll('#keys tbody tr').length === {before + 1}")
    key_id = await page.eval_on_selector_all(
        "#keys tbody tr", "rows => rows.find(r => r.children[0].textContent === 'browser-test').dataset.key"
    )
    await page.click(f'#keys tr[data-key="{key_id}"] button')
    await page.wait_for_selector(f'#keys tr[data-key="{key_id}"] .state.revoked')


async def test_a_multipart_upload_from_the_page(stack: Stack, dashboard: Dashboard, tmp_path: Path) -> None:
    page = dashboard.page
    user = await stack.user(tier="researcher")
    big = tmp_path / "big.fil"
    header = tmp_path / "h.fil"
    make_filterbank(header, nchans=1024, ntime=1, fch1=1400.0, foff=-2.7939677238464355e-06, nbits=8)
    with big.open("wb") as fh:  # just past the single-PUT limit: two parts
        fh.write(header.read_bytes())
        fh.truncate(SINGLE_PUT_MAX + 1024)
    await dashboard.open("seti")
    await dashboard.login(user)
    await page.set_input_files("#seti-file", str(big))
    await page.click("#seti-run")
    await page.wait_for_selector('#upload-text:has-text("uploaded")', timeout=60_000)
    assert "parts" in (await page.text_content("#upload-text") or "")
    width = await page.eval_on_selector("#upload-progress > div", "d => d.style.width")
    assert width == "100%"
