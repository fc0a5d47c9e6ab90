"""The cluster fault suite's fixture: a three-node loopback cluster with the roles as processes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from harness.cluster import System


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    s = System(tmp_path)
    await s.start()
    try:
        yield s
    finally:
        await s.close()
