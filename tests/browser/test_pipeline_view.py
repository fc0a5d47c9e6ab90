"""Pipeline view: an observation group appears and moves collecting → pending → in_progress →
completed on the page as the real events are applied by the edge, with no reload."""

from __future__ import annotations

import time

from schemas.dsa import CalibrationSetSolved, GroupUpdated, MeasurementSetWritten
from tests.browser.conftest import Dashboard
from tests.seti.conftest import Stack


async def test_a_group_moves_through_its_states_live(stack: Stack, dashboard: Dashboard) -> None:
    page = dashboard.page
    await dashboard.open("pipeline")
    await page.wait_for_selector("#live.on")
    await dashboard.mark_no_reload()
    group = "2026-12-05T08:00:00"
    row = f'#groups tr[data-group="{group}"]'

    # The events the watcher and imager publish, on the real bus, projected by the real edge.
    for state, present in (("collecting", 5), ("pending", 16), ("in_progress", 16), ("completed", 16)):
        await stack.bus.publish(GroupUpdated(group_id=group, state=state, subbands_present=present, producer="watcher"))
        await page.wait_for_selector(f'{row}[data-state="{state}"]', timeout=10_000)
        assert await page.text_content(f"{row} td:nth-child(3)") == f"{present}/16"
        assert await page.text_content(f'.stat[data-queue="{state}"] .n') == "1"
        if state == "collecting":
            await dashboard.shot("pipeline-collecting")
    assert await page.text_content('.stat[data-queue="pending"] .n') == "0"

    ms = MeasurementSetWritten(
        path=f"/data/ms/{group}.ms", group_id=group, stage="converted", mid_mjd=61014.33, field_name="drift_dec+33"
    )
    await stack.bus.publish(ms)
    await page.wait_for_selector('#ms td:has-text("2026-12-05T08:00:00.ms")', timeout=10_000)
    assert await page.text_content('#ms-stages [data-stage="converted"]') == "converted 1"
    # A calibration set valid now (±12 h around its transit), shown with its window.
    now_mjd = time.time() / 86400 + 40587
    cal = CalibrationSetSolved(
        cal_group_id="2026-12-05T07:40:00", path="/data/cal/3C48", created_at="2026-12-05T07:46:00Z", num_targets=16,
        valid_from_mjd=now_mjd - 0.5, valid_to_mjd=now_mjd + 0.5, calibrator="3C48",
    )  # fmt: skip
    await stack.bus.publish(cal)
    await page.wait_for_selector('#calsets td:has-text("3C48")', timeout=10_000)
    assert await page.text_content("#calsets tbody .state") == "valid now"
    await dashboard.assert_not_reloaded()
    await page.wait_for_selector("#actors tbody tr")  # the edge and test actors' heartbeats
    await dashboard.shot("pipeline")
