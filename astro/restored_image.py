"""A restored FITS image as the science reads it: its pixels, WCS, restoring beam and pointing.

Shared by the variability detector (forced photometry) and the mosaicker (linear mosaics), so it
lives here rather than in either actor. CASA and WSClean images load too: their degenerate
frequency and Stokes axes are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.wcs import WCS

FloatArray = npt.NDArray[np.float64]

#: the observing frequency assumed for an image whose header names none
REF_FREQ_HZ = 1.4e9
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


class ImageError(ValueError):
    """An image cannot be read or measured; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class RestoringBeam:
    """The restoring beam: major and minor FWHM and position angle (east of north), in degrees."""

    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float

    def __post_init__(self) -> None:
        if not (self.bmaj_deg > 0 and self.bmin_deg > 0) or not math.isfinite(self.bpa_deg):
            raise ImageError(
                f"restoring beam must have positive BMAJ/BMIN and a finite BPA, got "
                f"{self.bmaj_deg}, {self.bmin_deg}, {self.bpa_deg}"
            )

    @classmethod
    def from_header(cls, header: fits.Header) -> RestoringBeam:
        missing = [k for k in ("BMAJ", "BMIN") if k not in header]
        if missing:
            raise ImageError(f"FITS header has no restoring beam: keyword {missing[0]!r} is missing")
        return cls(float(header["BMAJ"]), float(header["BMIN"]), float(header.get("BPA", 0.0)))

    def to_header(self, header: fits.Header) -> None:
        header["BMAJ"] = self.bmaj_deg
        header["BMIN"] = self.bmin_deg
        header["BPA"] = self.bpa_deg

    def pixel_covariance(self, wcs: WCS) -> FloatArray:
        """The beam's Gaussian covariance in pixel units (2 × 2, x then y).

        The beam is defined on the sky in (east, north); the WCS's linear part at the reference
        pixel (``pixel_scale_matrix``, degrees of intermediate world coordinate per pixel, whose
        first axis increases to the east) maps pixel offsets onto those axes.
        """
        theta = math.radians(self.bpa_deg)
        u_major = np.array([math.sin(theta), math.cos(theta)])  # (east, north)
        u_minor = np.array([math.cos(theta), -math.sin(theta)])
        s_maj = self.bmaj_deg * _FWHM_TO_SIGMA
        s_min = self.bmin_deg * _FWHM_TO_SIGMA
        cov_sky = s_maj**2 * np.outer(u_major, u_major) + s_min**2 * np.outer(u_minor, u_minor)
        m = np.asarray(wcs.celestial.pixel_scale_matrix, dtype=np.float64)
        m_inv = np.linalg.inv(m)
        cov_pix: FloatArray = m_inv @ cov_sky @ m_inv.T
        return cov_pix


@dataclass(frozen=True, slots=True)
class FitsImage:
    """A 2-D restored image (Jy/beam) with its celestial WCS and restoring beam."""

    data: npt.NDArray[np.floating]
    wcs: WCS
    beam: RestoringBeam
    header: fits.Header

    @classmethod
    def load(cls, path: str | Path) -> FitsImage:
        """Read a FITS image; degenerate frequency/Stokes axes (CASA, wsclean) are dropped."""
        try:
            with fits.open(path, memmap=False) as hdul:
                hdu = hdul[0]
                header = hdu.header.copy()
                data = hdu.data
        except (OSError, TypeError) as exc:
            raise ImageError(f"{path}: not a readable FITS file ({exc})") from exc
        if data is None:
            raise ImageError(f"{path}: primary HDU has no data")
        data = np.asarray(data)
        while data.ndim > 2 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 2:
            raise ImageError(f"{path}: expected a 2-D image, data has shape {data.shape}")
        wcs = WCS(header).celestial
        if wcs.naxis != 2:
            raise ImageError(f"{path}: header has no celestial WCS")
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float32)
        return cls(data=data, wcs=wcs, beam=RestoringBeam.from_header(header), header=header)

    @property
    def thermal_noise_jy(self) -> float | None:
        """The thermal noise the imager expected (``THNOISE``, Jy/beam), or None if not written.

        Images from other imagers (CASA, WSClean) and the tests' synthetic images have none.
        """
        value = self.header.get("THNOISE")
        try:
            noise = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            return None
        return noise if math.isfinite(noise) and noise > 0 else None


@dataclass(frozen=True, slots=True)
class Pointing:
    ra_deg: float
    dec_deg: float
    freq_hz: float
    drift_ra_deg: float = 0.0  # RA the beam centre moved over the observation (DRIFTRA)


def read_pointing(path: str | Path) -> Pointing:
    """The phase centre and frequency of an image, from its header only (cheap)."""
    try:
        header = fits.getheader(path)
    except (OSError, TypeError) as exc:
        raise ImageError(f"{path}: not a readable FITS file ({exc})") from exc
    ra = header.get("OBSRA", header.get("CRVAL1"))
    dec = header.get("OBSDEC", header.get("CRVAL2"))
    if ra is None or dec is None:
        raise ImageError(f"{path}: header has no pointing (OBSRA/OBSDEC or CRVAL1/CRVAL2)")
    freq = None
    for axis in range(3, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{axis}", "")).upper().startswith("FREQ"):
            freq = header.get(f"CRVAL{axis}")
    if freq is None:
        freq = header.get("RESTFRQ", REF_FREQ_HZ)
    return Pointing(float(ra), float(dec), float(freq), float(header.get("DRIFTRA", 0.0)))
