"""The watcher's commands (request/reply on ``cmd.watcher.<verb>``), shared with the edge.

``start``, ``stop`` and ``restart`` switch ingestion (scanning the incoming directory and
converting groups) on and off in the running watcher. Each answers with the seed's body plus
``seq``, the stream sequence of the ``dsa.streaming.state`` fact it published, so the edge can wait
for its own projection to show it before answering.
"""

from __future__ import annotations

import msgspec

QUEUE = "watcher"
START = "cmd.watcher.start"
STOP = "cmd.watcher.stop"
RESTART = "cmd.watcher.restart"


class StreamingCommand(msgspec.Struct, kw_only=True):
    operator: str = ""
