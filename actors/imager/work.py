"""What the imager actor runs off the event loop, and its imaging parameters.

`image_ms` wraps ``pipeline.calibrate_and_image`` for the process pool: it takes plain values,
returns a plain dict (what ``dsa.image.ready`` needs, including the pointing read back from the
FITS header), and writes to a deterministic path, so doing it twice has the effect of doing it once.

`imaging_params` merges the configuration's parameters with a job's (``imsize``, ``cellsize`` in
arcsec, ``niter``, ``robust``, ``max_major``, ``threshold_sigma``), checking each: a job's
parameters come from an operator, and a bad one must fail the job with a reason, not crash.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from actors.imager.pipeline import ImagingParams

#: job parameter -> (ImagingParams field, type, lowest, highest)
JOB_PARAMETERS: dict[str, tuple[str, type, float, float]] = {
    "imsize": ("imsize", int, 32, 16384),
    "cellsize": ("cellsize_arcsec", float, 0.05, 600.0),
    "niter": ("niter", int, 0, 10_000_000),
    "robust": ("robust", float, -2.0, 2.0),
    "max_major": ("max_major", int, 0, 50),
    "threshold_sigma": ("threshold_sigma", float, 0.5, 100.0),
}


class ParameterError(ValueError):
    """A job parameter is unknown or out of range."""


def check_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters, typed and range-checked (raises `ParameterError` naming the first bad one)."""
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in JOB_PARAMETERS:
            raise ParameterError(f"unknown parameter '{name}'; known: {', '.join(JOB_PARAMETERS)}")
        _, typ, lo, hi = JOB_PARAMETERS[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParameterError(f"parameter '{name}' must be a number")
        if typ is int and float(value) != int(value):
            raise ParameterError(f"parameter '{name}' must be an integer")
        v = typ(value)
        if not lo <= v <= hi:
            raise ParameterError(f"parameter '{name}' must be between {lo:g} and {hi:g}")
        if name == "imsize" and int(v) % 2:
            raise ParameterError("parameter 'imsize' must be even")
        out[name] = v
    return out


def imaging_params(defaults: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """ImagingParams fields (as a dict, to cross the process boundary) from defaults and a job."""
    fields: dict[str, Any] = dict(defaults)
    for name, value in check_parameters(parameters or {}).items():
        fields[JOB_PARAMETERS[name][0]] = value
    return fields


def default_params(settings: Any) -> dict[str, Any]:
    """ImagingParams fields from the configuration (`settings.Settings`)."""
    p = ImagingParams(
        imsize=int(settings.image_size),
        cellsize_arcsec=float(settings.image_cell_arcsec),
        niter=int(settings.image_niter),
        robust=float(settings.image_robust),
        max_major=int(settings.image_max_major),
        peel_field_max=int(settings.image_peel_field),
        nthreads=os.cpu_count() or 2,
    )
    return asdict(p)


def image_ms(
    ms_path: str, calsets: list[str], out_path: str, params: dict[str, Any], apply_calibration: bool = True
) -> dict[str, Any]:
    """Calibrate (with exactly `calsets`), image, CLEAN; FITS at `out_path`, PNG beside it."""
    from astropy.io import fits

    from actors.imager.pipeline import calibrate_and_image

    p = ImagingParams(**params)
    res = calibrate_and_image(ms_path, calsets, out_path, p, apply_calibration=apply_calibration)
    hdr = fits.getheader(res.path)
    bmaj, bmin, bpa = res.beam
    return {
        "path": res.path,
        "thumbnail_path": res.thumb_path,
        "mjd": res.mjd,
        "noise_jy": res.noise_jy,
        "expected_noise_jy": res.expected_noise_jy,
        "bmaj_deg": float(bmaj) / 3600.0,
        "bmin_deg": float(bmin) / 3600.0,
        "bpa_deg": float(bpa),
        "n_sources_5sigma": res.n_sources_5sigma,
        "ra_deg": float(hdr["CRVAL1"]),
        "dec_deg": float(hdr["CRVAL2"]),
        "peak_jy": res.peak_jy,
        "calsets": res.calsets,
        "timings": res.timings,
    }


def image_path(image_dir: str | os.PathLike[str], group_id: str, job_id: str = "") -> str:
    """The deterministic FITS path of a group's image (a job's images go in their own directory)."""
    base = Path(image_dir) / "jobs" / job_id if job_id else Path(image_dir)
    safe = group_id.replace(os.sep, "_")
    return os.fspath(base / f"{safe}.fits")
