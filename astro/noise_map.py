"""The local noise of an image: median background and robust rms in boxes, interpolated.

Computed once per image and read at any pixel; used by forced photometry (the variability
detector) and by the mosaicker's weights, so it lives in the shared science package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from astro.restored_image import ImageError

FloatArray = npt.NDArray[np.float64]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
_MAD_TO_SIGMA = 1.482602218505602


@dataclass(frozen=True, slots=True)
class NoiseMap:
    """Median background and robust rms on a coarse grid of boxes, interpolated on demand."""

    background: FloatArray  # (ny_boxes, nx_boxes)
    rms: FloatArray
    y_centres: FloatArray  # pixel coordinate of each box centre
    x_centres: FloatArray
    shape: tuple[int, int]

    def at(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Bilinear interpolation of (background, rms) at pixel positions (0-based)."""
        return _bilinear(self.background, self.y_centres, self.x_centres, x, y), _bilinear(
            self.rms, self.y_centres, self.x_centres, x, y
        )

    def full(self) -> tuple[FloatArray, FloatArray]:
        """The maps at every pixel of the image (memory: two float64 images)."""
        ny, nx = self.shape
        yy, xx = np.meshgrid(np.arange(ny, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij")
        b, r = self.at(xx.ravel(), yy.ravel())
        return b.reshape(ny, nx), r.reshape(ny, nx)

    @property
    def median_rms(self) -> float:
        finite = self.rms[np.isfinite(self.rms)]
        return float(np.median(finite)) if finite.size else float("nan")


def _bilinear(grid: FloatArray, yc: FloatArray, xc: FloatArray, x: FloatArray, y: FloatArray) -> FloatArray:
    def frac_index(c: FloatArray, v: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
        if c.size == 1:
            return np.zeros(v.shape, dtype=np.intp), np.zeros(v.shape)
        v = np.clip(v, c[0], c[-1])
        i = np.clip(np.searchsorted(c, v, side="right") - 1, 0, c.size - 2)
        t = (v - c[i]) / (c[i + 1] - c[i])
        return i, t

    iy, ty = frac_index(yc, np.asarray(y, dtype=np.float64))
    ix, tx = frac_index(xc, np.asarray(x, dtype=np.float64))
    iy1 = np.minimum(iy + 1, yc.size - 1)
    ix1 = np.minimum(ix + 1, xc.size - 1)
    out: FloatArray = (
        grid[iy, ix] * (1 - ty) * (1 - tx)
        + grid[iy, ix1] * (1 - ty) * tx
        + grid[iy1, ix] * ty * (1 - tx)
        + grid[iy1, ix1] * ty * tx
    )
    return out


def default_box_size(beam_cov_pix: FloatArray, shape: tuple[int, int]) -> int:
    """About 30 beam FWHM on a side (≥ 64 pixels), so a box holds ~ 1000 independent beams."""
    fwhm_pix = math.sqrt(float(np.max(np.linalg.eigvalsh(beam_cov_pix)))) / _FWHM_TO_SIGMA
    return int(min(max(64, round(30 * fwhm_pix)), max(shape)))


def estimate_noise(data: npt.ArrayLike, box: int, *, stride: int = 2, clip: float = 3.0) -> NoiseMap:
    """Median background and 1.4826 × MAD rms in ``box`` × ``box`` pixel boxes.

    Every ``stride``-th pixel along each axis is used: neighbouring pixels are correlated over a
    beam, so skipping them loses little information and saves most of the cost. NaN pixels
    (blanked or outside the projection) are ignored; a box with too few finite pixels gets NaN.
    ``clip`` > 0 re-estimates both after dropping pixels more than ``clip`` rms from the median.
    """
    img = np.asarray(data)
    if img.ndim != 2:
        raise ImageError(f"noise map needs a 2-D image, got shape {img.shape}")
    if box < 4:
        raise ImageError(f"noise box must be at least 4 pixels, got {box}")
    ny, nx = img.shape
    nby, nbx = max(1, round(ny / box)), max(1, round(nx / box))
    ye = np.linspace(0, ny, nby + 1).astype(int)
    xe = np.linspace(0, nx, nbx + 1).astype(int)
    bkg = np.full((nby, nbx), np.nan)
    rms = np.full((nby, nbx), np.nan)
    for j in range(nby):
        band = img[ye[j] : ye[j + 1] : stride]
        for i in range(nbx):
            v = band[:, xe[i] : xe[i + 1] : stride].ravel()
            if not np.isfinite(v).all():
                v = v[np.isfinite(v)]
            if v.size < 16:
                continue
            med = np.median(v)
            sd = _MAD_TO_SIGMA * np.median(np.abs(v - med))
            if clip > 0 and sd > 0:
                # One symmetric clip removes the wings sources put on the distribution (which
                # bias the median up in a crowded field) but leaves a Gaussian's median and MAD.
                v = v[np.abs(v - med) < clip * sd]
                med = np.median(v)
                sd = _MAD_TO_SIGMA * np.median(np.abs(v - med))
            bkg[j, i] = med
            rms[j, i] = sd
    # A box lost to blanking borrows the median of the valid boxes rather than poisoning the
    # interpolation of its neighbours.
    for grid in (bkg, rms):
        bad = ~np.isfinite(grid)
        if bad.any() and (~bad).any():
            grid[bad] = np.median(grid[~bad])
    return NoiseMap(
        background=bkg,
        rms=rms,
        y_centres=(ye[:-1] + ye[1:] - 1) / 2.0,
        x_centres=(xe[:-1] + xe[1:] - 1) / 2.0,
        shape=(ny, nx),
    )
