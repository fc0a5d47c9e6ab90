"""Trigger follow-up on every new ESE candidate, from the edge's event feed (Server-Sent Events).

    python examples/sse_ese_trigger.py --edge http://127.0.0.1:8000 [--since-seq N] [--max N]

Standard library only. It asks for ``dsa.ese.updated`` events, and the first time it sees a
candidate id it prints the candidate and the URL of its source's light curve (``GET
/api/sources/{source_id}`` returns the catalogue entry with ``light_curve``). The feed's SSE id
is the stream sequence: on a dropped connection it reconnects with ``Last-Event-ID`` and loses
nothing. Keep that id (here: print it) to resume after a restart with ``--since-seq``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any


def events(url: str, headers: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, message) for each SSE event of one connection."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url}")
    request = urllib.request.Request(url, headers={"Accept": "text/event-stream", **headers})  # noqa: S310 (checked above)
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
        event_id, data = "", []
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield event_id, json.loads("\n".join(data))
                data = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edge", default="http://127.0.0.1:8000")
    parser.add_argument("--since-seq", type=int, help="start at this stream sequence (default: new events only)")
    parser.add_argument("--api-key", default="", help="needed only when the edge runs with --read-auth")
    parser.add_argument("--max", type=int, default=0, help="stop after this many new candidates (0: never)")
    args = parser.parse_args(argv)

    query = {"subject": "dsa.ese.updated"}
    if args.since_seq is not None:
        query["since_seq"] = str(args.since_seq)
    url = f"{args.edge}/api/events?{urllib.parse.urlencode(query)}"
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    seen: set[int] = set()
    last_id = ""
    while True:
        try:
            for event_id, message in events(url, {**headers, **({"Last-Event-ID": last_id} if last_id else {})}):
                last_id = event_id
                candidate = message["event"]
                if candidate["candidate_id"] in seen:
                    continue  # an update of a candidate we already triggered on
                seen.add(candidate["candidate_id"])
                source = urllib.parse.quote(candidate["source_id"], safe="")
                print(
                    f"new ESE candidate {candidate['candidate_id']} source={candidate['source_id']} "
                    f"sigma={candidate['max_sigma_dev']:.1f} seq={message['seq']} "
                    f"light_curve={args.edge}/api/sources/{source}",
                    flush=True,
                )
                if args.max and len(seen) >= args.max:
                    return 0
        except urllib.error.HTTPError as exc:
            print(f"refused: {exc.code} {exc.read().decode()}", file=sys.stderr)
            return 1
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            print(f"feed interrupted ({exc}); resuming after id {last_id or '-'}", file=sys.stderr, flush=True)
            time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
