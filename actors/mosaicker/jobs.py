"""One mosaic job, as a plain function for the process pool: load tiles, combine, write, count.

The primary beam is the DSA-110 Airy pattern (``astro.primary_beam``) at the tiles' frequency,
wrapped in :class:`AiryModel`, a picklable callable with the signature ``linear.py`` expects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from actors.mosaicker.linear import Tile, linear_mosaic, write_mosaic
from astro.primary_beam import airy_beam, angular_separation
from astro.restored_image import read_pointing

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class AiryModel:
    freq_hz: float

    def __call__(self, ra: FloatArray, dec: FloatArray, ra0: float, dec0: float) -> FloatArray:
        sep = angular_separation(np.radians(ra), np.radians(dec), math.radians(ra0), math.radians(dec0))
        gain: FloatArray = np.asarray(airy_beam(sep, self.freq_hz), dtype=np.float64)
        return gain


def build_mosaic(paths: list[str], sigmas: list[float], out_dir: str, name: str) -> dict[str, Any]:
    """Mosaic the tiles at ``paths`` (flat noise ``sigmas``; ≤ 0 means estimate it) into ``out_dir``.

    Returns the products (``MosaicProducts.to_dict()``) plus the declination range covered.
    """
    tiles = [Tile.load(p, sigma_jy=s if s > 0 else None) for p, s in zip(paths, sigmas, strict=True)]
    freq = read_pointing(paths[0]).freq_hz
    mosaic = linear_mosaic(tiles, AiryModel(freq))
    products = write_mosaic(mosaic, out_dir, name)
    ny, nx = mosaic.data.shape
    xs = np.concatenate([np.linspace(0, nx - 1, 64), np.linspace(0, nx - 1, 64), np.zeros(64), np.full(64, nx - 1)])
    ys = np.concatenate([np.zeros(64), np.full(64, ny - 1), np.linspace(0, ny - 1, 64), np.linspace(0, ny - 1, 64)])
    _, dec = mosaic.wcs.pixel_to_world_values(xs, ys)
    dec = np.asarray(dec, dtype=np.float64)
    out = products.to_dict()
    out["dec_min_deg"] = float(np.nanmin(dec))
    out["dec_max_deg"] = float(np.nanmax(dec))
    return out
