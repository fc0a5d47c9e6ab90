"""Imaging weights: natural, uniform and Briggs (robust) weighting on the uv grid.

Briggs (1995) as CASA and WSClean implement it: with W_k the sum of natural weights in uv cell k
(cells of the image's Fourier grid, du = 1 / (npix * cell); both (u, v) and (-u, -v) count, since
the image is real),

    f^2 = (5 * 10^-R)^2 / (sum_k W_k^2 / sum_k W_k),   w_i <- w_i / (1 + W_k(i) f^2)

R = robust: -2 is close to uniform, +2 close to natural.  `robust=None` gives natural weights.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

C_LIGHT = 299792458.0


@numba.njit(cache=True)
def _cell_index(u: float, v: float, nu: int, nv: int, du: float) -> int:  # pragma: no cover
    iu = int(np.floor(u / du + 0.5)) + nu // 2
    iv = int(np.floor(v / du + 0.5)) + nv // 2
    if iu < 0 or iu >= nu or iv < 0 or iv >= nv:
        return -1
    return iu * nv + iv


@numba.njit(cache=True)
def _grid_weights(
    uvw: npt.NDArray[np.float64], freq: npt.NDArray[np.float64], wgt: npt.NDArray[np.float32], npix: int, du: float
) -> npt.NDArray[np.float64]:  # pragma: no cover - compiled
    nrow, nchan = wgt.shape
    grid = np.zeros(npix * npix)
    for r in range(nrow):
        for c in range(nchan):
            w = wgt[r, c]
            if w <= 0:
                continue
            s = freq[c] / 299792458.0
            u = uvw[r, 0] * s
            v = uvw[r, 1] * s
            k = _cell_index(u, v, npix, npix, du)
            if k >= 0:
                grid[k] += w
            k = _cell_index(-u, -v, npix, npix, du)
            if k >= 0:
                grid[k] += w
    return grid


@numba.njit(parallel=True, cache=True)
def _apply_density(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    wgt: npt.NDArray[np.float32],
    grid: npt.NDArray[np.float64],
    npix: int,
    du: float,
    f2: float,
    uniform: bool,
    out: npt.NDArray[np.float32],
) -> None:  # pragma: no cover - compiled
    nrow, nchan = wgt.shape
    for r in numba.prange(nrow):
        for c in range(nchan):
            w = wgt[r, c]
            if w <= 0:
                out[r, c] = 0
                continue
            s = freq[c] / 299792458.0
            k = _cell_index(uvw[r, 0] * s, uvw[r, 1] * s, npix, npix, du)
            if k < 0:
                out[r, c] = 0
                continue
            if uniform:
                out[r, c] = w / grid[k]
            else:
                out[r, c] = w / (1.0 + grid[k] * f2)


def imaging_weights(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    natural: npt.NDArray[np.float32],
    npix: int,
    cell_rad: float,
    robust: float | None = 0.0,
    mode: str = "briggs",
) -> npt.NDArray[np.float32]:
    """Imaging weights [nrow, nchan] from natural weights (0 = flagged).

    mode: "briggs" (uses `robust`; robust=None means natural), "natural" or "uniform".
    Visibilities outside the image's uv grid get weight 0.
    """
    wn = np.ascontiguousarray(natural, np.float32)
    if mode == "natural" or (mode == "briggs" and robust is None):
        return wn.copy()
    du = 1.0 / (npix * cell_rad)
    uvw_c = np.ascontiguousarray(uvw, np.float64)
    f = np.ascontiguousarray(freq, np.float64)
    grid = _grid_weights(uvw_c, f, wn, int(npix), du)
    out = np.empty_like(wn)
    if mode == "uniform":
        _apply_density(uvw_c, f, wn, grid, int(npix), du, 0.0, True, out)
        return out
    if mode != "briggs":
        raise ValueError(f"unknown weighting mode {mode!r}")
    sw = grid.sum()
    sw2 = float(np.dot(grid, grid))
    f2 = (5.0 * 10.0 ** (-float(robust))) ** 2 / (sw2 / sw) if sw > 0 else 0.0  # type: ignore[arg-type]
    _apply_density(uvw_c, f, wn, grid, int(npix), du, f2, False, out)
    return out


def expected_image_noise(imaging_wgt: npt.NDArray[np.floating], natural_wgt: npt.NDArray[np.floating]) -> float:
    """Thermal noise (Jy/beam) of a dirty/residual image made with `imaging_wgt`.

    `natural_wgt` are 1/sigma^2 with sigma the noise of each real/imaginary part; the image is
    sum w V / sum w, so its noise is sqrt(sum w^2 sigma^2) / sum w.
    """
    w = np.asarray(imaging_wgt, np.float64)
    wn = np.asarray(natural_wgt, np.float64)
    ok = (w > 0) & (wn > 0)
    sw = w[ok].sum()
    if sw <= 0:
        return float("nan")
    return float(np.sqrt(np.sum(w[ok] ** 2 / wn[ok])) / sw)
