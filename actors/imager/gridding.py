"""w-aware gridding and degridding with ducc0's wgridder, and the point spread function.

Image convention used by the whole imager: arrays are image[y, x] as in FITS, x along RA (pixel x
increasing -> RA decreasing, i.e. l = -(x - npix/2) * cell), y along Dec (m = (y - npix/2) * cell),
so the phase centre is at 0-based pixel (npix/2, npix/2), FITS CRPIX = npix/2 + 1.

ducc0 images are dirty[ix, iy] with l = (ix - npix/2) * cell; we transpose and pass flip_u=True
(l -> -l) *and* flip_w=True.  Visibility convention V = sum S exp(-2 pi i (u l + v m + w (n - 1)))
(see `astro.msio`); pixels are not divided by n (point-source fluxes, not brightness).

The w flag matters only away from the phase centre, where n - 1 ~ -(l^2 + m^2)/2 is not small:
without it ducc0 applied the w-term with the opposite sign, which put every off-axis source at
twice the shift an uncorrected w-term gives (north by ~7" at 1 deg for a DSA-110 tile, issue 11).
``tests/actors/imager/test_gridding.py::test_degrid_matches_the_direct_sum_off_axis`` checks the
degridder against the direct sum of `astro.skymodel.point_source_vis` with large w.

Images are normalised by the sum of imaging weights, so a point source of S Jy gives a peak of S
Jy/beam in the dirty image and the PSF peaks at 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from ducc0.wgridder import experimental as wg


def grid_dirty(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    vis: npt.NDArray[np.complex64],
    wgt: npt.NDArray[np.float32],
    npix: int,
    cell_rad: float,
    epsilon: float = 1e-4,
    nthreads: int = 2,
    sum_weights: float | None = None,
    do_wgridding: bool = True,
) -> npt.NDArray[np.float32]:
    """Dirty image [npix, npix] (y, x) of vis[nrow, nchan] with imaging weights wgt[nrow, nchan]."""
    w = np.ascontiguousarray(wgt, np.float32)
    sw = float(np.sum(w, dtype=np.float64)) if sum_weights is None else float(sum_weights)
    if sw <= 0:
        raise ValueError("all visibilities have zero weight: nothing to image")
    d = wg.vis2dirty(
        uvw=np.ascontiguousarray(uvw, np.float64),
        freq=np.ascontiguousarray(freq, np.float64),
        vis=np.ascontiguousarray(vis, np.complex64),
        wgt=w,
        npix_x=int(npix),
        npix_y=int(npix),
        pixsize_x=float(cell_rad),
        pixsize_y=float(cell_rad),
        epsilon=float(epsilon),
        do_wgridding=do_wgridding,
        nthreads=int(nthreads),
        flip_u=True,
        flip_w=True,
        divide_by_n=False,
    )
    out = np.ascontiguousarray(d.T)
    out *= np.float32(1.0 / sw)
    return out


def degrid(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    image: npt.NDArray[np.floating],
    cell_rad: float,
    wgt: npt.NDArray[np.float32] | None = None,
    epsilon: float = 1e-4,
    nthreads: int = 2,
    do_wgridding: bool = True,
) -> npt.NDArray[np.complex64]:
    """Model visibilities [nrow, nchan] of a model image [y, x] in Jy/pixel (the adjoint of gridding).

    Where `wgt` is 0 the visibility is not computed (left 0).
    """
    d = np.ascontiguousarray(np.asarray(image, np.float32).T)
    mask = None if wgt is None else np.ascontiguousarray(np.asarray(wgt) > 0, np.uint8)
    return wg.dirty2vis(  # type: ignore[no-any-return]
        uvw=np.ascontiguousarray(uvw, np.float64),
        freq=np.ascontiguousarray(freq, np.float64),
        dirty=d,
        mask=mask,
        pixsize_x=float(cell_rad),
        pixsize_y=float(cell_rad),
        epsilon=float(epsilon),
        do_wgridding=do_wgridding,
        nthreads=int(nthreads),
        flip_u=True,
        flip_w=True,
        divide_by_n=False,
    )


def make_psf(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    wgt: npt.NDArray[np.float32],
    npix: int,
    cell_rad: float,
    epsilon: float = 1e-4,
    nthreads: int = 2,
    do_wgridding: bool = True,
) -> npt.NDArray[np.float32]:
    """PSF [npix, npix] (y, x) normalised to 1 at its centre (npix/2, npix/2)."""
    w = np.ascontiguousarray(wgt, np.float32)
    ones = np.ones(w.shape, np.complex64)
    psf = grid_dirty(uvw, freq, ones, w, npix, cell_rad, epsilon, nthreads, None, do_wgridding)
    c = npix // 2
    peak = float(psf[c, c])
    if peak <= 0:
        raise ValueError("PSF has no positive peak")
    psf *= np.float32(1.0 / peak)
    return psf
