"""What the calibrator actor runs off the event loop: find a tile's calibrators, solve and publish a set.

Plain functions on paths, so they run in the process pool (``Actor.run_cpu``) and are tested
without a bus.

* `tile_calibrators(ms)`: the shipped VLA calibrators (``astro.calibrators``) transiting the MS's
  tile — its meridian RA range over the integrations, at the pointing (phase-centre) declination —
  as model `PointSource`s, brightest first.
* `solve_group(ms, calset_root, cal_group_id, validity_hours)`: solve against them and write the
  calibration set ``<calset_root>/<cal_group_id>``. The set is written beside its final place and
  swapped in, so an imager never reads a half-written set and a redelivered solve replaces the
  set whole.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from astro.skymodel import PointSource


def tile_calibrators(ms_path: str | os.PathLike[str]) -> list[PointSource]:
    """Calibrators transiting the tile of this MS, brightest first (empty: not a calibrator group)."""
    import casacore.tables as ct
    from astropy.time import Time

    from astro.calibrators import calibrators_in_tile
    from astro.coordinates import meridian_ra_deg

    ms = os.fspath(ms_path)
    with ct.table(ms, ack=False) as t:
        times = np.unique(t.getcol("TIME"))
    with ct.table(os.path.join(ms, "FIELD"), ack=False) as f:
        dec_deg = float(np.rad2deg(f.getcol("PHASE_DIR")[0, 0, 1]))
    if times.size == 0:
        return []
    edges = meridian_ra_deg(Time([times[0] / 86400.0, times[-1] / 86400.0], format="mjd", scale="utc"), dec_deg)
    cals = calibrators_in_tile((float(edges[0]), float(edges[1])), dec_deg)
    return [PointSource(c.name, c.ra_deg, c.dec_deg, c.flux_jy, c.spectral_index, 1.4e9) for c in cals]


def solve_group(
    ms_path: str, calset_root: str, cal_group_id: str, validity_hours: float = 12.0
) -> dict[str, Any] | None:
    """Solve the calibration set of a calibrator group; None when no calibrator transits its tile."""
    from actors.calibrator.solve import SolveParams, solve_calibration

    sources = tile_calibrators(ms_path)
    if not sources:
        return None
    root = Path(calset_root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{cal_group_id}.{os.getpid()}.{time.time_ns()}.tmp"
    try:
        info = solve_calibration(
            ms_path, sources, staging, SolveParams(validity_hours=validity_hours), cal_group_id=cal_group_id
        )
        final = root / cal_group_id
        old = None
        if final.exists():
            old = root / f".{cal_group_id}.{time.time_ns()}.old"
            final.rename(old)
        (staging / cal_group_id).rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return {
        "cal_group_id": info.cal_group_id,
        "path": os.fspath(final),
        "created_at": info.created_at,
        "num_targets": info.num_targets,
        "valid_from_mjd": float(info.manifest["mjd_start"]),
        "valid_to_mjd": float(info.manifest["mjd_end"]),
        "mjd_mid": info.mjd_mid,
        "calibrator": info.calibrator,
        "calibrators": [s.name for s in sources],
        "median_snr": info.median_snr,
        "flagged_fraction": info.flagged_fraction,
        "timings": info.timings,
    }

