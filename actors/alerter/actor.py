"""The alerter: decides which events reach Slack, delivers them in the background, records every attempt.

Consumed: ``ops.alert.raised`` (``ese_candidate``, ``calibrator_missing``, ``system_error`` from any
actor), ``ops.deadletter``, ``seti.job.failed`` and ``dsa.job.updated`` with status ``failed``
(each becomes a ``system_error``), and ``dsa.ese.updated`` (a candidate that is resolved or a
false positive releases its de-duplication key, so a new event of that source alerts again). It
also listens to the actors' heartbeats (core NATS ``live.actor.heartbeat``): an instance not heard
from for ``--alert-stall-factor`` heartbeat intervals raises one ``system_error``, released when it
is heard again. One alerter instance is active at a time (a lease, ``actors/leased.py``): the
others wait as ``standby`` and take over within ``--lease-ttl`` if it dies, so there is one Slack
sender and one watcher of heartbeats.

Handling an event never waits for Slack. The policy (``policy.py``: one alert per key while
active, token buckets per (type, severity), later summaries) is applied under a lock, and an alert
to send is written, together with the policy state and the event's id, in one SQLite transaction
of the actor's state (``DATA/alerter/state.sqlite``); only then is the event acked. A background
task delivers the queued alerts (``slack.send_alert``: retries with backoff on 429/5xx, honouring
``Retry-After``) and publishes an ``ops.alert.sent`` for every attempt, successful or not. An alert
whose delivery round failed stays queued and is tried again later (3 rounds in all), so neither a
Slack outage nor a restart loses one; after the last round its key is released.

The webhook URL is a secret: it is never logged, and it is scrubbed from error texts before they
are published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import asdict
from typing import Any, ClassVar

import aiohttp
import msgspec

from actors.alerter import policy, slack
from actors.leased import LeasedActor
from bus.lease import lease_key
from schemas.base import Event
from schemas.dsa import EseCandidateUpdated, PipelineJobUpdated
from schemas.ops import ActorHeartbeat, AlertRaised, AlertSent, DeadLettered
from schemas.seti import JobFailed

#: delivery rounds of one alert (each of up to --slack-max-attempts POSTs) before giving up
MAX_ROUNDS = 3
#: wait before the next round, by round number
ROUND_DELAY_S = (30.0, 300.0)

DDL = (
    "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS policy_state (k TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS queue (
        alert_id TEXT PRIMARY KEY, alert TEXT NOT NULL, correlation_id TEXT NOT NULL, queued_at REAL NOT NULL,
        next_at REAL NOT NULL, rounds INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS queue_next ON queue(next_at)",
)


# -- (de)serialising the policy's records --------------------------------------------------------
def _bkey(b: tuple[str, str]) -> str:
    return f"{b[0]}|{b[1]}"


def _unbkey(s: str) -> tuple[str, str]:
    a, _, b = s.partition("|")
    return a, b


def dump_state(s: policy.PolicyState) -> str:
    return json.dumps(
        {
            "active": sorted(s.active),
            "buckets": {_bkey(k): [v.tokens, v.updated_at] for k, v in s.buckets.items()},
            "suppressed": {
                _bkey(k): [v.count, v.first_at, v.last_at, list(v.source_ids)] for k, v in s.suppressed.items()
            },
        }
    )


def load_state(raw: str) -> policy.PolicyState:
    d = json.loads(raw)
    return policy.PolicyState(
        active=frozenset(d["active"]),
        buckets={_unbkey(k): policy.Bucket(v[0], v[1]) for k, v in d["buckets"].items()},
        suppressed={_unbkey(k): policy.Suppressed(v[0], v[1], v[2], tuple(v[3])) for k, v in d["suppressed"].items()},
    )


def dump_alert(a: policy.Alert) -> str:
    d = asdict(a)
    d["alert_type"], d["severity"] = str(a.alert_type), str(a.level)
    d["fields"] = [list(f) for f in a.fields]
    return json.dumps(d)


def load_alert(raw: str) -> policy.Alert:
    d = json.loads(raw)
    d["fields"] = tuple(tuple(f) for f in d["fields"])
    return policy.Alert(**d)


def alert_for(event: Event) -> policy.Alert | None:
    """The alert an event asks for (None: not alert-worthy). Raises ValueError for a bad one."""
    if isinstance(event, AlertRaised):
        return policy.Alert(
            alert_type=policy.AlertType(event.alert_type),
            message=event.message,
            severity=policy.Severity(event.severity),
            source_id=event.source_id,
            dedup_key=event.dedup_key or None,
            fields=tuple((k, v) for k, v in event.details.items()),
        )
    if isinstance(event, DeadLettered):
        return policy.Alert(
            alert_type=policy.AlertType.SYSTEM_ERROR,
            message=(
                f"event {event.original_subject} #{event.original_seq} dead-lettered by {event.consumer} "
                f"after {event.deliveries} deliveries: {event.reason[:500]}"
            ),
            dedup_key=f"deadletter:{event.consumer}:{event.original_seq}",
            fields=(("consumer", event.consumer), ("subject", event.original_subject)),
        )
    if isinstance(event, JobFailed):
        return policy.Alert(
            alert_type=policy.AlertType.SYSTEM_ERROR,
            message=f"SETI job {event.job_id} failed: {event.error[:500]}",
            dedup_key=f"seti-job:{event.job_id}",
        )
    if isinstance(event, PipelineJobUpdated) and event.status == "failed":
        return policy.Alert(
            alert_type=policy.AlertType.SYSTEM_ERROR,
            message=f"{event.job_type} job {event.job_id} failed: {event.error[:500] or 'no reason given'}",
            dedup_key=f"job:{event.job_id}",
        )
    return None


class AlerterActor(LeasedActor):
    role = "alerter"
    consumes: ClassVar[tuple[type[Event], ...]] = (
        AlertRaised,
        DeadLettered,
        JobFailed,
        PipelineJobUpdated,
        EseCandidateUpdated,
    )
    publishes: ClassVar[tuple[type[Event], ...]] = (AlertSent,)
    concurrency = 8

    def lease_name(self) -> str:
        """One Slack sender for the whole bus."""
        return lease_key("alerter")

    async def setup(self) -> None:
        self.config = policy.PolicyConfig(summary_after_s=self.settings.alert_summary_s)
        self.url = self.settings.slack_webhook_url
        self.channel = self.settings.slack_channel
        self.db = await self.open_state(DDL)
        async with self.db.execute("SELECT value FROM policy_state WHERE k = 'state'") as cur:
            row = await cur.fetchone()
        self.state = load_state(row[0]) if row else policy.PolicyState()
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.session = aiohttp.ClientSession()
        self.heard: dict[str, tuple[ActorHeartbeat, float]] = {}
        self.stalled: set[str] = set()
        self._hb_sub = await self.bus.nc.subscribe(ActorHeartbeat.subject(), cb=self._on_heartbeat)
        self.spawn(self._deliver_loop(), "deliver")
        self.spawn(self._summary_loop(), "summaries")
        self.spawn(self._stall_loop(), "stalls")
        if self.settings.slack_dry_run:
            self.log.info("Slack dry run: alerts are logged as they would be sent, and not sent")
        elif not self.url:
            self.log.info("no Slack webhook configured (--slack-webhook-url): alerts are recorded as not configured")

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self._hb_sub.unsubscribe()
        await self.session.close()
        await self.db.close()

    # -- deciding --------------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        if isinstance(event, EseCandidateUpdated):
            if event.status != "active":
                await self.release(f"{policy.AlertType.ESE_CANDIDATE}:{event.source_id}")
            return
        try:
            alert = alert_for(event)
        except ValueError as exc:
            self.log.warning("alert not understood; dropped", error=str(exc), event_id=event.id)
            return
        if alert is not None:
            await self.enqueue(alert, event.id, event.correlation_id)

    async def enqueue(self, alert: policy.Alert, event_id: str, correlation_id: str = "") -> policy.Verdict | None:
        """Apply the policy and, if it says send, queue the alert durably (None: event seen before)."""
        async with self.lock:
            async with self.db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event_id,)) as cur:
                if await cur.fetchone() is not None:
                    return None
            state, verdict = policy.decide(self.state, alert, time.time(), self.config)
            await self.db.execute("INSERT INTO seen VALUES (?)", (event_id,))
            if verdict is policy.Verdict.SEND:
                await self._queue(alert, correlation_id)
            await self._save(state)
        self.log.info("alert decided", alert_type=str(alert.alert_type), source_id=alert.source_id, verdict=verdict)
        if verdict is policy.Verdict.SEND:
            self.wake.set()
        return verdict

    async def release(self, key: str) -> None:
        async with self.lock:
            state = policy.release(self.state, key)
            if state is not self.state:
                await self._save(state)

    async def _queue(self, alert: policy.Alert, correlation_id: str) -> None:
        now = time.time()
        await self.db.execute(
            "INSERT INTO queue (alert_id, alert, correlation_id, queued_at, next_at) VALUES (?,?,?,?,?)",
            (uuid.uuid4().hex, dump_alert(alert), correlation_id, now, now),
        )

    async def _save(self, state: policy.PolicyState) -> None:
        await self.db.execute("INSERT OR REPLACE INTO policy_state VALUES ('state', ?)", (dump_state(state),))
        await self.db.commit()
        self.state = state

    # -- delivering ------------------------------------------------------------------------------
    def _scrub(self, text: str | None) -> str:
        text = text or ""
        return text.replace(self.url, "[webhook]") if self.url else text

    async def _deliver_loop(self) -> None:
        while True:
            async with (
                self.lock,
                self.db.execute(
                    "SELECT alert_id, alert, correlation_id, rounds, attempts, next_at FROM queue "
                    "ORDER BY next_at, queued_at LIMIT 1"
                ) as cur,
            ):
                row = await cur.fetchone()
            wait = 60.0 if row is None else row[5] - time.time()
            if wait > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=min(wait, 60.0))
                continue
            assert row is not None
            try:
                await self._deliver(row[0], load_alert(row[1]), row[2], int(row[3]), int(row[4]))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("delivery failed unexpectedly; retrying later")
                async with self.lock:
                    await self.db.execute("UPDATE queue SET next_at = ? WHERE alert_id = ?", (time.time() + 30, row[0]))
                    await self.db.commit()

    async def _deliver(self, alert_id: str, alert: policy.Alert, correlation_id: str, rounds: int, done: int) -> None:
        async def record(att: slack.Attempt, delivery: str = "slack") -> None:
            sent = AlertSent(
                alert_id=alert_id,
                alert_type=str(alert.alert_type),
                severity=str(alert.level),
                message=alert.message,
                channel=self.channel,
                success=att.ok,
                source_id=alert.source_id,
                attempt=done + att.number,
                status_code=att.status,
                error=self._scrub(att.error),
                sent_at=att.sent_at,
                delivery=delivery,
                producer=self.role,
                correlation_id=correlation_id,
            )
            try:
                await self.bus.publish(sent)
            except Exception as exc:
                self.log.warning("could not record an alert attempt", error=type(exc).__name__)

        if self.settings.slack_dry_run or not self.url:
            # Nothing is sent, so nothing failed: the history says which of the two it was.
            if self.settings.slack_dry_run:
                payload = slack.build_payload(
                    alert, channel=self.channel or None, link=self.settings.public_url or None
                )
                self.log.info("Slack dry run: would send", alert_id=alert_id, payload=payload)
                await record(slack.Attempt(1, time.time(), None, False, "dry run (--slack-dry-run)"), "dry_run")
            else:
                note = "not configured: no Slack webhook (--slack-webhook-url)"
                await record(slack.Attempt(1, time.time(), None, False, note), "not_configured")
            await self._drop(alert_id, alert)
            return
        delivery = await slack.send_alert(
            self.session,
            self.url,
            alert,
            channel=self.channel or None,
            link=self.settings.public_url or None,
            max_attempts=self.settings.slack_max_attempts,
            base_delay_s=self.settings.slack_retry_base_s,
            on_attempt=record,
        )
        self.log.info(
            "alert delivered" if delivery.ok else "alert delivery failed",
            alert_id=alert_id,
            attempts=len(delivery.attempts),
            status=delivery.final.status,
        )
        if delivery.ok:
            async with self.lock:
                await self.db.execute("DELETE FROM queue WHERE alert_id = ?", (alert_id,))
                await self.db.commit()
            return
        rounds += 1
        if rounds >= MAX_ROUNDS:
            await self._drop(alert_id, alert)
            return
        final = delivery.final
        delay = max(ROUND_DELAY_S[min(rounds - 1, len(ROUND_DELAY_S) - 1)], final.retry_after_s or 0.0)
        async with self.lock:
            await self.db.execute(
                "UPDATE queue SET rounds = ?, attempts = ?, next_at = ? WHERE alert_id = ?",
                (rounds, done + len(delivery.attempts), time.time() + delay, alert_id),
            )
            await self.db.commit()

    async def _drop(self, alert_id: str, alert: policy.Alert) -> None:
        """Give up on an alert; its key is released so that the event can alert again."""
        async with self.lock:
            await self.db.execute("DELETE FROM queue WHERE alert_id = ?", (alert_id,))
            key = alert.key
            await self._save(policy.release(self.state, key) if key else self.state)

    # -- summaries and stalled actors ------------------------------------------------------------
    async def _summary_loop(self) -> None:
        interval = max(0.2, min(5.0, self.config.summary_after_s / 4))
        while True:
            await asyncio.sleep(interval)
            async with self.lock:
                state, summaries = policy.due_summaries(self.state, time.time(), self.config)
                if not summaries:
                    continue
                for s in summaries:
                    await self._queue(s, "")
                await self._save(state)
            self.log.info("suppression summaries queued", n=len(summaries))
            self.wake.set()

    async def _on_heartbeat(self, msg: Any) -> None:
        try:
            hb = msgspec.json.decode(msg.data, type=ActorHeartbeat)
        except msgspec.MsgspecError:
            return
        self.heard[hb.instance] = (hb, time.monotonic())
        if hb.instance in self.stalled:
            self.stalled.discard(hb.instance)
            await self.release(f"stalled:{hb.instance}")

    async def _stall_loop(self) -> None:
        hb_s = self.settings.heartbeat_s
        limit = self.settings.alert_stall_factor * hb_s
        while True:
            await asyncio.sleep(max(0.1, hb_s))
            now = time.monotonic()
            for instance, (hb, seen) in list(self.heard.items()):
                silent = now - seen
                if instance == self.instance:
                    continue
                if silent > max(3600.0, 10 * limit):
                    self.heard.pop(instance, None)  # long gone: forget it
                    continue
                if silent > limit and instance not in self.stalled:
                    self.stalled.add(instance)
                    alert = policy.Alert(
                        alert_type=policy.AlertType.SYSTEM_ERROR,
                        message=(
                            f"actor {hb.role} ({instance} on {hb.host}) has not been heard from for "
                            f"{silent:.0f} s: stalled or stopped"
                        ),
                        dedup_key=f"stalled:{instance}",
                        fields=(("role", hb.role), ("instance", instance)),
                    )
                    await self.enqueue(alert, f"stalled:{instance}:{hb.started_at}:{int(time.time())}")
