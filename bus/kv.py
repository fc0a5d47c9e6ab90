"""JetStream key-value buckets: the platform's small replicated state (leases, quota counters).

A bucket is a stream (``KV_<bucket>``) underneath, so it follows the same rule as the event
stream (``bus.stream``): start-up creates it with the replicas the settings ask for
(``--kv-replicas``) and only ever raises them on an existing bucket. Lowering replicas silently
is how a cluster loses redundancy; an operator's higher value is kept and logged as drift.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

import logs

log = logs.get("bus.kv")

#: the largest ``max_bytes`` for which the server gives a bucket 32 kB file blocks (its
#: ``autoTuneFileStorageBlockSize``: a quarter of ``max_bytes``, at least 32 kB; any cap between
#: this and 32 MB gets 4 MB blocks, as does no cap)
SMALL_BLOCKS_MAX_BYTES = 127_999

#: seconds start-up keeps trying to create a bucket that another process is creating at the same time
CREATE_WINDOW_S = 30.0


async def ensure_kv(
    js: JetStreamContext,
    bucket: str,
    *,
    replicas: int = 1,
    history: int = 1,
    ttl_s: float | None = None,
    description: str = "",
    max_bytes: int = -1,
) -> KeyValue:
    """The bucket ``bucket``, created if missing, its replicas raised (never lowered) to ``replicas``,
    returned once it can take writes (its stream has a leader).

    ``max_bytes`` caps the bucket's stored bytes, and with it the size of the stream's file
    blocks, which the server chooses when it loads the stream (at the create, and at every start
    of the server): without a cap a KV bucket gets 4 MB blocks, with one of at most
    ``SMALL_BLOCKS_MAX_BYTES`` 32 kB blocks. An existing bucket without a cap is given the one
    asked for (its blocks shrink from the server's next start); another cap is left as it is."""
    stream = f"KV_{bucket}"
    deadline = asyncio.get_running_loop().time() + CREATE_WINDOW_S
    while True:
        try:
            info = await js.stream_info(stream)
            break
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError) as exc:
            # a fresh cluster still electing its meta leader, or busy creating this very bucket
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("jetstream not answering yet; looking again", bucket=bucket, error=repr(exc))
            await asyncio.sleep(0.25)
            continue
        try:
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    description=description or None,
                    history=history,
                    ttl=ttl_s,
                    storage=StorageType.FILE,
                    replicas=max(1, replicas),
                    max_bytes=max_bytes,
                )
            )
        except (
            nats.js.errors.BadRequestError,
            nats.js.errors.ServiceUnavailableError,
            nats.errors.TimeoutError,
        ) as exc:
            # Another process created it a moment ago with other settings ("already in use"), or a
            # new cluster's meta leader is still being elected: look again rather than fail the
            # start-up of a second keeper started at the same instant as the first.
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info(
                "kv bucket being created elsewhere or cluster not ready; looking again", bucket=bucket, error=repr(exc)
            )
            await asyncio.sleep(0.25)
            continue
        log.info("kv bucket created", bucket=bucket, replicas=max(1, replicas))
        await _until_led(js, stream, deadline)
        return await js.key_value(bucket)
    have = info.config.num_replicas or 1
    cap = info.config.max_bytes if info.config.max_bytes and info.config.max_bytes > 0 else -1
    changes, update = [], replace(info.config)
    if replicas > have:
        update.num_replicas = replicas
        changes.append(f"replicas {have} -> {replicas}")
    elif replicas < have:
        log.warning(
            "kv bucket differs from the settings",
            bucket=bucket,
            drift=f"replicas: the bucket has {have}, the settings ask {replicas}; kept {have}",
        )
    if max_bytes > 0 and cap < 0:
        update.max_bytes = max_bytes
        changes.append(f"max_bytes unlimited -> {max_bytes} (smaller blocks from the server's next start)")
    elif max_bytes > 0 and cap != max_bytes:
        log.warning(
            "kv bucket differs from the settings",
            bucket=bucket,
            drift=f"max_bytes: the bucket has {cap}, the settings ask {max_bytes}; kept {cap}",
        )
    if changes:
        await js.update_stream(update)
        log.info("kv bucket changed", bucket=bucket, change="; ".join(changes))
    await _until_led(js, stream, deadline)
    return await js.key_value(bucket)


async def _until_led(js: JetStreamContext, stream: str, deadline: float) -> None:
    """Wait until the bucket's stream has a leader. A replicated stream just created (or scaled up)
    elects its leader a moment after the create returns; a write before that finds no responder
    ("nats: no response from stream"), which failed the first write of a quota keeper started on a
    fresh cluster. After ``deadline`` the bucket is returned anyway: the caller's writes retry."""
    while asyncio.get_running_loop().time() < deadline:
        try:
            info = await js.stream_info(stream)
        except (nats.errors.TimeoutError, nats.js.errors.ServiceUnavailableError):
            info = None
        if info is not None and (info.cluster is None or info.cluster.leader):
            return
        await asyncio.sleep(0.1)
    log.warning("kv bucket has no leader yet; going on", stream=stream)


#: seconds the server keeps a key listing's consumer after the listing is read
LIST_INACTIVE_S = 2.0


async def list_keys(kv: KeyValue) -> list[str]:
    """Every key of ``kv`` that holds a value (an empty list when none does).

    Not ``KeyValue.keys()``: that lists through an ordered consumer which it unsubscribes but does
    not delete, so the server keeps it for its inactivity threshold, five minutes. Listed on every
    scheduling decision (the searchers' claims) and every quota sweep, those consumers piled up:
    20 on the quota bucket after ten minutes of the fuzz run, and the nats-server's memory grew
    with them. Here the threshold is ``LIST_INACTIVE_S``, so a listing's consumer is gone as soon
    as it is read.
    """
    watcher = await kv.watch(">", ignore_deletes=True, meta_only=True, inactive_threshold=LIST_INACTIVE_S)
    keys: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:  # the end of the current values
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()
    return keys
