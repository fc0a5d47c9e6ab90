"""Single-active roles: an actor that works only while it holds its lease (``bus.lease``).

Most roles scale by adding instances that share one durable consumer. A few must not run twice:
the watcher of one incoming directory (two scanners would group and convert the same files) and
the alerter (two would both post to Slack and both watch every heartbeat). Their instances all
start, publish heartbeats with ``state: standby`` and wait; the one that takes the lease runs
``setup``, consumes, and shows ``state: active``. When the lease is lost (partition, a stalled
process) the holder stops consuming, cancels what ``setup`` spawned and tears down *before* the
lease can expire on the server, then waits again; a clean stop releases the lease so a standby
takes over at its next poll (about a second) instead of after the lease's time-to-live.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors

from actors.runtime import Actor
from bus.consume import Consumer
from bus.lease import Lease, lease_bucket


class LeasedActor(Actor):
    """An ``Actor`` of which one instance per ``lease_name()`` is active at a time."""

    lease: Lease | None = None

    def lease_name(self) -> str:
        """The KV key of this instance's lease; instances with the same key exclude each other."""
        raise NotImplementedError

    async def start(self) -> None:
        kv, ttl = await lease_bucket(self.bus.js, replicas=self.settings.kv_replicas, ttl_s=self.settings.lease_ttl_s)
        self.lease = Lease(kv, self.lease_name(), self.instance, ttl_s=ttl)
        self.activity = "standby"
        self._work: list[asyncio.Task[Any]] = []
        self._active = False
        self._lease_task: asyncio.Task[Any] | None = None
        # A free lease is taken before start() returns, so a lone instance is working when it
        # returns, as any other actor is; a taken one leaves this instance waiting in the background.
        try:
            acquired = await asyncio.wait_for(self.lease.try_acquire(), max(1.0, ttl))
        except (nats.errors.Error, TimeoutError) as exc:  # a new R3 bucket still electing its leader
            self.log.warning("lease bucket not answering yet; waiting for it", error=repr(exc))
            acquired = False
        if acquired:
            try:
                await self._become_active()
            except BaseException:
                await self._stop_work(timeout=1.0)
                await self.lease.release()
                raise
        self.spawn(self._heartbeat(), "heartbeat")
        self._lease_task = asyncio.create_task(
            self.lease.run(self._become_active, self._become_standby, on_waiting=self._waiting, acquired=acquired),
            name=f"{self.role}:lease",
        )
        self.log.info("actor started", instance=self.instance, lease=self.lease.key, state=self.activity)

    def _waiting(self, holder: str) -> None:
        assert self.lease is not None
        self.log.info(f"standby: waiting for the lease held by {holder}", lease=self.lease.key, holder=holder)

    async def _beat(self) -> None:
        with contextlib.suppress(Exception):
            await self.bus.publish_live(self.heartbeat())

    async def _become_active(self) -> None:
        before = set(self._tasks)
        self._active = True
        try:
            await self.setup()
        finally:  # what setup spawned is the work, stopped with it
            self._work = [t for t in self._tasks if t not in before]
        if self.consumes:
            self._consumer = Consumer(self.bus.js, self.consumer_spec(), self._dispatch)
            await self._consumer.start()
        self.activity = "active"
        await self._beat()
        assert self.lease is not None
        self.log.info("active: holding the lease", lease=self.lease.key)

    async def _become_standby(self, reason: str) -> None:
        self.activity = "standby"
        # The lease expires on the server a quarter of its TTL after we got here: be quick.
        assert self.lease is not None
        await self._stop_work(timeout=self.lease.ttl_s * 0.15)
        await self._beat()
        self.log.warning("standby: lease lost, work stopped", reason=reason)

    async def _stop_work(self, timeout: float) -> None:
        if not self._active:
            return
        self._active = False
        # Background work first (a scan, a delivery loop: they would start something new), then
        # the consumer, which lets in-flight handlers finish for up to ``timeout``.
        work, self._work = self._work, []
        self._tasks = [t for t in self._tasks if t not in work]
        for task in work:
            task.cancel()
        for task in work:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop(timeout)
            self._consumer = None
        with contextlib.suppress(Exception):
            await self.teardown()

    async def stop(self, timeout: float = 5.0) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._lease_task
        await self._stop_work(timeout)
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.lease.release(), 2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.log.info("actor stopped", instance=self.instance)
