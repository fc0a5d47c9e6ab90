"""What the variability actor runs per image: where the beam points, which sources it sees, photometry.

These are plain functions on paths and arrays so that the heavy part (:func:`measure`) runs in the
process pool; :class:`AiryGain` is a small picklable callable (the primary beam of one pointing) for
the same reason.

The pointing of a drift-scan tile is its phase centre: ``OBSRA``/``OBSDEC`` when the header has
them, else the reference value of the celestial axes (the imager puts the phase centre at CRVAL).
The frequency is the spectral axis (``CTYPE3 = FREQ``), else ``RESTFRQ``, else 1.4 GHz.

A drift-scan tile is not one pointing: the beam centre moves along RA with the sky's rotation
(``DRIFTRA``, ~1.3 deg over 5 minutes, which the imager writes), and the image holds each source's
flux averaged over that drift. The primary-beam correction is therefore the Airy gain averaged
over the beam centres of the observation, not the gain at the phase centre (that read fluxes ~4 %
low near the centre and more toward the east and west edges). Headers without DRIFTRA are treated
as a fixed pointing.

:func:`measure` returns two errors per source (see :mod:`actors.variability.errors`): the
epoch-to-epoch error the light-curve statistics use, and the absolute-flux error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from actors.variability.errors import DEFAULT_CAL_FRAC, epoch_error
from actors.variability.photometry import measure_fits
from astro.primary_beam import airy_beam, angular_separation, first_null_rad
from astro.restored_image import REF_FREQ_HZ, Pointing, read_pointing

__all__ = ["REF_FREQ_HZ", "AiryGain", "Measured", "Pointing", "in_beam", "measure", "read_pointing"]
#: sources where the primary-beam gain is below this are not measured ("inside the primary beam")
MIN_PB_GAIN = 0.1

FloatArray = npt.NDArray[np.float64]


#: beam centres sampled along the drift for the averaged gain (midpoint rule; the gain is smooth)
DRIFT_SAMPLES = 9


@dataclass(frozen=True, slots=True)
class AiryGain:
    """The DSA-110 Airy power beam of one tile, as ``beam(ra_deg, dec_deg) -> gain``: averaged over
    the beam centres ``ra0 +- drift_ra / 2`` at ``dec0`` when the tile drifted (see the module doc)."""

    ra0_deg: float
    dec0_deg: float
    freq_hz: float
    drift_ra_deg: float = 0.0

    @classmethod
    def of(cls, pointing: Pointing) -> AiryGain:
        return cls(pointing.ra_deg, pointing.dec_deg, pointing.freq_hz, pointing.drift_ra_deg)

    def __call__(self, ra_deg: FloatArray, dec_deg: FloatArray) -> FloatArray:
        n = DRIFT_SAMPLES if self.drift_ra_deg > 0 else 1
        ra, dec = np.radians(ra_deg), np.radians(dec_deg)
        gain = np.zeros(np.shape(ra), dtype=np.float64)
        for k in range(n):
            centre = self.ra0_deg + self.drift_ra_deg * ((k + 0.5) / n - 0.5)
            sep = angular_separation(ra, dec, math.radians(centre), math.radians(self.dec0_deg))
            gain += np.asarray(airy_beam(sep, self.freq_hz), dtype=np.float64)
        out: FloatArray = gain / n
        return out


def in_beam(ra_deg: FloatArray, dec_deg: FloatArray, pointing: Pointing, min_gain: float = MIN_PB_GAIN) -> Any:
    """Indices of the positions where the main lobe's gain is at least ``min_gain``.

    The Airy sidelobes never reach 0.1 (the first is 0.0175), so with the default cut this is the
    main lobe; a declination pre-cut keeps the work proportional to the strip, not the catalogue.
    """
    near = np.flatnonzero(np.abs(dec_deg - pointing.dec_deg) < 10.0)
    gain = AiryGain.of(pointing)(ra_deg[near], dec_deg[near])
    sep = angular_separation(
        np.radians(ra_deg[near]),
        np.radians(dec_deg[near]),
        math.radians(pointing.ra_deg),
        math.radians(pointing.dec_deg),
    )
    first_null = float(first_null_rad(pointing.freq_hz))
    return near[(gain >= min_gain) & (sep < first_null)]


class Measured(NamedTuple):
    """One image's photometry, aligned with the input positions, primary-beam corrected.

    ``err_jy`` is the epoch-to-epoch error (for χ²ν, η, V and the ESE test); ``abs_err_jy`` the
    absolute-flux error from the local rms; ``snr`` is the detection significance against the
    local rms (sidelobes and confusion included).
    """

    flux_jy: FloatArray
    err_jy: FloatArray
    snr: FloatArray
    valid: npt.NDArray[np.bool_]
    abs_err_jy: FloatArray


def measure(
    path: str,
    ra_deg: FloatArray,
    dec_deg: FloatArray,
    pointing: Pointing,
    min_gain: float = MIN_PB_GAIN,
    cal_frac: float = DEFAULT_CAL_FRAC,
) -> Measured:
    """Forced photometry, primary-beam corrected, with the epoch error of :func:`epoch_error`."""
    res = measure_fits(path, ra_deg, dec_deg, beam=AiryGain.of(pointing), min_pb_gain=min_gain)
    err = epoch_error(res.flux_jy, res.err_jy, res.thermal_err_jy, cal_frac)
    with np.errstate(invalid="ignore"):
        valid = res.valid & np.isfinite(res.flux_jy) & np.isfinite(res.err_jy) & (res.err_jy > 0) & (err > 0)
    return Measured(res.flux_jy, err, res.snr, valid, res.err_jy)
