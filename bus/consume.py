"""Durable pull consumers: how every actor takes work from the stream.

All instances of one role bind to one durable consumer named after the role, so JetStream hands
each message to exactly one of them and adding a process adds capacity.

What happens to one message:

* it decodes and the handler returns  -> ``ack``
* the handler raises                   -> ``nak`` with a growing delay, so it comes back later
* the handler runs long                -> ``in_progress`` every third of ``ack_wait``
* it has failed ``max_deliveries`` times, or it cannot be decoded at all
                                        -> an ``ops.deadletter`` event, then ``term``
* the handler raises :class:`Defer`    -> ``nak`` with the deferral's delay, NOT counted as a failure

A deferral ("not now, someone else's turn": the searchers' fair share) is a nak too, and JetStream
counts every delivery alike. So a consumer whose spec says ``defer_ledger`` keeps each message's
deferrals in the ``DEFERRALS`` KV bucket (key ``<consumer>.<stream seq>``, shared by every
instance, since the next delivery may go to another one); a message's *attempt* is its delivery
count less its deferrals, and the attempt is what the delivery limit, the backoff and the
handler's ``delivery()`` see.

The delivery limit is enforced here rather than by the server's ``max_deliver``. The server, at its
limit, silently stops delivering; we want a dead-letter event with the reason, and we also want to
catch a message that crashes its process on every delivery (the handler never gets to raise), which
we see as a delivery count past the limit on arrival.

A poison message never blocks the ones behind it: ``max_ack_pending`` is large and a nak'd message
waits out its delay on the server while the consumer moves on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

import logs
from bus.kv import ensure_kv
from bus.publish import publish
from bus.stream import STREAM
from schemas.base import Event
from schemas.events import decode
from schemas.ops import DeadLettered
from telemetry import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
    HANDLER_SECONDS,
    REDELIVERIES,
)

log = logs.get("bus.consume")

Handler = Callable[[Event, Msg], Awaitable[None]]
LAG_INTERVAL_S = 5.0
#: the bucket of deferral counts, and how long a count outlives its last deferral (a deferred
#: message can wait long behind busy workers; a forgotten count only costs it retries)
DEFERRALS_BUCKET = "DEFERRALS"
DEFERRALS_TTL_S = 7 * 24 * 3600.0
#: deferral counts this process remembers itself (the oldest go first)
LOCAL_DEFERRALS_KEPT = 10_000

#: the message being handled: its attempt (deliveries less deferrals, 1 the first time) and its
#: deferrals so far; set for the handler's task
ATTEMPT: ContextVar[int] = ContextVar("attempt", default=1)
DEFERRALS: ContextVar[int] = ContextVar("deferrals", default=0)


class Defer(Exception):
    """Raised by a handler: put this message back for ``delay_s`` without counting a failed delivery."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"deferred {delay_s:g} s")
        self.delay_s = delay_s
        self.reason = reason


@dataclass(frozen=True)
class ConsumerSpec:
    name: str
    filter_subjects: list[str]
    max_deliveries: int = 5
    ack_wait_s: float = 30.0
    concurrency: int = 1
    #: nak delays by delivery number (the last one repeats)
    backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    deliver_new: bool = False
    producer: str = ""
    #: keep deferral counts in the shared ``DEFERRALS`` bucket (else in this process only)
    defer_ledger: bool = False
    kv_replicas: int = 1

    def backoff(self, delivery: int) -> float:
        return self.backoff_s[min(delivery - 1, len(self.backoff_s) - 1)]


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec) -> None:
    config = ConsumerConfig(
        name=spec.name,
        durable_name=spec.name,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait_s,
        max_deliver=-1,
        filter_subjects=spec.filter_subjects if len(spec.filter_subjects) > 1 else None,
        filter_subject=spec.filter_subjects[0] if len(spec.filter_subjects) == 1 else None,
        max_ack_pending=max(1000, spec.concurrency * 4),
        deliver_policy=DeliverPolicy.NEW if spec.deliver_new else DeliverPolicy.ALL,
    )
    await js.add_consumer(STREAM, config)


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    in_flight: int = 0
    last_error: str = ""
    started: float = field(default_factory=time.time)


