"""The searchers' shared view of running jobs: the ``SEARCH_CLAIMS`` KV bucket, and whose turn it is.

The policy is :mod:`actors.searcher.fair_share` (pure); this module gathers its inputs (the claims of
every searcher, the consumer's unseen messages) and holds a job's claim while it runs, so the actor
only asks :meth:`Claims.turn` and wraps the job in :meth:`Claims.hold`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

import logs
from actors.searcher import fair_share
from bus.kv import ensure_kv, list_keys
from bus.stream import STREAM

log = logs.get("actors.searcher.claims")


class Claims:
    def __init__(self, js: JetStreamContext, kv: KeyValue, consumer: str, instance: str, policy: fair_share.Policy):
        self.js = js
        self.kv = kv
        self.consumer = consumer
        self.instance = instance
        self.policy = policy

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, replicas: int, consumer: str, instance: str, policy: fair_share.Policy
    ) -> Claims:
        kv = await ensure_kv(
            js,
            fair_share.BUCKET,
            replicas=replicas,
            ttl_s=fair_share.CLAIM_TTL_S,
            description="running SETI jobs, one key <user>.<job> each (actors/searcher/fair_share.py)",
        )
        return cls(js, kv, consumer, instance, policy)

    async def running(self) -> Counter[str]:
        return fair_share.running_by_user(await list_keys(self.kv))

    async def turn(self, user_id: str, job_id: str, deferrals: int) -> float | None:
        """Seconds this job should yield its turn for, or ``None`` to start it now.

        Best effort: if the bucket or the consumer cannot be read, the job runs.
        """
        policy = self.policy
        if policy.max_running <= 0 or deferrals >= policy.max_deferrals:
            return None
        try:
            running = await self.running()
            if fair_share.decide(user_id, running, True, deferrals, policy) is None:
                return None  # under the share whatever waits: no need to ask the server
            info = await self.js.consumer_info(STREAM, self.consumer)
        except Exception as exc:
            log.warning("fair share unavailable; job runs", job_id=job_id, error=repr(exc))
            return None
        delay = fair_share.decide(user_id, running, (info.num_pending or 0) > 0, deferrals, policy)
        if delay is not None:
            log.debug(
                "job deferred: its user has their share of searchers",
                job_id=job_id,
                user_id=user_id,
                running=running.get(fair_share.user_token(user_id), 0),
                waiting=info.num_pending,
                deferrals=deferrals + 1,
            )
        return delay

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str, job_id: str) -> AsyncIterator[None]:
        """The job's key while it runs, refreshed every third of the bucket's TTL, deleted at its end."""
        key = fair_share.claim_key(user_id, job_id)

        async def put() -> None:
            with contextlib.suppress(Exception):  # a missed put: the claim may lapse early
                await self.kv.put(key, self.instance.encode())

        async def refresh() -> None:
            while True:
                await asyncio.sleep(fair_share.CLAIM_TTL_S / 3)
                await put()

        await put()  # before the job starts, so the next searcher to decide counts it
        refresher = asyncio.create_task(refresh(), name=f"searcher:claim:{job_id}")
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            with contextlib.suppress(Exception):
                await self.kv.delete(key)
