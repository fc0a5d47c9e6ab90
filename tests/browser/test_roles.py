"""A non-operator session sees no control button anywhere, and the control API refuses it (403)
even when called from the page with a valid session and CSRF token; an operator sees the controls,
and a bad streaming configuration comes back as an error shown at its field."""

from __future__ import annotations

from tests.browser.conftest import Dashboard
from tests.seti.conftest import Stack

VIEWS = ("pipeline", "images", "sources", "alerts", "seti")


async def visible_controls(dashboard: Dashboard) -> list[str]:
    texts: list[str] = await dashboard.page.eval_on_selector_all(
        "[data-op]", "els => els.filter(e => e.offsetParent !== null).map(e => e.textContent)"
    )
    return texts


async def test_a_non_operator_sees_no_controls_and_is_refused(stack: Stack, dashboard: Dashboard) -> None:
    page = dashboard.page
    user = await stack.user(role="user")
    await dashboard.open("pipeline")
    await dashboard.login(user)
    assert await page.text_content("#who-role") == "user · researcher"
    for view in VIEWS:
        await dashboard.view(view)
        assert await visible_controls(dashboard) == [], view
    assert await page.is_disabled("#cfg-batch_size")

    # The session is valid (reads and SETI work) but control is refused.
    assert (await dashboard.call("GET", "/usage", None))["status"] == 200
    for path, body in (
        ("/api/streaming/start", {}),
        ("/api/streaming/config", {"batch_size": 4}),
        ("/api/ese/candidates/1/status", {"status": "false_positive"}),
        ("/api/mosaics/generate", {"start_mjd": 60000, "end_mjd": 60000.5}),
    ):
        r = await dashboard.call("POST", path, body)
        assert r["status"] == 403, (path, r)
        assert r["body"]["code"] == "OPERATOR_ONLY", r
    await dashboard.view("pipeline")
    await dashboard.shot("pipeline-non-operator")


async def test_an_operator_sees_the_controls_and_field_errors_at_the_field(stack: Stack, dashboard: Dashboard) -> None:
    page = dashboard.page
    operator = await stack.user(role="operator")
    await dashboard.open("pipeline")
    await dashboard.login(operator)
    assert await visible_controls(dashboard) == ["Start", "Restart", "Stop", "Save configuration"]
    await page.wait_for_function("document.querySelector('#cfg-batch_size').value !== ''")
    await page.fill("#cfg-batch_size", "0")
    await page.click("#streaming-config button[type=submit]")
    await page.wait_for_selector("#cfg-batch_size.invalid")
    assert "batch_size" in (await page.text_content("#cfg-batch_size-error") or "")
    await page.fill("#cfg-batch_size", "8")
    await page.click("#streaming-config button[type=submit]")
    await page.wait_for_selector("#cfg-batch_size:not(.invalid)")
    r = await stack.call("GET", "/api/streaming/config")
    assert r.body["batch_size"] == 8
    # No watcher runs in this stack: start is answered 503 and the page says so.
    await page.click('#streaming-controls button:has-text("Start")')
    await page.wait_for_selector("#toast:not([hidden])")
    assert "watcher" in (await page.text_content("#toast") or "")
    # Sign out: the controls go, and the cookie no longer works.
    await page.click("#logout")
    await page.wait_for_selector("#login:not([hidden])")
    assert await visible_controls(dashboard) == []
    assert (await dashboard.call("GET", "/api/session", None))["status"] == 401
