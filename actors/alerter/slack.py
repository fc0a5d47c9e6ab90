"""Slack incoming-webhook delivery: the message, and a bounded retry that records every attempt.

Retries. A 429 or a 5xx answer, a timeout or a connection error is retried, up to
``max_attempts`` in all. The wait before the next attempt is the ``Retry-After`` header when
Slack sends one (seconds or an HTTP date), else exponential backoff with jitter
(``base_delay_s · 2^(k−1)``, capped at ``max_delay_s``). A ``Retry-After`` longer than
``max_retry_after_s`` ends the delivery instead of being cut short: Slack asked us to stay
away, and the actor has the whole alert to try again later. Any other answer (400
``invalid_payload``, 403, 404 ``no_service``, 410 ``channel_is_archived``) is final.

Every attempt comes back as an :class:`Attempt` (and is passed to ``on_attempt`` as soon as it
is known), so the actor can record each one in the alert history. ``sleep`` and ``clock`` are
injectable, so tests run the whole schedule without waiting.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from actors.alerter.policy import Alert, AlertType, Severity

_EMOJI = {
    Severity.CRITICAL: ":rotating_light:",
    Severity.ERROR: ":x:",
    Severity.WARNING: ":warning:",
    Severity.INFO: ":information_source:",
}
_TITLE = {
    AlertType.ESE_CANDIDATE: "ESE candidate",
    AlertType.CALIBRATOR_MISSING: "Calibrator missing",
    AlertType.SYSTEM_ERROR: "System error",
}


def _trim(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def build_payload(alert: Alert, *, channel: str | None = None, link: str | None = None) -> dict[str, Any]:
    """Webhook JSON: ``text`` (the notification and fallback) plus Block Kit ``blocks``."""
    sev = alert.level
    title = _TITLE[alert.alert_type] + (" (summary)" if alert.is_summary else "")
    if alert.source_id:
        title += f": {alert.source_id}"
    text = f"{_EMOJI[sev]} [{sev.upper()}] {title} — {alert.message}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _trim(f"{title}", 150), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _trim(alert.message, 3000)}},
    ]
    if alert.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": _trim(f"*{k}*\n{v}", 2000)} for k, v in alert.fields[:10]
                ],
            }
        )
    context = f"type `{alert.alert_type}` · severity `{sev}`"
    if link:
        context += f" · <{link}|dashboard>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    payload: dict[str, Any] = {"text": _trim(text, 3000), "blocks": blocks}
    if channel:
        payload["channel"] = channel
    return payload


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST to the webhook. ``status`` is None when no HTTP answer came back."""

    number: int
    started_at: float  # POSIX seconds
    status: int | None
    ok: bool
    error: str | None = None
    retry_after_s: float | None = None
    next_delay_s: float | None = None  # wait before the next attempt; None if this was the last

    @property
    def sent_at(self) -> str:
        return datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    attempts: tuple[Attempt, ...]

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]


def history_record(alert: Alert, attempt: Attempt, channel: str | None) -> dict[str, Any]:
    """One attempt as a row of seed 000's ``/alerts/history`` (the store adds the id)."""
    return {
        "source_id": alert.source_id,
        "alert_type": str(alert.alert_type),
        "severity": str(alert.level),
        "message": alert.message,
        "sent_at": attempt.sent_at,
        "channel": channel,
        "success": attempt.ok,
    }


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = when.timestamp() - now
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


def _retryable(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


OnAttempt = Callable[[Attempt], Awaitable[None] | None]


async def deliver(
    session: aiohttp.ClientSession,
    url: str,
    payload: dict[str, Any],
    *,
    max_attempts: int = 5,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    max_retry_after_s: float = 300.0,
    timeout_s: float = 10.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    jitter: Callable[[], float] = random.random,
    on_attempt: OnAttempt | None = None,
) -> Delivery:
    """POST ``payload`` to the webhook with bounded retries; every attempt is returned."""
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    attempts: list[Attempt] = []
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    for n in range(1, max_attempts + 1):
        started = clock()
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            async with session.post(url, json=payload, timeout=timeout) as resp:
                status = resp.status
                body = await resp.text()
                if status != 200:
                    error = _trim(f"HTTP {status}: {body.strip()}", 300)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), clock())
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = _trim(f"{type(exc).__name__}: {exc}", 300)
        ok = status == 200
        retry = not ok and (status is None or _retryable(status)) and n < max_attempts
        delay: float | None = None
        if retry:
            if retry_after is not None:
                if retry_after > max_retry_after_s:
                    error = f"{error}; Retry-After {retry_after:.0f} s exceeds {max_retry_after_s:.0f} s, giving up"
                    retry = False
                else:
                    delay = retry_after
            else:
                cap = min(max_delay_s, base_delay_s * 2 ** (n - 1))
                delay = cap * (0.5 + 0.5 * jitter())
        att = Attempt(n, started, status, ok, error, retry_after, delay if retry else None)
        attempts.append(att)
        if on_attempt is not None:
            res = on_attempt(att)
            if inspect.isawaitable(res):
                await res
        if not retry:
            break
        assert delay is not None
        await sleep(delay)
    return Delivery(attempts[-1].ok, tuple(attempts))


async def send_alert(
    session: aiohttp.ClientSession,
    url: str,
    alert: Alert,
    *,
    channel: str | None = None,
    link: str | None = None,
    **kwargs: Any,
) -> Delivery:
    """:func:`build_payload` then :func:`deliver` (keyword arguments go to ``deliver``)."""
    return await deliver(session, url, build_payload(alert, channel=channel, link=link), **kwargs)
