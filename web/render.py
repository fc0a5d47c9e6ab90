"""PNG renders of FITS products for the browser, cached on disk and made off the event loop.

A quicklook is ~0.3–2 s of numpy and matplotlib, so it runs in a worker thread (the Agg canvas and
astropy release the GIL for much of it; pyplot is not used, so renders do not share state), never on
the event loop. Each render is cached under ``DATA/edge/renders/`` keyed by the FITS file's path,
size and mtime (and the renderer's version): a re-written image gets a new render, an unchanged one
is served from disk. Concurrent requests for the same render wait for one worker instead of each
starting their own.

The cache is bounded (``--render-cache-mb``): every render served is touched, and after a new one
is written the least recently used are removed until the directory is under 90 % of the bound.
Without it a dashboard left open for months kept every image's quicklook (0.5-2 MB each) for ever.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from astro import quicklook

RENDER_VERSION = "1"
Kind = Literal["quicklook", "thumbnail"]
_RENDERERS: dict[Kind, Callable[..., Path]] = {
    "quicklook": quicklook.quicklook_fits,
    "thumbnail": quicklook.thumbnail_fits,
}


def prune(directory: Path, max_bytes: int, keep: Path | None = None) -> int:
    """Remove the least recently used renders (by mtime, which a hit refreshes) until the directory
    holds at most 90 % of ``max_bytes``, never ``keep`` (the render about to be served); returns how
    many were removed. Files that vanish meanwhile (another edge on the same data directory pruning
    too) are skipped."""
    entries = []
    for entry in os.scandir(directory):
        if entry.name.endswith(".png") and entry.is_file(follow_symlinks=False):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime_ns, st.st_size, entry.path))
    total = sum(size for _, size, _ in entries)
    if total <= max_bytes:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= 0.9 * max_bytes:
            break
        if keep is not None and path == os.fspath(keep):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        total -= size
        removed += 1
    return removed


def _touch(path: Path) -> bool:
    """Mark a cached render as used now (False: it is not there)."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


class RenderCache:
    def __init__(self, directory: Path, max_bytes: int = 1 << 30) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._pending: dict[str, asyncio.Future[Path]] = {}

    def _key(self, real: str, kind: Kind, zoom: bool) -> str:
        st = os.stat(real)
        ident = f"{RENDER_VERSION}|{real}|{st.st_size}|{st.st_mtime_ns}|{kind}|{int(zoom)}"
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    async def png(self, real: str, kind: Kind, *, zoom: bool) -> Path:
        """The cached render of FITS file `real` (already confined), rendering it if needed."""
        key = await asyncio.to_thread(self._key, real, kind, zoom)
        out = self.directory / f"{key}-{kind}.png"
        if await asyncio.to_thread(_touch, out):
            return out
        pending = self._pending.get(key + kind)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._pending[key + kind] = fut
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            result = await asyncio.to_thread(_RENDERERS[kind], real, out, zoom=zoom)
            await asyncio.to_thread(prune, self.directory, self.max_bytes, result)
            fut.set_result(result)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._pending[key + kind]
        return result
