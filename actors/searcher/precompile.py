"""``python -m actors.searcher.precompile``: compile the de-Doppler kernels into numba's on-disk cache.

``make install`` runs it, so the first search of a fresh install loads the kernels (about a second)
instead of compiling them (30-60 s on 2 cores).  Running it again is quick: the cache is reused.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    from .cli import kernels_cached

    if kernels_cached():
        print("de-Doppler kernels: already in numba's cache", file=sys.stderr)
    else:
        print("de-Doppler kernels: compiling once with numba (30-60 s on 2 cores)...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    from .actor import warm_up

    with tempfile.TemporaryDirectory() as tmp:
        warm_up(Path(tmp))
    print(f"de-Doppler kernels ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
