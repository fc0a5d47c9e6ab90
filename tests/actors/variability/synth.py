"""Synthetic restored images for the photometry and mosaic tests.

Noise is stationary Gaussian noise whose autocorrelation is the restoring beam (what an
interferometric image's noise looks like to first order), made by filtering white noise in
Fourier space; point sources are the restoring beam scaled by their (apparent) flux.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from actors.variability.photometry import FitsImage, RestoringBeam


def sin_wcs(ra0: float, dec0: float, shape: tuple[int, int], cdelt_deg: float) -> WCS:
    ny, nx = shape
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra0, dec0]
    w.wcs.crpix = [nx / 2 + 0.5, ny / 2 + 0.5]
    w.wcs.cdelt = [-cdelt_deg, cdelt_deg]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def correlated_noise(
    shape: tuple[int, int], cov_pix: np.ndarray, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    ny, nx = shape
    ly = np.fft.fftfreq(ny) * ny
    lx = np.fft.fftfreq(nx) * nx
    yy, xx = np.meshgrid(ly, lx, indexing="ij")
    ci = np.linalg.inv(cov_pix)
    rho = np.exp(-0.5 * (ci[0, 0] * xx * xx + 2 * ci[0, 1] * xx * yy + ci[1, 1] * yy * yy))
    h = np.sqrt(np.clip(np.fft.fft2(rho).real, 0, None))
    white = rng.standard_normal(shape)
    n = np.fft.ifft2(np.fft.fft2(white) * h).real
    n *= sigma / np.sqrt(np.mean(h**2))
    return n


def add_point_sources(
    data: np.ndarray, cov_pix: np.ndarray, x: np.ndarray, y: np.ndarray, amp: np.ndarray
) -> None:
    ci = np.linalg.inv(cov_pix)
    h = 12
    for xi, yi, ai in zip(x, y, amp, strict=True):
        cx, cy = round(xi), round(yi)
        y0, y1 = max(cy - h, 0), min(cy + h + 1, data.shape[0])
        x0, x1 = max(cx - h, 0), min(cx + h + 1, data.shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        dx, dy = xx - xi, yy - yi
        data[y0:y1, x0:x1] += ai * np.exp(
            -0.5 * (ci[0, 0] * dx * dx + 2 * ci[0, 1] * dx * dy + ci[1, 1] * dy * dy)
        )


def make_image(
    *,
    ra0: float = 150.0,
    dec0: float = 40.0,
    shape: tuple[int, int] = (400, 400),
    cdelt_deg: float = 5.0 / 3600,
    beam: RestoringBeam | None = None,
    sigma: float = 1e-3,
    sources: list[tuple[float, float, float]] | None = None,
    seed: int = 0,
    background: float = 0.0,
) -> FitsImage:
    """An image with noise ``sigma`` (Jy/beam) and point sources (ra, dec, apparent flux Jy)."""
    beam = beam or RestoringBeam(20.0 / 3600, 15.0 / 3600, 30.0)
    wcs = sin_wcs(ra0, dec0, shape, cdelt_deg)
    cov = beam.pixel_covariance(wcs)
    rng = np.random.default_rng(seed)
    data = correlated_noise(shape, cov, sigma, rng) + background
    if sources:
        ra, dec, amp = (np.array(v, dtype=float) for v in zip(*sources, strict=True))
        x, y = wcs.world_to_pixel_values(ra, dec)
        add_point_sources(data, cov, np.asarray(x), np.asarray(y), amp)
    header = wcs.to_header()
    beam.to_header(header)
    header["BUNIT"] = "JY/BEAM"
    return FitsImage(data=data.astype(np.float32), wcs=wcs, beam=beam, header=header)


def write_fits(image: FitsImage, path: Path, *, mjd: float | None = None, four_d: bool = False) -> Path:
    header = image.header.copy()
    data = image.data
    if four_d:
        data = data[None, None]
    if mjd is not None:
        header["MJD-OBS"] = mjd
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True)
    return path
