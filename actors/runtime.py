"""The actor shell: what every actor has in common, so each actor's own module stays thin.

An actor declares its ``role``, the event classes it ``consumes`` and those it ``publishes``; it
implements ``handle(event)`` by calling pure science functions and publishing what follows. The
runtime gives it:

* one durable consumer for the role (shared by every instance of that role, on any host);
* ``run_cpu`` to run heavy work in a process pool, so the event loop keeps acking and serving;
* a heartbeat on ``live.actor.heartbeat`` that the edge shows at ``GET /api/actors``;
* logging with the event id and correlation id bound, and a failing handler that is logged and
  retried (see ``bus.consume``) instead of stopping the actor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import ctypes
import ctypes.util
import functools
import gc
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import aiosqlite
import msgspec
import psutil

import logs
from actors import outbox
from bus import Bus
from bus.consume import ATTEMPT, Consumer, ConsumerSpec
from schemas.base import E, Event
from schemas.ops import ActorHeartbeat
from settings import Settings

R = TypeVar("R")

_pool: concurrent.futures.ProcessPoolExecutor | None = None
_delivery: contextvars.ContextVar[int] = contextvars.ContextVar("delivery", default=1)


def _die_with(parent_pid: int) -> None:
    """Pool-worker initializer: exit when the actor process that owns the pool is gone (and pin
    the mmap threshold, `pin_mmap_threshold`).

    With forkserver a worker's parent is the fork server, not the actor, so a SIGKILLed actor
    would otherwise leave its workers waiting on their queue forever.
    """

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                alive = psutil.Process(parent_pid).status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                alive = False
            if not alive:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-actor", daemon=True).start()
    pin_mmap_threshold()


def call_and_release(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run one large task (a pool task, a search in a thread), then hand the heap it freed back
    to the OS (``malloc_trim``).

    A task that handled a large file (an export of a big search) frees its arrays, but glibc keeps
    the freed heap for reuse, so the worker stayed hundreds of MB above its start (the fuzz run:
    172 -> 463 MB after one such export; trimmed, an export of 256 MB of data goes back to within
    2 MB of where it started). The same holds for the searches the searcher runs in threads of
    its own process: five searches of large zero-filled .h5 files left it 247-262 MB, trimmed
    after each 234 MB every time. A collection and a trim take milliseconds next to such a task.
    """
    try:
        return fn(*args, **kwargs)
    finally:
        gc.collect()
        _malloc_trim()


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _malloc_trim() -> None:
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: allocations from this size up get their own mapping, returned to the OS when freed
MMAP_THRESHOLD = 1 << 20


