"""The event stream: every stored event of the platform, in one JetStream stream.

One stream rather than one per domain, because the edge projects all of them in one order and
``replay`` can interleave DSA and SETI facts as they happened. Subjects outside it (``cmd.>`` for
request/reply commands, ``live.>`` for heartbeats) are never stored.
"""

from __future__ import annotations

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

STREAM = "EVENTS"
SUBJECTS = ["dsa.>", "seti.>", "ops.>"]
DUPLICATE_WINDOW_S = 120.0


def stream_config(*, max_age_days: float = 90.0, max_bytes: int = -1) -> StreamConfig:
    return StreamConfig(
        name=STREAM,
        subjects=SUBJECTS,
        retention=RetentionPolicy.LIMITS,  # consumers never delete: the stream is the record
        storage=StorageType.FILE,
        max_age=max_age_days * 86400.0 if max_age_days > 0 else None,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=1,
    )


async def ensure_stream(js: JetStreamContext, *, max_age_days: float = 90.0, max_bytes: int = -1) -> None:
    """Create the stream, or bring an existing one's retention up to the configuration."""
    config = stream_config(max_age_days=max_age_days, max_bytes=max_bytes)
    try:
        await js.stream_info(STREAM)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)
