"""The watcher never follows a symlink out of the incoming directory and never opens a FIFO."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from actors.watcher.checks import SubbandFileError, check_subband_file
from actors.watcher.inbox import Inbox

NAME = "2025-10-24T14:00:00_sb03.hdf5"


def _reason(path: Path) -> str:
    with pytest.raises(SubbandFileError) as ei:
        check_subband_file(path)
    return ei.value.reason


def test_symlink_out_of_the_directory_is_rejected_unread(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"\x89HDF\r\n\x1a\n" + b"root:x:0:0" * 100)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    link = incoming / NAME
    link.symlink_to(outside)
    before = os.stat(outside).st_atime_ns
    assert _reason(link) == "not_regular"
    assert os.stat(outside).st_atime_ns == before  # (best effort: relatime) the target was not read


def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / NAME
    os.mkfifo(fifo)
    result: list[str] = []
    t = threading.Thread(target=lambda: result.append(_reason(fifo)), daemon=True)
    t.start()
    t.join(5.0)
    assert result == ["not_regular"], "the check blocked on a FIFO"


def test_inbox_skips_fifos_and_passes_symlinks_as_themselves(tmp_path: Path) -> None:
    outside = tmp_path / "big"
    outside.write_bytes(b"x" * 5000)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    os.mkfifo(incoming / "2025-10-24T14:00:00_sb01.hdf5")
    (incoming / NAME).symlink_to(outside)
    inbox = Inbox(incoming, settle_s=0.0)
    scan = inbox.scan(now=time.time() + 10)
    paths = [f.path for f in scan.settled]
    assert paths == [str(incoming / NAME)]
    assert scan.settled[0].size != 5000  # the link's own size, not its target's