def pin_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> None:
    """Keep large allocations out of the heap, so a large job leaves no heap behind it.

    glibc serves an allocation of at least the mmap threshold (128 kB at start) with its own
    mapping, but it raises that threshold, up to 32 MB, each time such a mapping is freed. After
    one large file every array below 32 MB then comes from the heap, where the next job's small
    objects pin it: the 30-minute fuzz run's pool worker stepped up after each large job, by
    20-60 MB that ``malloc_trim`` could not give back (the step depended on the job's shapes).
    Setting the threshold fixes it (and turns the dynamic raise off); a trim threshold of the same
    size gives a freed top of the heap back at once. With it the same sequence of exports settles
    within 7 % of the first job and stays there (it wandered 206-244 MB without it).
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, nbytes)
        mallopt(_M_TRIM_THRESHOLD, nbytes)


#: how long numba's OpenMP threads spin at the end of a parallel region before they sleep
#: (libgomp reads it when it loads; its default is 300,000 iterations). The pool runs one worker
#: per core and each kernel one thread per core, so two jobs at once (a solve beside an image, a
#: search beside either) put four threads on two cores, and CLEAN's minor cycle is thousands of
#: short parallel regions: with the default spin each process's threads waited out the other's
#: spinners. bench/bench_openmp_spin.py, 1500 minor-cycle iterations, median of 3 (quiet
#: machine, 2 cores): libgomp's default 1.03 s alone, 10.75 s (4.7-17.0) beside a second one;
#: this bounded spin 1.08 s alone, 2.50 s beside; never spinning (OMP_WAIT_POLICY=PASSIVE) 1.28 s
#: alone (a futex wake-up per region), 1.91 s beside
GOMP_SPINCOUNT = "3000"


def bounded_openmp_spin() -> None:
    """Set `GOMP_SPINCOUNT` for this process and the processes it starts, unless already set.

    libgomp reads it once, when it loads (numba's first parallel kernel): call this before any.
    ``run.py`` does at start (searches run in its threads); `process_pool` does before the fork
    server starts (which copies the environment to every worker). An operator's own
    GOMP_SPINCOUNT or OMP_WAIT_POLICY wins."""
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)


def process_pool() -> concurrent.futures.ProcessPoolExecutor:
    """One pool per process, sized to the machine; forkserver because forking an event loop is unsafe.

    The fork server, started with the pool's first task, copies this process's environment: the
    OpenMP spin is bounded here, before it starts (`bounded_openmp_spin`)."""
    global _pool
    if _pool is None:
        bounded_openmp_spin()
        _pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=os.cpu_count() or 2,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_die_with,
            initargs=(os.getpid(),),
        )
    return _pool


def shutdown_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None


class Actor:
    role: ClassVar[str] = ""
    consumes: ClassVar[tuple[type[Event], ...]] = ()
    publishes: ClassVar[tuple[type[Event], ...]] = ()
    #: messages handled at once by one instance
    concurrency: ClassVar[int] = 1
    #: start a new role at the head of the stream rather than replaying history
    deliver_new: ClassVar[bool] = False
    #: the handler may raise ``bus.consume.Defer``: keep deferral counts in the shared ledger so a
    #: deferral is never counted as a failed delivery, whichever instance gets the message next
    defers: ClassVar[bool] = False

    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.instance = f"{self.role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log = logs.get(f"actors.{self.role}").bind(actor=self.role)
        self.started_at = datetime.now(UTC)
        self._consumer: Consumer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        #: "active", or "standby" while a single-active role waits for its lease (actors/leased.py)
        self.activity = "active"

    # -- what an actor implements --------------------------------------------------------------
    async def setup(self) -> None:
        """Open resources, subscribe to commands, start background tasks (before consuming)."""

    async def handle(self, event: Event) -> None:
        """Handle one consumed event. Raise to have it retried; return to have it acked."""
        raise NotImplementedError

    async def teardown(self) -> None:
        """Close what ``setup`` opened."""

    # -- what the runtime provides -------------------------------------------------------------
    async def publish(self, event: E) -> E:
        if not event.producer:
            event = msgspec.structs.replace(event, producer=self.role)
        await self.bus.publish(event)
        return event

    async def open_state(self, ddl: Iterable[str], *, synchronous: str = "FULL") -> aiosqlite.Connection:
        """The actor's own durable state: SQLite at ``DATA/<role>/state.sqlite`` with its schema.

        WAL and a busy timeout, because several instances of a role on one host share the file.
        ``synchronous="NORMAL"`` trades the last transactions on a power cut for speed, which is
        safe for state that redelivered events rebuild. The state always has an outbox
        (``actors/outbox.py``); whatever it still holds from before a crash is published here,
        before the actor takes any event.
        """
        path = self.settings.data_dir / self.role / "state.sqlite"
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA busy_timeout=10000")
        await db.execute(f"PRAGMA synchronous={synchronous}")
        for statement in (*ddl, outbox.DDL):
            await db.execute(statement)
        await db.commit()
        await outbox.flush(db, self.bus)
        return db

    async def run_cpu(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(process_pool(), functools.partial(call_and_release, fn, *args, **kwargs))

    async def run_thread(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """A background task that is logged if it dies and cancelled at stop."""
        task = asyncio.create_task(coro, name=f"{self.role}:{name}")

        def done(t: asyncio.Task[Any]) -> None:
            if not t.cancelled() and t.exception() is not None:
                self.log.error("background task died", task=name, error=repr(t.exception()))

        task.add_done_callback(done)
        self._tasks.append(task)
        return task

    # -- lifecycle -----------------------------------------------------------------------------
    def consumer_spec(self) -> ConsumerSpec:
        return ConsumerSpec(
            name=self.role,
            filter_subjects=[c.subject() for c in self.consumes],
            max_deliveries=self.settings.max_deliveries,
            ack_wait_s=self.settings.ack_wait_s,
            concurrency=self.concurrency,
            deliver_new=self.deliver_new,
            producer=self.role,
            defer_ledger=self.defers,
            kv_replicas=self.settings.kv_replicas,
        )

    def delivery(self) -> int:
        """How many times the event being handled has been attempted (1 the first time).

        Deliveries that the handler deferred (``bus.consume.Defer``) are not attempts.

        A handler can use it to give up gracefully on its last delivery (``settings.max_deliveries``)
        instead of leaving the work to be dead-lettered.
        """
        return _delivery.get()

    async def _dispatch(self, event: Event, msg: Any) -> None:
        token = _delivery.set(ATTEMPT.get())
        self.log.info("handling", event_id=event.id, correlation_id=event.correlation_id, type=event.type)
        try:
            await self.handle(event)
        finally:
            _delivery.reset(token)

    async def start(self) -> None:
        await self.setup()
        if self.consumes:
            self._consumer = Consumer(self.bus.js, self.consumer_spec(), self._dispatch)
            await self._consumer.start()
        self.spawn(self._heartbeat(), "heartbeat")
        self.log.info("actor started", instance=self.instance)

    async def stop(self, timeout: float = 5.0) -> None:
        if self._consumer is not None:
            await self._consumer.stop(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.teardown()
        self.log.info("actor stopped", instance=self.instance)

    def heartbeat(self) -> ActorHeartbeat:
        stats = self._consumer.stats if self._consumer else None
        return ActorHeartbeat(
            role=self.role,
            instance=self.instance,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=self.started_at.isoformat().replace("+00:00", "Z"),
            handled=stats.handled if stats else 0,
            failed=stats.failed if stats else 0,
            in_flight=stats.in_flight if stats else 0,
            producer=self.role,
            state=self.activity,
        )

    async def _heartbeat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.bus.publish_live(self.heartbeat())
            await asyncio.sleep(self.settings.heartbeat_s)


def monotonic() -> float:
    return time.monotonic()
