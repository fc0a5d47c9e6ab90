"""What the calibrator actor runs off the event loop: find a tile's calibrators, solve and publish a set.

Plain functions on paths, so they run in the process pool (``Actor.run_cpu``) and are tested
without a bus.

* `tile_calibrators(ms)`: the shipped VLA calibrators (``astro.calibrators``) transiting the MS's
  tile — its meridian RA range over the integrations, at the pointing (phase-centre) declination —
  as model `PointSource`s, brightest first.
* `solve_group(ms, calset_root, cal_group_id, validity_hours, catalogue_path)`: solve against them
  and the tile's catalogue sources (``field.py``: why the field must be in the model) and write the
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


def tile_track(ms_path: str | os.PathLike[str]) -> tuple[tuple[float, float], float] | None:
    """The beam's track over the tile of this MS: ((meridian RA at the first and last integration),
    pointing dec), degrees; None for an MS without data."""
    import casacore.tables as ct
    from astropy.time import Time

    from astro.coordinates import meridian_ra_deg

    ms = os.fspath(ms_path)
    with ct.table(ms, ack=False) as t:
        times = np.unique(t.getcol("TIME"))
    with ct.table(os.path.join(ms, "FIELD"), ack=False) as f:
        dec_deg = float(np.rad2deg(f.getcol("PHASE_DIR")[0, 0, 1]))
    if times.size == 0:
        return None
    edges = meridian_ra_deg(Time([times[0] / 86400.0, times[-1] / 86400.0], format="mjd", scale="utc"), dec_deg)
    return (float(edges[0]), float(edges[1])), dec_deg


def tile_calibrators(ms_path: str | os.PathLike[str]) -> list[PointSource]:
    """Calibrators transiting the tile of this MS, brightest first (empty: not a calibrator group)."""
    from astro.calibrators import calibrators_in_tile

    track = tile_track(ms_path)
    if track is None:
        return []
    cals = calibrators_in_tile(*track)
    return [PointSource(c.name, c.ra_deg, c.dec_deg, c.flux_jy, c.spectral_index, 1.4e9) for c in cals]


def solve_group(
    ms_path: str,
    calset_root: str,
    cal_group_id: str,
    validity_hours: float = 12.0,
    catalogue_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any] | None:
    """Solve the calibration set of a calibrator group; None when no calibrator transits its tile.

    `catalogue_path`: the reference catalogue whose sources in the tile join the model (none, or
    a missing file: the calibrators alone).
    """
    from actors.calibrator.field import field_sources
    from actors.calibrator.solve import SolveParams, solve_calibration

    sources = tile_calibrators(ms_path)
    if not sources:
        return None
    track = tile_track(ms_path)
    field = field_sources(catalogue_path, *track, sources) if track is not None else []
    root = Path(calset_root)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{cal_group_id}.{os.getpid()}.{time.time_ns()}.tmp"
    try:
        info = solve_calibration(
            ms_path,
            sources,
            staging,
            SolveParams(validity_hours=validity_hours),
            cal_group_id=cal_group_id,
            field=field,
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
        "field_sources": len(info.manifest.get("field_sources", [])),
        "median_snr": info.median_snr,
        "flagged_fraction": info.flagged_fraction,
        "timings": info.timings,
    }
