"""The environment of a process of the system under test (tests, the cluster harness, benchmarks)."""

from __future__ import annotations

import os


def clean_env(**extra: str) -> dict[str, str]:
    """The launcher's environment without what would override the command line - a developer's
    ``NATS_URL`` or ``OBS_*`` settings must not leak into the processes under test - plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL" and not k.startswith("OBS_")}
    env.update(extra)
    return env
