"""What the variability actor runs per image: where the beam points, which sources it sees, photometry.

These are plain functions on paths and arrays so that the heavy part (:func:`measure`) runs in the
process pool; :class:`AiryGain` is a small picklable callable (the primary beam of one pointing) for
the same reason.

The pointing of a drift-scan tile is its phase centre: ``OBSRA``/``OBSDEC`` when the header has
them, else the reference value of the celestial axes (the imager puts the phase centre at CRVAL).
The frequency is the spectral axis (``CTYPE3 = FREQ``), else ``RESTFRQ``, else 1.4 GHz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from actors.variability.photometry import PhotometryError, measure_fits
from astro.primary_beam import airy_beam, angular_separation, first_null_rad

REF_FREQ_HZ = 1.4e9
#: sources where the primary-beam gain is below this are not measured ("inside the primary beam")
MIN_PB_GAIN = 0.1

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Pointing:
    ra_deg: float
    dec_deg: float
    freq_hz: float


def read_pointing(path: str | Path) -> Pointing:
    """The phase centre and frequency of an image, from its header only (cheap)."""
    try:
        header = fits.getheader(path)
    except (OSError, TypeError) as exc:
        raise PhotometryError(f"{path}: not a readable FITS file ({exc})") from exc
    ra = header.get("OBSRA", header.get("CRVAL1"))
    dec = header.get("OBSDEC", header.get("CRVAL2"))
    if ra is None or dec is None:
        raise PhotometryError(f"{path}: header has no pointing (OBSRA/OBSDEC or CRVAL1/CRVAL2)")
    freq = None
    for axis in range(3, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{axis}", "")).upper().startswith("FREQ"):
            freq = header.get(f"CRVAL{axis}")
    if freq is None:
        freq = header.get("RESTFRQ", REF_FREQ_HZ)
    return Pointing(float(ra), float(dec), float(freq))


@dataclass(frozen=True, slots=True)
class AiryGain:
    """The DSA-110 Airy power beam of one pointing, as ``beam(ra_deg, dec_deg) -> gain``."""

    ra0_deg: float
    dec0_deg: float
    freq_hz: float

    def __call__(self, ra_deg: FloatArray, dec_deg: FloatArray) -> FloatArray:
        sep = angular_separation(
            np.radians(ra_deg), np.radians(dec_deg), math.radians(self.ra0_deg), math.radians(self.dec0_deg)
        )
        gain: FloatArray = np.asarray(airy_beam(sep, self.freq_hz), dtype=np.float64)
        return gain


def in_beam(ra_deg: FloatArray, dec_deg: FloatArray, pointing: Pointing, min_gain: float = MIN_PB_GAIN) -> Any:
    """Indices of the positions where the main lobe's gain is at least ``min_gain``.

    The Airy sidelobes never reach 0.1 (the first is 0.0175), so with the default cut this is the
    main lobe; a declination pre-cut keeps the work proportional to the strip, not the catalogue.
    """
    near = np.flatnonzero(np.abs(dec_deg - pointing.dec_deg) < 10.0)
    gain = AiryGain(pointing.ra_deg, pointing.dec_deg, pointing.freq_hz)(ra_deg[near], dec_deg[near])
    sep = angular_separation(
        np.radians(ra_deg[near]),
        np.radians(dec_deg[near]),
        math.radians(pointing.ra_deg),
        math.radians(pointing.dec_deg),
    )
    first_null = float(first_null_rad(pointing.freq_hz))
    return near[(gain >= min_gain) & (sep < first_null)]


def measure(
    path: str, ra_deg: FloatArray, dec_deg: FloatArray, pointing: Pointing, min_gain: float = MIN_PB_GAIN
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Forced photometry, primary-beam corrected: (flux_jy, err_jy, snr, valid), aligned with input."""
    res = measure_fits(
        path, ra_deg, dec_deg, beam=AiryGain(pointing.ra_deg, pointing.dec_deg, pointing.freq_hz), min_pb_gain=min_gain
    )
    valid = res.valid & np.isfinite(res.flux_jy) & np.isfinite(res.err_jy) & (res.err_jy > 0)
    return res.flux_jy, res.err_jy, res.snr, valid
