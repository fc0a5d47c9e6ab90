"""Sources & ESE, and Alerts, in the browser: a candidate opens live from real images measured by the
real variability detector, its light curve shows the dip with its flagged epochs, an operator marks
it false_positive from the page; an alert delivery shows up live in the history."""

from __future__ import annotations

from typing import Any

from actors.variability.actor import VariabilityActor
from schemas.ops import AlertSent
from tests.browser.conftest import Dashboard
from tests.conftest import eventually
from tests.dsa.conftest import ESE_EPOCHS, Sky
from tests.seti.conftest import Stack


async def test_an_ese_candidate_appears_live_and_an_operator_marks_it_false_positive(
    stack: Stack, actors: Any, sky: Sky, dashboard: Dashboard
) -> None:
    page = dashboard.page
    await actors(VariabilityActor)
    operator = await stack.user(role="operator")
    await dashboard.open("sources")
    await dashboard.login(operator)
    await page.wait_for_selector("#live.on")
    await dashboard.mark_no_reload()
    assert await page.text_content("#candidates tbody") == "No candidates"

    for image in sky.images:  # the imager's facts, on the real bus
        await stack.bus.publish(image)
    row = f'#candidates tr[data-source="{sky.ese_source}"]'
    await page.wait_for_selector(row, timeout=60_000)
    await page.wait_for_selector("#ese-badge:not([hidden])")

    async def all_measured() -> Any:
        r = await stack.call("GET", f"/api/sources/{sky.ese_source}")
        return r.status == 200 and len(r.body["timeseries"]) == len(sky.images)

    await eventually(all_measured, timeout=60)
    # The catalogue, searched on the server; the ESE source has the largest deviation.
    await page.click("#src-form button[type=submit]")
    await page.wait_for_selector(f'#sources tbody tr[data-source="{sky.ese_source}"]')
    assert await page.text_content("#src-total") == "6 sources"
    await page.click('#sources th[data-sort="source_id"]')
    await page.wait_for_selector('#sources th[data-sort="source_id"].desc')
    names = await page.eval_on_selector_all("#sources tbody tr", "rows => rows.map(r => r.dataset.source)")
    assert names == sorted(names, reverse=True)
    # A filter, applied on the server: only the variable source deviates by 5σ or more.
    await page.fill("#src-form input[placeholder='≥ σ']", "5")
    await page.click("#src-form button[type=submit]")
    await page.wait_for_function("document.querySelector('#src-total').textContent === '1 source'")
    assert await page.eval_on_selector_all("#sources tbody tr", "r => r.map(x => x.dataset.source)") == [sky.ese_source]

    # Its light curve: every epoch with error bars, the dip's epochs flagged against the baseline.
    await page.click(row)
    await page.wait_for_selector("#lightcurve canvas")
    assert await page.text_content("#lc-title") == sky.ese_source
    assert (await page.text_content("#lc-flagged") or "").startswith(f"{len(ESE_EPOCHS)} ")
    await dashboard.shot("sources")

    # The operator closes it from the page.
    await page.click(f"{row} button.mark-fp")
    await page.wait_for_selector(row, state="detached")  # gone from the "active" list
    r = await stack.call("GET", "/api/ese/candidates")
    assert r.body["candidates"][0]["status"] == "false_positive"
    r = await stack.call("GET", "/api/ese/candidates?offset=1")  # paged on the server
    assert r.body == {"candidates": [], "total": 1}
    await page.select_option("#cand-status", "false_positive")
    await page.wait_for_selector(f"{row} .state.false_positive")

    # Alerts: the history, and a new delivery appears without a reload.
    await dashboard.view("alerts")
    await page.wait_for_selector("#alerts tbody tr")
    sent = AlertSent(
        alert_id="a-browser-1", alert_type="ese_candidate", severity="warning", source_id=sky.ese_source,
        message=f"ESE candidate {sky.ese_source}: 5.2σ dip", channel="#ese-alerts", success=True,
    )  # fmt: skip
    await stack.bus.publish(sent)
    await page.wait_for_selector(f'#alerts td:has-text("ESE candidate {sky.ese_source}: 5.2σ dip")', timeout=15_000)
    await dashboard.assert_not_reloaded()
    await dashboard.shot("alerts")
