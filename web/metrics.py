"""System metrics for ``GET /api/metrics/system`` (seed 000), from psutil.

``cpu_percent`` is measured since the previous call (psutil's non-blocking mode); a sampler task
keeps calling it so that the figure is always over the last few seconds, never a blocking wait.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

from schemas.base import iso, utcnow


def system_metrics(disk_path: Path) -> dict[str, Any]:
    path = disk_path if disk_path.exists() else Path(".")
    disk = psutil.disk_usage(str(path))
    load_1, load_5, load_15 = os.getloadavg()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "mem_percent": psutil.virtual_memory().percent,
        "disk_total": disk.total,
        "disk_used": disk.used,
        "disk_free": disk.free,
        "load_1": round(load_1, 2),
        "load_5": round(load_5, 2),
        "load_15": round(load_15, 2),
        "ts": iso(utcnow()),
    }
