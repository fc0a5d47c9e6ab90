"""FITS images with a full WCS, their quicklook PNGs, and simple source counting.

The FITS image is 4-D as CASA writes it: NAXIS1 = RA---SIN, NAXIS2 = DEC--SIN, NAXIS3 = FREQ,
NAXIS4 = STOKES (I), data [1, 1, ny, nx] float32, BUNIT 'Jy/beam', restoring beam BMAJ/BMIN/BPA in
degrees, DATE-OBS/MJD-OBS, and NOISE: the robust (1.4826 * MAD) noise of the residual, Jy/beam.
Pixel convention: see `actors.imager.gridding` (phase centre at CRPIX = npix/2 + 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from scipy import ndimage

from actors.imager.clean import Beam


def make_header(
    npix: int,
    cell_rad: float,
    phase_dir: tuple[float, float],
    freq_hz: float,
    bandwidth_hz: float,
    mjd_obs: float,
    beam: Beam,
    noise_jy: float,
    telescope: str = "DSA-110",
    object_name: str = "",
    extra: dict[str, Any] | None = None,
) -> fits.Header:
    """FITS header for an image [1, 1, npix, npix]."""
    from astropy.time import Time

    cell_deg = float(np.rad2deg(cell_rad))
    h = fits.Header()
    h["BSCALE"] = 1.0
    h["BZERO"] = 0.0
    h["BUNIT"] = "Jy/beam"
    h["BTYPE"] = "Intensity"
    h["BMAJ"] = float(np.rad2deg(beam.bmaj))
    h["BMIN"] = float(np.rad2deg(beam.bmin))
    h["BPA"] = float(np.rad2deg(beam.bpa))
    h["OBJECT"] = object_name
    h["EQUINOX"] = 2000.0
    h["RADESYS"] = "FK5"
    h["LONPOLE"] = 180.0
    h["LATPOLE"] = float(np.rad2deg(phase_dir[1]))
    h["CTYPE1"] = "RA---SIN"
    h["CRVAL1"] = float(np.rad2deg(phase_dir[0]) % 360.0)
    h["CDELT1"] = -cell_deg
    h["CRPIX1"] = npix / 2 + 1.0
    h["CUNIT1"] = "deg"
    h["CTYPE2"] = "DEC--SIN"
    h["CRVAL2"] = float(np.rad2deg(phase_dir[1]))
    h["CDELT2"] = cell_deg
    h["CRPIX2"] = npix / 2 + 1.0
    h["CUNIT2"] = "deg"
    h["CTYPE3"] = "FREQ"
    h["CRVAL3"] = float(freq_hz)
    h["CDELT3"] = float(bandwidth_hz)
    h["CRPIX3"] = 1.0
    h["CUNIT3"] = "Hz"
    h["CTYPE4"] = "STOKES"
    h["CRVAL4"] = 1.0
    h["CDELT4"] = 1.0
    h["CRPIX4"] = 1.0
    h["CUNIT4"] = ""
    h["PV2_1"] = 0.0
    h["PV2_2"] = 0.0
    h["RESTFRQ"] = float(freq_hz)
    h["SPECSYS"] = "TOPOCENT"
    t = Time(mjd_obs, format="mjd", scale="utc")
    h["DATE-OBS"] = str(t.isot)
    h["MJD-OBS"] = float(mjd_obs)
    h["TIMESYS"] = "UTC"
    h["TELESCOP"] = telescope
    h["INSTRUME"] = telescope
    h["NOISE"] = (float(noise_jy), "robust residual noise (MAD), Jy/beam")
    h["ORIGIN"] = "observatory-platform actors.imager"
    h["DATE"] = Time.now().isot[:19]
    for k, v in (extra or {}).items():
        h[k] = v
    return h


def write_fits(path: str | os.PathLike[str], image: npt.NDArray[np.floating], header: fits.Header) -> Path:
    """Write image [ny, nx] as [1, 1, ny, nx] float32 with `header` (atomically)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(image, np.float32)[None, None]
    hdu = fits.PrimaryHDU(data=data, header=header)
    tmp = p.with_name(p.name + ".tmp")
    hdu.writeto(tmp, overwrite=True, output_verify="silentfix")
    os.replace(tmp, p)
    return p


def write_thumbnail(
    path: str | os.PathLike[str], image: npt.NDArray[np.floating], header: fits.Header, max_size: int = 900
) -> Path:
    """The image's PNG (seed 000's ``thumbnail_path``): a quicklook figure of the central region with
    RA/Dec axes, a colour bar in Jy/beam, the beam and the noise (``astro.quicklook``), under a
    stretch that does not saturate; the whole 4800² shrunk to a tile showed no source."""
    from astro.quicklook import quicklook_array

    return quicklook_array(image, header, path, zoom=True, max_px=max_size, title=str(header.get("OBJECT", "")))


@dataclass
class Detection:
    x: float  # pixel (0-based), sub-pixel
    y: float
    peak: float  # Jy/beam
    npix: int


def find_sources(image: npt.NDArray[np.floating], noise: float, nsigma: float = 5.0) -> list[Detection]:
    """Islands of pixels above nsigma * noise; each gives its peak, refined by a 3x3 quadratic fit."""
    a = np.asarray(image, np.float32)
    if not (noise > 0):
        return []
    lab, n = ndimage.label(a > nsigma * noise)
    if n == 0:
        return []
    idx = np.arange(1, n + 1)
    pos = ndimage.maximum_position(a, lab, idx)
    sizes = ndimage.sum_labels(np.ones_like(a), lab, idx)
    out = []
    for (y, x), s in zip(pos, sizes, strict=True):
        yi, xi = int(y), int(x)
        dx = dy = 0.0
        peak = float(a[yi, xi])
        if 0 < yi < a.shape[0] - 1 and 0 < xi < a.shape[1] - 1:
            cx = a[yi, xi - 1 : xi + 2].astype(float)
            cy = a[yi - 1 : yi + 2, xi].astype(float)
            denx = cx[0] - 2 * cx[1] + cx[2]
            deny = cy[0] - 2 * cy[1] + cy[2]
            if denx < 0:
                dx = float(np.clip(0.5 * (cx[0] - cx[2]) / denx, -0.5, 0.5))
            if deny < 0:
                dy = float(np.clip(0.5 * (cy[0] - cy[2]) / deny, -0.5, 0.5))
            peak = float(cx[1] - 0.25 * (cx[0] - cx[2]) * dx + (-0.25 * (cy[0] - cy[2]) * dy))
        out.append(Detection(xi + dx, yi + dy, peak, int(s)))
    out.sort(key=lambda d: -d.peak)
    return out


def count_sources_above(image: npt.NDArray[np.floating], noise: float, nsigma: float = 5.0) -> int:
    """Number of islands brighter than nsigma * noise."""
    a = np.asarray(image, np.float32)
    if not (noise > 0):
        return 0
    _, n = ndimage.label(a > nsigma * noise)
    return int(n)


def pixel_to_radec(
    x: float, y: float, npix: int, cell_rad: float, phase_dir: tuple[float, float]
) -> tuple[float, float]:
    """(ra, dec) radians of a 0-based pixel in our image convention (SIN projection)."""
    from actors.calibrator.model import lm_to_radec

    lval = -(x - npix / 2) * cell_rad
    mval = (y - npix / 2) * cell_rad
    ra, dec = lm_to_radec(lval, mval, phase_dir[0], phase_dir[1])
    return float(ra), float(dec)