class Consumer:
    """Runs one durable consumer until ``stop()``; see the module docstring for the contract."""

    def __init__(self, js: JetStreamContext, spec: ConsumerSpec, handler: Handler) -> None:
        self.js = js
        self.spec = spec
        self.handler = handler
        self.stats = ConsumerStats()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._ledger: KeyValue | None = None
        self._local_deferrals: dict[int, int] = {}

    async def start(self) -> None:
        await self._with_retry(lambda: ensure_consumer(self.js, self.spec))
        if self.spec.defer_ledger:
            ledger = await self._with_retry(
                lambda: ensure_kv(
                    self.js,
                    DEFERRALS_BUCKET,
                    replicas=self.spec.kv_replicas,
                    ttl_s=DEFERRALS_TTL_S,
                    description="deferrals per message, not counted as failed deliveries (bus.consume)",
                )
            )
            assert isinstance(ledger, KeyValue)
            self._ledger = ledger
        sub = await self._with_retry(lambda: self.js.pull_subscribe_bind(durable=self.spec.name, stream=STREAM))
        assert isinstance(sub, JetStreamContext.PullSubscription)
        self._sub = sub
        self._loop_task = asyncio.create_task(self._loop(), name=f"consumer:{self.spec.name}")
        self._lag_task = asyncio.create_task(self._watch_lag(), name=f"consumer-lag:{self.spec.name}")

    async def _watch_lag(self, interval_s: float = LAG_INTERVAL_S) -> None:
        """Keep the lag gauges current: one consumer_info per consumer per interval."""
        name = self.spec.name
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):  # a broker restart: the next round tries again
                info = await self.js.consumer_info(STREAM, name)
                CONSUMER_PENDING.labels(name).set(info.num_pending or 0)
                CONSUMER_ACK_PENDING.labels(name).set(info.num_ack_pending or 0)
                CONSUMER_REDELIVERED.labels(name).set(info.num_redelivered or 0)
            await asyncio.sleep(interval_s)

    async def _with_retry(self, fn: Callable[[], Awaitable[object]]) -> object:  # type: ignore[return]
        delay = 0.1
        while True:
            try:
                return await fn()
            except (
                nats.errors.TimeoutError,
                nats.js.errors.ServiceUnavailableError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.NoRespondersError,
            ) as exc:
                log.warning("consumer setup retry", consumer=self.spec.name, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _loop(self) -> None:
        limit = self.spec.concurrency
        while not self._stopping.is_set():
            free = limit - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await self._sub.fetch(free, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker restarting, connection reconnecting, ...
                log.warning("fetch failed; retrying", consumer=self.spec.name, error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _keep_alive(self, msg: Msg) -> None:
        interval = max(self.spec.ack_wait_s / 3.0, 0.2)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    # -- deferrals ---------------------------------------------------------------------------------
    def _ledger_key(self, seq: int) -> str:
        return f"{self.spec.name}.{seq}"

    async def _deferrals(self, seq: int, delivery: int) -> int:
        """How many of this message's deliveries were deferrals (0 on a first delivery)."""
        local = self._local_deferrals.get(seq, 0)
        if delivery <= 1 or self._ledger is None:
            return local
        try:
            entry = await self._ledger.get(self._ledger_key(seq))
            return max(local, int(entry.value or b"0"))
        except nats.js.errors.NotFoundError:  # never deferred, or its count expired
            return local
        except Exception as exc:  # the bucket unreachable: count what this process saw
            log.warning("deferral count unavailable", seq=seq, error=f"{type(exc).__name__}: {exc}")
            return local

    async def _defer(self, msg: Msg, seq: int, deferrals: int, defer: Defer) -> None:
        count = deferrals + 1
        self._local_deferrals[seq] = count
        while len(self._local_deferrals) > LOCAL_DEFERRALS_KEPT:  # those handled by other instances
            del self._local_deferrals[next(iter(self._local_deferrals))]
        if self._ledger is not None:
            try:
                await self._ledger.put(self._ledger_key(seq), str(count).encode())
            except Exception as exc:  # then this deferral may count as a delivery elsewhere
                log.warning("deferral not recorded", seq=seq, error=f"{type(exc).__name__}: {exc}")
        log.debug("deferred", seq=seq, deferrals=count, delay_s=defer.delay_s, reason=defer.reason)
        with contextlib.suppress(Exception):
            await msg.nak(delay=defer.delay_s)

    async def _forget(self, seq: int, deferrals: int) -> None:
        """The message is done with (acked, terminated): drop its deferral count."""
        if self._local_deferrals.pop(seq, None) is None and not deferrals:
            return
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                await self._ledger.delete(self._ledger_key(seq))

    async def _handle(self, msg: Msg) -> None:
        md = msg.metadata
        seq = md.sequence.stream
        deferrals = await self._deferrals(seq, md.num_delivered)
        delivery = md.num_delivered - deferrals  # the attempt: deferrals are not failed deliveries
        try:
            event = decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            await self._dead_letter(msg, delivery, seq, f"undecodable message: {exc}", "")
            return
        bound = structlog.contextvars.bound_contextvars(
            event_id=event.id, correlation_id=event.correlation_id, event_type=event.type, consumer=self.spec.name
        )
        with bound:
            if delivery > 1:
                REDELIVERIES.labels(self.spec.name).inc()
            if delivery > self.spec.max_deliveries:
                await self._dead_letter(
                    msg,
                    delivery,
                    seq,
                    f"delivered {delivery} times without an answer (handler crashed or exceeded ack_wait)",
                    event.correlation_id,
                )
                await self._forget(seq, deferrals)
                return
            ATTEMPT.set(delivery)
            DEFERRALS.set(deferrals)
            self.stats.in_flight += 1
            keep_alive = asyncio.create_task(self._keep_alive(msg))
            started = time.perf_counter()
            outcome = "failed"
            try:
                await self.handler(event, msg)
                outcome = "handled"
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            except Defer as defer:
                outcome = "deferred"
                await self._defer(msg, seq, deferrals, defer)
            except Exception as exc:
                self.stats.failed += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("handler failed", delivery=delivery, seq=seq)
                if delivery >= self.spec.max_deliveries:
                    await self._dead_letter(msg, delivery, seq, self.stats.last_error, event.correlation_id)
                    await self._forget(seq, deferrals)
                else:
                    with contextlib.suppress(Exception):
                        await msg.nak(delay=self.spec.backoff(delivery))
            else:
                self.stats.handled += 1
                try:
                    await msg.ack()
                except Exception as exc:  # the event will come back; handlers are idempotent
                    log.warning("ack failed", error=str(exc))
                log.debug("handled", seq=seq)
                await self._forget(seq, deferrals)
            finally:
                keep_alive.cancel()
                self.stats.in_flight -= 1
                HANDLER_SECONDS.labels(self.spec.name, event.type).observe(time.perf_counter() - started)
                EVENTS_CONSUMED.labels(self.spec.name, event.type, outcome).inc()

    async def _dead_letter(self, msg: Msg, delivery: int, seq: int, reason: str, correlation_id: str) -> None:
        self.stats.dead_lettered += 1
        DEAD_LETTERS.labels(self.spec.name).inc()
        try:
            payload, encoding = msg.data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(msg.data).decode(), "base64"
        log.error("dead-lettered", subject=msg.subject, seq=seq, delivery=delivery, reason=reason)
        dead = DeadLettered(
            consumer=self.spec.name,
            original_subject=msg.subject,
            original_seq=seq,
            deliveries=delivery,
            reason=reason[:2000],
            payload=payload[:65536],
            payload_encoding=encoding,
            producer=self.spec.producer or self.spec.name,
            correlation_id=correlation_id,
        )
        try:
            await publish(self.js, dead)
            await msg.term()
        except Exception as exc:  # not terminated: it will be redelivered and dead-lettered again
            log.warning("dead-letter publish failed", error=str(exc))

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop fetching, let in-flight handlers finish (up to ``timeout``), then leave."""
        self._stopping.set()
        if self._lag_task is not None:
            self._lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lag_task
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:  # not acked: JetStream redelivers it to another instance
                task.cancel()
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
