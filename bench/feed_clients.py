"""A process of SSE feed clients for bench_feed: records (stream seq, monotonic time) per event.

Raw asyncio protocols rather than an HTTP client library: 100 subscribers at 500 events/s are
50,000 events a second into one process, and the measurement must not be the clients' own
backlog. The time is when the bytes holding the event were read (its first byte at the client).
HTTP chunked framing needs no decoding here: the edge writes whole SSE frames per chunk, and a
chunk-size line never looks like ``id: N``.
"""

import asyncio
import json
import re
import sys
import time
from urllib.parse import urlsplit

ID = re.compile(rb"\nid: (\d+)\n")


class Feed(asyncio.Protocol):
    def __init__(self, request: bytes, ready: asyncio.Future) -> None:  # type: ignore[type-arg]
        self.request, self.ready = request, ready
        self.seen: list[tuple[int, float]] = []
        self.rest = b"\n"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        buf = self.rest + data
        cut = buf.rfind(b"\n\n")  # the end of the last whole SSE frame
        if cut < 0:
            self.rest = buf
            return
        self.seen.extend((int(m.group(1)), at) for m in ID.finditer(buf, 0, cut + 1))
        self.rest = buf[cut + 1 :]  # from the frame end's second newline: the next "\nid:" matches
        if not self.ready.done() and b"retry:" in buf:
            self.ready.set_result(None)


async def main(url: str, clients: int, seconds: float, out: str) -> None:
    parts = urlsplit(url)
    request = (
        f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    feeds = []
    for _ in range(clients):
        ready = loop.create_future()
        _, proto = await loop.create_connection(lambda r=ready: Feed(request, r), parts.hostname, parts.port)
        await ready
        feeds.append(proto)
    print("ready", flush=True)
    await asyncio.sleep(seconds)
    with open(out, "w") as fh:
        json.dump([f.seen for f in feeds], fh)


asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
