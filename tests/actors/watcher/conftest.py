"""A tiny simulated group (3 antennas, 4 channels per subband) shared by the watcher tests."""

from __future__ import annotations

import pytest

from sim.observation import SimResult, simulate


@pytest.fixture(scope="session")
def group(tmp_path_factory: pytest.TempPathFactory) -> SimResult:
    out = tmp_path_factory.mktemp("incoming")
    return simulate(out, 1, "2025-10-24T14:00:00", 54.0, n_ants=4, n_channels=4, seed=5)
