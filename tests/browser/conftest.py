"""The dashboard in a real browser: Debian's Chromium driven by Playwright for Python.

The stack is the real one of ``tests/dsa`` and ``tests/seti`` (a real nats-server, the edge and the
actors a test starts); the page is loaded from the edge exactly as an operator's browser loads it.
A browser cannot be downloaded here, so Playwright launches the system Chromium (``/usr/bin/chromium``,
``make test`` installs it); without it these tests fail with a message saying so, never skip.

Screenshots of every view go to ``$DASHBOARD_SCREENSHOTS`` when set, else to the test's tmp dir.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from tests.dsa.conftest import actors, fake_slack, settings, sky, stack  # noqa: F401  (fixtures re-exported)
from tests.seti.conftest import Stack, User

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(`make test` installs it; by hand: apt-get install -y chromium), or CHROMIUM=/path/to/chromium"
        )
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Dashboard:
    """One browser tab on the edge's page, with the errors the page raised and screenshot saving."""

    def __init__(self, page: Page, url: str, shots: Path) -> None:
        self.page = page
        self.url = url
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, msg: ConsoleMessage) -> None:
        # A refused request (401 with no session, a 403 a test provokes) is logged by Chromium as a
        # resource error; those are expected answers, not page errors.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            self.errors.append(f"console: {msg.text}")

    async def open(self, view: str = "pipeline") -> None:
        await self.page.goto(f"{self.url}/#{view}")
        await self.page.wait_for_selector(f"#view-{view}:not([hidden])")

    async def view(self, view: str) -> None:
        """Switch tab the way a user does (a hash change, no reload)."""
        await self.page.click(f'#tabs a[data-view="{view}"]')
        await self.page.wait_for_selector(f"#view-{view}:not([hidden])")

    async def login(self, user: User) -> None:
        await self.page.fill("#login-key", user.api_key)
        await self.page.click("#login button[type=submit]")
        await self.page.wait_for_selector("#whoami:not([hidden])")

    async def mark_no_reload(self) -> None:
        await self.page.evaluate("window.__noReload = true")

    async def assert_not_reloaded(self) -> None:
        assert await self.page.evaluate("window.__noReload === true"), "the page reloaded"

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of the image
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A request from inside the page, with the session cookie and its CSRF token, as the page sends it."""
        result: dict[str, Any] = await self.page.evaluate(
            """async ([method, path, body]) => {
                const headers = {"Content-Type": "application/json"};
                const user = window.__dashboard.user;
                if (user) headers["X-CSRF-Token"] = user.csrf_token;
                const r = await fetch(path, {method, headers, credentials: "same-origin",
                                             body: body === null ? undefined : JSON.stringify(body)});
                let json = null; try { json = await r.json(); } catch {}
                return {status: r.status, body: json};
            }""",
            [method, path, body],
        )
        return result


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
async def dashboard(browser: Browser, stack: Stack, shots: Path) -> AsyncIterator[Dashboard]:  # noqa: F811
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    d = Dashboard(page, stack.url, shots)
    try:
        yield d
    finally:
        await context.close()
    assert not d.errors, d.errors
