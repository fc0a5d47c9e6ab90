"""Leases in JetStream KV: one active instance of a role that must not run twice.

A lease is one key in the ``leases`` bucket whose value is the holder's instance id. Why it is
built this way:

* **Taking it** is ``create`` (succeeds only when the key is absent), so two instances racing for
  a free lease cannot both win: JetStream orders the writes and the second sees a conflict.
* **Keeping it** is ``update(key, value, last=revision)`` every ``renew_s``: a compare-and-set on
  the revision, so a holder whose lease was taken over cannot silently write it back.
* **Expiry** is the bucket's ``max_age`` (``ttl_s``): a holder that stops renewing (SIGKILL, a
  lost host, a partition) loses its key ``ttl_s`` after its last renew *as the server saw it*.
  No wall clocks are compared, so clock skew between hosts does not matter.
* **A holder gives up first.** It counts ``ttl_s`` (less a margin) from the moment it *sent* its
  last successful renew, on its own monotonic clock. The server applied that renew later than it
  was sent, so the server's expiry is later still: the holder has stopped working before anyone
  else can take the key.
* **Release** on a clean shutdown deletes the key (CAS on the revision), so the standby takes over
  at its next poll instead of waiting for expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

import logs
from bus.kv import SMALL_BLOCKS_MAX_BYTES, ensure_kv

BUCKET = "leases"

#: the leases bucket's cap: small file blocks (``bus.kv.ensure_kv``). Every renew (each lease
#: every ttl/3 s, whether or not the system is busy) appends a record to the stream's last block,
#: and the server never compacts the last block: with the default 4 MB blocks it grew by
#: ~8.5 kB a minute with two leases, and every write or read re-loads the whole block into a
#: buffer of its size class (256 kB, 1 MB from ~30 min of uptime, 4 MB from ~2 h, and the server
#: hands that buffer on to the next block when the 4 MB block rolls over, ~8 h). With 32 kB
#: blocks an old block is dropped as soon as its records are superseded or expired, and the
#: loaded block stays in the smallest buffer. ~850 leases of ~140 bytes fit under the cap.
MAX_BYTES = SMALL_BLOCKS_MAX_BYTES

#: a holder stops this long before the server would expire its key (scheduling, GC pauses)
MARGIN_FRACTION = 0.25

log = logs.get("bus.lease")


async def lease_bucket(js: JetStreamContext, *, replicas: int, ttl_s: float) -> tuple[KeyValue, float]:
    """The leases bucket and the lease time-to-live in force: the bucket's ``max_age``.

    The bucket's value wins over ``ttl_s``: a holder that counted a longer TTL than the server
    applies would keep working after its key expired and another took it. To change the TTL,
    stop the single-active roles and delete the bucket (``nats kv del leases``).
    """
    kv = await ensure_kv(
        js,
        BUCKET,
        replicas=replicas,
        ttl_s=ttl_s,
        description="single-active role leases (bus/lease.py)",
        max_bytes=MAX_BYTES,
    )
    info = await js.stream_info(f"KV_{BUCKET}")
    in_force = float(info.config.max_age or 0.0)
    if in_force <= 0:
        raise RuntimeError(f"the {BUCKET} KV bucket has no max_age: leases would never expire")
    if abs(in_force - ttl_s) > 0.01:
        log.warning(
            "lease TTL differs from the settings; the bucket's is used",
            bucket=BUCKET,
            bucket_ttl_s=in_force,
            setting_ttl_s=ttl_s,
        )
    return kv, in_force


def lease_key(*parts: str) -> str:
    """A valid KV key from free text (a role, a directory path): unsafe characters become ``_``."""
    out = []
    for part in parts:
        out.append("".join(c if c.isalnum() or c in "-_=" else "_" for c in part).strip("_") or "_")
    return ".".join(out)


class Lease:
    """One instance's claim on one key. ``run`` keeps it (or waits for it) until cancelled."""

    def __init__(
        self,
        kv: KeyValue,
        key: str,
        holder: str,
        *,
        ttl_s: float,
        renew_s: float | None = None,
        poll_s: float | None = None,
    ) -> None:
        self.kv = kv
        self.key = key
        self.holder = holder
        self.ttl_s = ttl_s
        self.renew_s = renew_s if renew_s is not None else max(0.2, ttl_s / 3)
        self.poll_s = poll_s if poll_s is not None else max(0.2, min(1.0, ttl_s / 6))
        self.revision: int | None = None
        #: monotonic time after which this holder must consider the lease lost
        self.valid_until = 0.0
        #: who holds it when it is not us ("" unknown)
        self.other = ""

    @property
    def held(self) -> bool:
        return self.revision is not None and time.monotonic() < self.valid_until

    def _validity(self, sent_at: float) -> float:
        return sent_at + self.ttl_s * (1.0 - MARGIN_FRACTION)

    async def try_acquire(self) -> bool:
        """Take the lease if it is free. False (and ``other`` set) when someone else holds it."""
        sent = time.monotonic()
        try:
            rev = await self.kv.create(self.key, self.holder.encode())
        except nats.js.errors.KeyNotFoundError:
            # nats-py's create looks the key up after a conflict; it expired in between
            self.other = ""
            return False
        except nats.js.errors.KeyWrongLastSequenceError:
            try:
                entry = await self.kv.get(self.key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                self.other = ""  # expired or released meanwhile: try again at the next poll
                return False
            self.other = (entry.value or b"").decode(errors="replace")
            if self.other != self.holder:
                return False
            # Our own key (a renew whose reply was lost, or one we gave up on). Its age on the
            # server runs from an earlier write, so claim it anew with a CAS write, which restarts
            # the age, rather than trusting it.
            sent = time.monotonic()
            try:
                rev = await self.kv.update(self.key, self.holder.encode(), last=entry.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
        self.revision = rev
        self.valid_until = self._validity(sent)
        self.other = ""
        return True

    async def renew(self) -> bool:
        """Extend the lease. False when it was lost: taken by another or expired (CAS conflict)."""
        if self.revision is None:
            return False
        sent = time.monotonic()
        try:
            self.revision = await self.kv.update(self.key, self.holder.encode(), last=self.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            self.revision = None
            self.valid_until = 0.0
            return False
        self.valid_until = self._validity(sent)
        return True

    async def release(self) -> None:
        """Give the lease up at once (clean shutdown), if it is still ours."""
        if self.revision is None:
            return
        rev, self.revision, self.valid_until = self.revision, None, 0.0
        with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
            await self.kv.delete(self.key, last=rev)

    async def current_holder(self) -> str:
        try:
            entry = await self.kv.get(self.key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return ""
        return (entry.value or b"").decode(errors="replace")

    async def run(
        self,
        on_acquired: Callable[[], Awaitable[Any]],
        on_lost: Callable[[str], Awaitable[Any]],
        *,
        on_waiting: Callable[[str], Any] | None = None,
        acquired: bool = False,
    ) -> None:
        """Wait for the lease, hold it, and call back on every change, until cancelled.

        ``on_acquired`` runs once the lease is ours; ``on_lost(reason)`` when it is no longer ours
        (before another instance can take it, see the module docstring). ``on_waiting(holder)`` is
        called once per holder seen while waiting, so a standby says who it waits for without
        repeating itself. ``acquired``: the caller already took the lease with ``try_acquire`` and
        started the work; begin by keeping it.
        """
        announced = None
        if acquired:
            reason = await self._keep()
            log.warning("lease lost; stopping the work", key=self.key, holder=self.holder, reason=reason)
            await on_lost(reason)
        while True:
            try:
                got = await asyncio.wait_for(self.try_acquire(), timeout=max(1.0, self.ttl_s))
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("lease: could not reach the bucket; retrying", key=self.key, error=repr(exc))
                got = False
            if not got:
                if on_waiting is not None and self.other and self.other != announced:
                    announced = self.other
                    on_waiting(self.other)
                await asyncio.sleep(self.poll_s)
                continue
            announced = None
            log.info("lease acquired", key=self.key, holder=self.holder)
            try:
                await on_acquired()
            except Exception as exc:  # could not start the work: hand the lease on, try again later
                log.exception("lease: starting the work failed; releasing", key=self.key)
                await on_lost(f"starting the work failed: {exc!r}")
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    await self.release()
                await asyncio.sleep(self.ttl_s)
                continue
            reason = await self._keep()
            log.warning("lease lost; stopping the work", key=self.key, holder=self.holder, reason=reason)
            await on_lost(reason)

    async def _keep(self) -> str:
        """Renew until the lease is lost; the reason it was lost."""
        while True:
            wait = min(self.renew_s, max(0.0, self.valid_until - time.monotonic()))
            await asyncio.sleep(wait)
            if time.monotonic() >= self.valid_until:
                self.revision = None
                return "not renewed in time (bus unreachable?)"
            try:
                remaining = self.valid_until - time.monotonic()
                ok = await asyncio.wait_for(self.renew(), timeout=max(0.05, remaining))
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("lease renew failed; retrying", key=self.key, error=repr(exc))
                continue
            if not ok:
                return "taken over by another instance (or expired)"
