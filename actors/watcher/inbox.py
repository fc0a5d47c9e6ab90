"""The incoming directory: which subband files are there, and which of them have stopped changing.

Two parts, so that each is simple:

* :class:`Inbox` (no asyncio) scans the directory and decides when a file is *settled*: its size
  and mtime were the same at two consecutive scans, or it has not been modified for ``settle_s``.
  A file still being written is therefore never opened. Entries are looked at with ``lstat``:
  a symlink is passed on as itself (the check rejects it, with its reason, without following it)
  and FIFOs, sockets and devices are skipped, so nothing outside the directory is ever read. The scan is the source of truth: it
  notices files however they arrived, and a directory that vanished and came back.
* :class:`Wakeup` turns inotify (through ``watchfiles``; its Rust ``notify`` backend uses inotify
  on Linux and polls where there is none) into an ``asyncio.Event``, so that a new file is
  scanned at once instead of at the next poll. It is only an accelerator: when it fails, or the
  directory it watched was replaced, the periodic scan still finds everything, and the watch is
  re-armed on the new directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

import logs
from actors.watcher.checks import FILENAME_RE

log = logs.get("actors.watcher.inbox")


@dataclass(frozen=True, slots=True)
class FileLook:
    path: str
    size: int
    mtime_ns: int

    @property
    def signature(self) -> tuple[int, int]:
        return (self.size, self.mtime_ns)


@dataclass
class ScanResult:
    present: bool  # the directory exists
    settled: list[FileLook] = field(default_factory=list)  # stable since the last look, oldest first
    unsettled: int = 0  # files still changing
    inode: int = 0  # of the directory, to notice it was replaced


class Inbox:
    """Scans one directory for ``YYYY-MM-DDTHH:MM:SS_sbNN.hdf5`` files (other names are ignored)."""

    def __init__(self, directory: Path, settle_s: float) -> None:
        self.directory = directory
        self.settle_s = settle_s
        self._last: dict[str, tuple[int, int]] = {}

    def scan(self, now: float | None = None) -> ScanResult:
        now = time.time() if now is None else now
        try:
            st = os.stat(self.directory)
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            self._last.clear()
            return ScanResult(present=False)
        settled: list[FileLook] = []
        seen: dict[str, tuple[int, int]] = {}
        unsettled = 0
        for entry in entries:
            if not FILENAME_RE.match(entry.name):
                continue
            try:
                # lstat, never stat: a symlink is looked at as itself (never its target, which may
                # lie outside the incoming directory) and a FIFO is never opened here
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if not (stat.S_ISREG(est.st_mode) or stat.S_ISLNK(est.st_mode)):
                continue  # FIFOs, sockets, devices, directories: not subband files
            sig = (est.st_size, est.st_mtime_ns)
            seen[entry.path] = sig
            stable = self._last.get(entry.path) == sig
            old = now - est.st_mtime_ns / 1e9 >= self.settle_s
            if stable or old:
                settled.append(FileLook(entry.path, est.st_size, est.st_mtime_ns))
            else:
                unsettled += 1
        self._last = seen
        settled.sort(key=lambda f: (f.mtime_ns, f.path))
        return ScanResult(present=True, settled=settled, unsettled=unsettled, inode=st.st_ino)


class Wakeup:
    """Sets ``event`` when anything changes in ``directory`` (inotify where available)."""

    def __init__(self, directory: Path, event: asyncio.Event) -> None:
        self.directory = directory
        self.event = event
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.backend = "none"

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"watch:{self.directory}")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def rearm(self, directory: Path | None = None) -> None:
        await self.stop()
        if directory is not None:
            self.directory = directory
        self.start()

    async def _run(self) -> None:
        try:
            from watchfiles import awatch
        except ImportError:  # polling only
            self.backend = "polling"
            return
        while not self._stop.is_set():
            if not self.directory.is_dir():
                await asyncio.sleep(1.0)
                continue
            try:
                self.backend = "inotify"
                async for _changes in awatch(
                    self.directory, stop_event=self._stop, debounce=50, step=20, recursive=False
                ):
                    self.event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the directory vanished under the watch, or no inotify
                log.info("directory watch ended; scans continue", directory=str(self.directory), error=repr(exc))
                self.backend = "polling"
                await asyncio.sleep(1.0)
