"""A process of WebSocket clients for bench_core: records (cursor seq, monotonic time) per message."""

import asyncio
import json
import re
import sys
import time

import aiohttp

CURSOR = re.compile(rb'"cursor":\{"seq":(\d+)')


async def main(url: str, clients: int, seconds: float, out: str) -> None:
    received: list[list[tuple[int, float]]] = [[] for _ in range(clients)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = [await session.ws_connect(url) for _ in range(clients)]
        print("ready", flush=True)

        async def reader(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                m = CURSOR.search(msg.data[:200].encode())
                if m:
                    received[i].append((int(m.group(1)), time.monotonic()))

        tasks = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
    with open(out, "w") as fh:
        json.dump(received, fh)


asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
