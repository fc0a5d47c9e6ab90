"""Reading the stream back, by time or by sequence, without disturbing anyone.

Replay uses an *ordered* consumer: ephemeral, flow-controlled, self-healing across reconnects, and
invisible to the durable consumers the actors share. The edge's projections are built with the same
iterator, following the stream from their last applied sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from bus.stream import STREAM


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    subject: str
    time: datetime
    data: bytes
    pending: int


async def replay(
    js: JetStreamContext,
    subject: str = ">",
    *,
    since: datetime | None = None,
    seq: int | None = None,
    until: datetime | None = None,
    follow: bool = False,
) -> AsyncGenerator[StoredMessage, None]:
    """Yield stored messages on ``subject`` in stream order.

    Without ``follow`` it ends at the last message stored when it started; with ``follow`` it goes
    on with new ones until the caller stops iterating. ``until`` ends it at the first message
    stored after that time.
    """
    if since is not None and seq is not None:
        raise ValueError("give --since or --seq, not both")
    config = ConsumerConfig(inactive_threshold=30.0)
    if seq is not None:
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, max(seq, 1)
    elif since is not None:
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, since
    else:
        config.deliver_policy = DeliverPolicy.ALL

    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10000)

    async def on_msg(msg: Msg) -> None:
        await queue.put(msg)

    filter_subject = subject if subject not in ("", ">") else None
    info = await js.stream_info(STREAM)
    last_at_start = info.state.last_seq
    sub = await js.subscribe(
        filter_subject or ">",
        stream=STREAM,
        cb=on_msg,
        ordered_consumer=True,
        config=config,
        idle_heartbeat=2.0,
    )
    try:
        if not follow:
            cinfo = await sub.consumer_info()
            if cinfo.num_pending == 0 and queue.empty():
                # Either nothing matches, or it is already in flight; a short wait settles which.
                with contextlib.suppress(asyncio.TimeoutError):
                    msg = await asyncio.wait_for(queue.get(), 0.5)
                    queue.put_nowait(msg)
                if queue.empty():
                    return
        while True:
            if follow:
                msg = await queue.get()
            else:
                try:
                    msg = await asyncio.wait_for(queue.get(), 5.0)
                except TimeoutError:
                    return
            md = msg.metadata
            stored = StoredMessage(
                seq=md.sequence.stream,
                subject=msg.subject,
                time=md.timestamp,
                data=msg.data,
                pending=md.num_pending,
            )
            if until is not None and stored.time > until:
                return
            yield stored
            if not follow and (stored.pending == 0 or stored.seq >= last_at_start):
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
