"""Small simulated groups shared by the simulator tests (a few antennas, a few channels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.observation import SimResult, simulate

START = "2025-10-24T14:00:00"


@pytest.fixture(scope="session")
def tiny_sim(tmp_path_factory: pytest.TempPathFactory) -> SimResult:
    out: Path = tmp_path_factory.mktemp("sim")
    return simulate(out, 1, START, 54.0, n_ants=5, n_channels=4, seed=7, rfi=True)
