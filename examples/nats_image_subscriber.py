"""Process every new DSA-110 image, straight from the bus, with a durable consumer (nats-py).

    NATS_URL=nats://host:4222 NATS_USER=lofar NATS_PASSWORD=... \\
        python examples/nats_image_subscriber.py [--subject dsa.image.ready] [--max N]

Credentials come from ``run.py subscribers create NAME``: read-only, ``dsa.>`` only, consumers
named after the user. The consumer is *durable*: the server remembers what was acknowledged, so
a subscriber that stops and starts again carries on after the last image it finished, and an
image that was being handled when it died is delivered again (``ack_wait``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "EVENTS"


async def run(args: argparse.Namespace) -> int:
    user = os.environ.get("NATS_USER", "")
    nc = await nats.connect(
        os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        user=user or None,
        password=os.environ.get("NATS_PASSWORD") or None,
        inbox_prefix=os.environ.get("NATS_INBOX_PREFIX", f"_INBOX_{user}" if user else "_INBOX"),
    )
    js = nc.jetstream(timeout=5.0)
    name = args.consumer or user or "image_subscriber"
    # Create-or-update with the same config: idempotent, so every start can do it.
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            name=name,
            durable_name=name,
            filter_subject=args.subject,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=60.0,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )
    sub = await js.pull_subscribe_bind(name, stream=STREAM)
    done = 0
    try:
        while not args.max or done < args.max:
            try:
                msgs = await sub.fetch(min(args.max - done, 50) if args.max else 50, timeout=5.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                event = json.loads(msg.data)
                # ... your processing here: fetch the FITS, run your source finder, etc.
                print(
                    f"seq={msg.metadata.sequence.stream} image={event['path']} mjd={event['mjd']} "
                    f"noise_jy={event['noise_jy']:.3g} schema_version={event.get('schema_version', 1)}",
                    flush=True,
                )
                await msg.ack_sync()  # only once it is handled: a crash before this means redelivery
                done += 1
    finally:
        await nc.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subject", default="dsa.image.ready")
    parser.add_argument("--consumer", default="", help="durable consumer name (default: the NATS user)")
    parser.add_argument("--max", type=int, default=0, help="stop after this many events (0: never)")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
