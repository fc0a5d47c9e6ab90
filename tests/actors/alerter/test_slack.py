from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from actors.alerter.policy import Alert, AlertType, Severity
from actors.alerter.slack import build_payload, deliver, history_record, parse_retry_after, send_alert


@dataclass
class FakeSlack:
    """A local stand-in for a Slack webhook: records bodies, answers as scripted."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str], str]] = field(default_factory=deque)

    def answer(self, status: int, body: str = "", **headers: str) -> None:
        self.script.append((status, headers, body))

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        status, headers, body = self.script.popleft() if self.script else (200, {}, "ok")
        return web.Response(status=status, text=body or ("ok" if status == 200 else "error"), headers=headers)


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/services/T000/B000/XXXX", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/services/T000/B000/XXXX"
    yield fake
    await runner.cleanup()


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


ESE = Alert(
    AlertType.ESE_CANDIDATE,
    "ESE candidate detected: 7.8σ deviation",
    source_id="NVSS J123456.7+420312",
    fields=(("σ deviation", "7.8"), ("baseline", "14.5 mJy"), ("peak", "25.8 mJy")),
)


def test_payload_shape():
    p = build_payload(ESE, channel="#ese-alerts", link="http://dash/sources/x")
    assert p["channel"] == "#ese-alerts"
    assert "CRITICAL" in p["text"] and "NVSS J123456.7+420312" in p["text"]
    types = [b["type"] for b in p["blocks"]]
    assert types == ["header", "section", "section", "context"]
    assert len(p["blocks"][0]["text"]["text"]) <= 150
    assert "<http://dash/sources/x|dashboard>" in p["blocks"][-1]["elements"][0]["text"]
    sys_alert = Alert(AlertType.SYSTEM_ERROR, "event dead-lettered: bad header")
    q = build_payload(sys_alert)
    assert "channel" not in q and q["blocks"][0]["text"]["text"] == "System error"
    assert sys_alert.severity is Severity.ERROR
    assert Alert("calibrator_missing", "no calibrator in 2025-10-24T14:00:00").severity is Severity.WARNING


async def test_delivered_first_time(slack: FakeSlack):
    sleeps = Sleeps()
    seen = []
    async with aiohttp.ClientSession() as s:
        d = await send_alert(s, slack.url, ESE, channel="#ese-alerts", sleep=sleeps, on_attempt=seen.append)
    assert d.ok and len(d.attempts) == 1 and d.final.status == 200
    assert sleeps.calls == [] and seen == list(d.attempts)
    assert slack.received[0]["channel"] == "#ese-alerts"
    rec = history_record(ESE, d.final, "#ese-alerts")
    assert rec["success"] is True and rec["alert_type"] == "ese_candidate" and rec["severity"] == "critical"
    assert rec["sent_at"].endswith("Z")


async def test_429_honours_retry_after_then_succeeds(slack: FakeSlack):
    slack.answer(429, "rate_limited", **{"Retry-After": "7"})
    slack.answer(503, "unavailable")
    sleeps = Sleeps()
    recorded = []

    async def record(a):  # an async recorder works too
        recorded.append(a)

    async with aiohttp.ClientSession() as s:
        d = await deliver(
            s, slack.url, build_payload(ESE), sleep=sleeps, jitter=lambda: 1.0, base_delay_s=2.0,
            on_attempt=record,
        )
    assert d.ok
    assert [a.status for a in d.attempts] == [429, 503, 200]
    assert [a.ok for a in d.attempts] == [False, False, True]
    assert d.attempts[0].retry_after_s == 7.0
    assert sleeps.calls == [7.0, 4.0]  # Retry-After, then backoff 2·2¹ (full-jitter top)
    assert len(slack.received) == 3 and slack.received[0] == slack.received[2]
    assert recorded == list(d.attempts)
    assert "rate_limited" in (d.attempts[0].error or "")


async def test_5xx_gives_up_after_bounded_attempts_with_capped_backoff(slack: FakeSlack):
    for _ in range(10):
        slack.answer(500)
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as s:
        d = await deliver(
            s, slack.url, build_payload(ESE), max_attempts=4, base_delay_s=1.0, max_delay_s=3.0,
            sleep=sleeps, jitter=lambda: 0.0,
        )
    assert not d.ok and len(d.attempts) == 4 and len(slack.received) == 4
    assert sleeps.calls == [0.5, 1.0, 1.5]  # half of min(3, 1·2^(k−1))
    assert d.final.next_delay_s is None and all(a.next_delay_s for a in d.attempts[:-1])


async def test_client_errors_are_final_and_long_retry_after_ends_delivery(slack: FakeSlack):
    slack.answer(400, "invalid_payload")
    slack.answer(429, "rate_limited", **{"Retry-After": "3600"})
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as s:
        d1 = await deliver(s, slack.url, build_payload(ESE), sleep=sleeps)
        d2 = await deliver(s, slack.url, build_payload(ESE), sleep=sleeps, max_retry_after_s=300)
    assert not d1.ok and len(d1.attempts) == 1 and d1.final.status == 400
    assert not d2.ok and len(d2.attempts) == 1 and "giving up" in (d2.final.error or "")
    assert sleeps.calls == []


async def test_connection_refused_is_retried_and_recorded():
    sleeps = Sleeps()
    async with aiohttp.ClientSession() as s:
        d = await deliver(s, "http://127.0.0.1:9/hook", {"text": "x"}, max_attempts=3, sleep=sleeps,
                          timeout_s=2.0)
    assert not d.ok and len(d.attempts) == 3
    assert all(a.status is None and a.error for a in d.attempts)
    assert len(sleeps.calls) == 2


def test_parse_retry_after():
    assert parse_retry_after("12", 0.0) == 12.0
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after("soon", 0.0) is None
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30.0, abs=1.0)
    assert parse_retry_after("-5", 0.0) == 0.0
