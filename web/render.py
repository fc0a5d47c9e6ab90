"""PNG renders of FITS products for the browser, cached on disk and made off the event loop.

A quicklook is ~0.3–2 s of numpy and matplotlib, so it runs in a worker thread (the Agg canvas and
astropy release the GIL for much of it; pyplot is not used, so renders do not share state), never on
the event loop. Each render is cached under ``DATA/edge/renders/`` keyed by the FITS file's path,
size and mtime (and the renderer's version): a re-written image gets a new render, an unchanged one
is served from disk. Concurrent requests for the same render wait for one worker instead of each
starting their own.
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


class RenderCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pending: dict[str, asyncio.Future[Path]] = {}

    def _key(self, real: str, kind: Kind, zoom: bool) -> str:
        st = os.stat(real)
        ident = f"{RENDER_VERSION}|{real}|{st.st_size}|{st.st_mtime_ns}|{kind}|{int(zoom)}"
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    async def png(self, real: str, kind: Kind, *, zoom: bool) -> Path:
        """The cached render of FITS file `real` (already confined), rendering it if needed."""
        key = await asyncio.to_thread(self._key, real, kind, zoom)
        out = self.directory / f"{key}-{kind}.png"
        if await asyncio.to_thread(out.is_file):
            return out
        pending = self._pending.get(key + kind)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._pending[key + kind] = fut
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            result = await asyncio.to_thread(_RENDERERS[kind], real, out, zoom=zoom)
            fut.set_result(result)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._pending[key + kind]
        return result
