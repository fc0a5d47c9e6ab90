"""CLEAN deconvolution: Cotton-Schwab major cycles with a Clark/Hogbom minor cycle, and restoration.

Major cycle (Schwab 1984): the model image is degridded with ducc0 (w-aware), subtracted from the
visibilities, and the residual visibilities are regridded - so the residual image is exact, w-terms
included, whatever the approximations of the minor cycle.

Minor cycle (Clark 1980 / Hogbom 1974): the pixels of the residual brighter than the cycle's stop
level form an *active set*; each iteration takes the brightest active pixel, adds gain * peak to the
model there and subtracts gain * peak * PSF at the active pixels only (compiled with numba).  With
every pixel active this is exactly Hogbom's algorithm.  The stop level of a minor cycle is
max(threshold, cycle_factor * (PSF sidelobe) * peak residual), as CASA's cyclethreshold.

The stop level uses the sidelobes *far* from the PSF centre (outside a quarter of the PSF size),
since those near it are subtracted exactly inside the patch.

The global threshold is `threshold_sigma` times the robust (MAD) noise of the residual, or an
absolute `threshold_jy`, whichever is higher; CLEAN also stops after `niter` components.

Restoration: the PSF main lobe (`main_lobe`: the pixels above half power that the peak reaches
without climbing) is fitted with an elliptical Gaussian of peak 1 (least squares on the PSF values, as
CASA and WSClean fit it), giving BMAJ, BMIN (FWHM, radians) and BPA (east of north, radians); the
model components are convolved with that Gaussian (peak 1) and added to the residual.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numba
import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.optimize import least_squares

from actors.imager.averaging import BaselineAveraging
from actors.imager.gridding import degrid, grid_dirty, make_psf

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: the PSF level that bounds the main lobe for the beam fit: half power. CASA's tclean uses
#: psfcutoff = 0.35 by default; on a sparse DSA-110 subarray the lobe is not Gaussian below ~0.45
#: (it flattens into a shoulder before the grating lobes), and the fit to the pixels above 0.35
#: widened the major axis by ~10 % over the lobe's half-power width, which sets the flux scale of
#: the restored components. For the full array the two agree within 3 %.
PSF_CUTOFF = 0.5
#: a main lobe with fewer pixels above half power is undersampled (cells coarser than ~1/3 of the
#: beam): `fit_beam` then keeps the coarse-grid fit (`_coarse_fit`)
MIN_LOBE_PIXELS = 15


@dataclass(frozen=True)
class Beam:
    """Restoring beam: FWHM major/minor axes and position angle (east of north), radians."""

    bmaj: float
    bmin: float
    bpa: float

    @property
    def deg(self) -> tuple[float, float, float]:
        return float(np.rad2deg(self.bmaj)), float(np.rad2deg(self.bmin)), float(np.rad2deg(self.bpa))

    @property
    def arcsec(self) -> tuple[float, float, float]:
        """(bmaj ", bmin ", bpa deg)."""
        return self.bmaj * 206264.80624709636, self.bmin * 206264.80624709636, float(np.rad2deg(self.bpa))


class FieldModel(Protocol):
    """Sources taken out of the CLEAN model and fitted in the visibilities (`field_peel.FieldPeeler`)."""

    def select(
        self, model: npt.NDArray[np.float32], dirty: npt.NDArray[np.float32], noise: float, beam: Beam, sidelobe: float
    ) -> bool: ...

    def fit(self, target: npt.NDArray[np.complex64], wgt: npt.NDArray[np.float32]) -> npt.NDArray[np.complex64]: ...


@dataclass
class CleanResult:
    model: npt.NDArray[np.float32]  # Jy/pixel, [y, x]
    residual: npt.NDArray[np.float32]  # Jy/beam
    restored: npt.NDArray[np.float32]  # Jy/beam
    psf: npt.NDArray[np.float32]
    beam: Beam
    dirty_peak: float
    n_components: int
    n_major: int
    threshold: float
    noise: float  # robust noise of the final residual, Jy/beam
    sum_weights: float
    converged: bool = False  # the residual's peak reached the threshold (not stopped by niter/max_major)
    timings: dict[str, float] = field(default_factory=dict)


def robust_std(image: npt.NDArray[np.floating], max_samples: int = 2_000_000) -> float:
    """1.4826 * MAD of finite pixels (a regular subsample for large images)."""
    a = np.asarray(image)
    if a.size > max_samples:
        step = int(np.ceil(np.sqrt(a.size / max_samples)))
        a = a[::step, ::step] if a.ndim == 2 else a.ravel()[:: step * step]
    a = a[np.isfinite(a)].astype(np.float64, copy=False)
    if a.size == 0:
        return float("nan")
    med = np.median(a)
    return float(1.482602218505602 * np.median(np.abs(a - med)))


def main_lobe(psf: npt.NDArray[np.floating], level: float = PSF_CUTOFF) -> tuple[npt.NDArray[np.bool_], int]:
    """The PSF's central main lobe: (mask of a window centred on the peak, the window's half-size).

    The pixels above `level` that the peak reaches by a path that never climbs (a watershed of
    the central peak): a sidelobe or a grating-lobe ridge that rises again beyond a saddle above
    `level` is not part of the main lobe, however close. A plain connected region above 35 %
    took in the E-W grating lobes of a sparse DSA-110 PSF and gave a 98" x 12" "beam" for a
    ~32" x 14" lobe (issue 11).
    """
    n = psf.shape[0]
    c = n // 2
    half = min(c, 32)
    while True:
        win = np.asarray(psf[c - half : c + half + 1, c - half : c + half + 1], np.float64)
        lobe = _descending_region(win, half, level)
        ys, xs = np.nonzero(lobe)
        inside = ys.min() > 0 and xs.min() > 0 and ys.max() < 2 * half and xs.max() < 2 * half
        if inside or half >= c:
            return lobe, half
        half = min(c, half * 2)


def _descending_region(win: npt.NDArray[np.float64], centre: int, level: float) -> npt.NDArray[np.bool_]:
    """Pixels reached from (centre, centre) through 8-neighbours that are >= level and not higher
    than the pixel they are reached from (a 0.1 % tolerance absorbs gridding noise on a plateau)."""
    ny, nx = win.shape
    lobe = np.zeros(win.shape, bool)
    lobe[centre, centre] = True
    stack = [(centre, centre)]
    while stack:
        y, x = stack.pop()
        v = win[y, x] + 1e-3
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                yy, xx = y + dy, x + dx
                if 0 <= yy < ny and 0 <= xx < nx and not lobe[yy, xx] and level <= win[yy, xx] <= v:
                    lobe[yy, xx] = True
                    stack.append((yy, xx))
    return lobe


def _coarse_fit(psf: npt.NDArray[np.floating], cell_rad: float, level: float = 0.35) -> Beam:
    """The beam of an undersampled lobe: a weighted fit of log PSF over the connected pixels above
    `level` (the fit before issue 11). On cells coarser than ~1/3 of the beam, CLEAN components
    of a source between pixels are split over neighbouring pixels; the wider beam this fit gives
    restores their flux at the source's position, where the lobe's own width lost ~20 %
    (tests/dsa/test_end_to_end_ese.py, 16 antennas on 8" cells)."""
    n = psf.shape[0]
    c = n // 2
    half = min(c, 64)
    win = np.asarray(psf[c - half : c + half, c - half : c + half], np.float64)
    # grow the window until the main lobe fits inside it
    while half < c:
        lab, _ = ndimage.label(win > level)
        lobe = lab == lab[half, half]
        ys, xs = np.nonzero(lobe)
        if ys.min() > 0 and xs.min() > 0 and ys.max() < 2 * half - 1 and xs.max() < 2 * half - 1:
            break
        half = min(c, half * 2)
        win = np.asarray(psf[c - half : c + half, c - half : c + half], np.float64)
    lab, _ = ndimage.label(win > level)
    lobe = lab == lab[half, half]
    # always include the 3x3 around the peak: a lobe unresolved along one axis (one pixel wide,
    # as with a long, thin beam on coarse cells) leaves that axis's curvature undetermined, which
    # gave a beam millions of pixels long (and a restoring kernel that could not be allocated)
    lobe[half - 1 : half + 2, half - 1 : half + 2] = True
    ys, xs = np.nonzero(lobe)
    vals = np.clip(win[ys, xs], 1e-6, None)
    lx = -(xs - half).astype(float)  # l grows to the east = decreasing x
    my = (ys - half).astype(float)
    # log p = -(a l^2 + 2 b l m + c m^2)
    A = np.stack([lx * lx, 2 * lx * my, my * my], axis=1)
    wts = vals
    coef, *_ = np.linalg.lstsq(A * wts[:, None], -np.log(vals) * wts, rcond=None)
    q = np.array([[coef[0], coef[1]], [coef[1], coef[2]]])
    evals, evecs = np.linalg.eigh(q)
    evals = np.clip(evals, 1e-12, None)
    # Gaussian exp(-0.5 r^T S^-1 r): S^-1 = 2 q; sigma^2 = 1 / (2 eval)
    sig = np.sqrt(1.0 / (2.0 * evals))  # pixels; evals ascending -> sig descending
    smaj, smin = float(sig[0]), float(sig[1])
    vmaj = evecs[:, 0]  # (l, m) direction of the major axis
    pa = float(np.arctan2(vmaj[0], vmaj[1]))  # east of north
    if pa > np.pi / 2:
        pa -= np.pi
    elif pa <= -np.pi / 2:
        pa += np.pi
    return Beam(smaj * FWHM_PER_SIGMA * cell_rad, smin * FWHM_PER_SIGMA * cell_rad, pa)


def fit_beam(psf: npt.NDArray[np.floating], cell_rad: float, level: float = PSF_CUTOFF) -> Beam:
    """Fit an elliptical Gaussian (peak 1, centred) to the PSF main lobe (see module docstring).

    As CASA's tclean and WSClean do: least squares on the PSF values themselves over the main
    lobe (`main_lobe`, above `PSF_CUTOFF`), three parameters (two widths and the angle). The earlier
    weighted fit of log PSF leaned on the sharp top of a DSA-110 PSF and gave a minor axis about
    half the lobe's. Started from the log-quadratic fit, which is exact for a Gaussian lobe.
    """
    lobe, half = main_lobe(psf, level)
    if int(lobe.sum()) < MIN_LOBE_PIXELS:
        return _coarse_fit(psf, cell_rad)
    c = psf.shape[0] // 2
    win = np.asarray(psf[c - half : c + half + 1, c - half : c + half + 1], np.float64)
    # always include the 3x3 around the peak: a lobe unresolved along one axis (one pixel wide,
    # as with a long, thin beam on coarse cells) leaves that axis's curvature undetermined, which
    # gave a beam millions of pixels long (and a restoring kernel that could not be allocated)
    lobe[half - 1 : half + 2, half - 1 : half + 2] = True
    ys, xs = np.nonzero(lobe)
    vals = win[ys, xs]
    lx = -(xs - half).astype(float)  # l grows to the east = decreasing x
    my = (ys - half).astype(float)
    # start: log p = -(a l^2 + 2 b l m + c m^2), weighted by p
    pos = np.clip(vals, 1e-6, None)
    design = np.stack([lx * lx, 2 * lx * my, my * my], axis=1)
    coef, *_ = np.linalg.lstsq(design * pos[:, None], -np.log(pos) * pos, rcond=None)
    q0 = np.array([[coef[0], coef[1]], [coef[1], coef[2]]])
    evals, evecs = np.linalg.eigh(q0)
    evals = np.clip(evals, 1e-6, None)
    # parameters: log sigma_major, log sigma_minor (pixels), angle of the major axis from +m to +l
    p0 = np.array(
        [0.5 * np.log(1 / (2 * evals[0])), 0.5 * np.log(1 / (2 * evals[1])), np.arctan2(evecs[0, 0], evecs[1, 0])]
    )

    def resid(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        sa, sb, th = np.exp(p[0]), np.exp(p[1]), p[2]
        a = lx * np.sin(th) + my * np.cos(th)
        b = lx * np.cos(th) - my * np.sin(th)
        return np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2)) - vals  # type: ignore[no-any-return]

    fit = least_squares(resid, p0, method="lm" if vals.size >= 3 else "trf")
    sa, sb, pa = float(np.exp(fit.x[0])), float(np.exp(fit.x[1])), float(fit.x[2])
    if not np.all(np.isfinite(fit.x)) or max(sa, sb) > 4 * half:
        sa, sb, pa = float(np.exp(p0[0])), float(np.exp(p0[1])), float(p0[2])
    if sb > sa:
        sa, sb, pa = sb, sa, pa + np.pi / 2
    pa = float((pa + np.pi / 2) % np.pi - np.pi / 2)  # east of north, in (-90, 90] deg
    return Beam(sa * FWHM_PER_SIGMA * cell_rad, sb * FWHM_PER_SIGMA * cell_rad, pa)


def beam_gaussian(
    dx: npt.NDArray[np.floating], dy: npt.NDArray[np.floating], beam: Beam, cell_rad: float
) -> npt.NDArray[np.float64]:
    """The restoring beam (peak 1) at pixel offsets (dx, dy) from its centre; x grows west."""
    smaj = beam.bmaj / FWHM_PER_SIGMA / cell_rad
    smin = beam.bmin / FWHM_PER_SIGMA / cell_rad
    lx, my = -np.asarray(dx, float), np.asarray(dy, float)
    s, co = np.sin(beam.bpa), np.cos(beam.bpa)
    a = lx * s + my * co  # along the major axis
    b = lx * co - my * s  # along the minor axis
    return np.exp(-0.5 * ((a / smaj) ** 2 + (b / smin) ** 2))


def kernel_radius(beam: Beam, cell_rad: float, nsig: float = 5.0) -> int:
    """Half-size in pixels of the restoring kernel: `nsig` sigma of the major axis."""
    return int(np.ceil(nsig * beam.bmaj / FWHM_PER_SIGMA / cell_rad)) + 1


def gaussian_kernel(beam: Beam, cell_rad: float, nsig: float = 5.0) -> npt.NDArray[np.float32]:
    """The restoring beam sampled on the pixel grid [y, x], peak 1, odd size, centred."""
    r = kernel_radius(beam, cell_rad, nsig)
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(float)
    return beam_gaussian(x, y, beam, cell_rad).astype(np.float32)


@numba.njit(cache=True)
def _add_kernel(
    image: npt.NDArray[np.float32],
    ys: npt.NDArray[np.int64],
    xs: npt.NDArray[np.int64],
    flux: npt.NDArray[np.float32],
    kern: npt.NDArray[np.float32],
) -> None:  # pragma: no cover - compiled
    ny, nx = image.shape
    r = kern.shape[0] // 2
    for k in range(ys.shape[0]):
        y0, x0, f = ys[k], xs[k], flux[k]
        for dy in range(-r, r + 1):
            y = y0 + dy
            if y < 0 or y >= ny:
                continue
            for dx in range(-r, r + 1):
                x = x0 + dx
                if x < 0 or x >= nx:
                    continue
                image[y, x] += f * kern[dy + r, dx + r]


def restore(
    model: npt.NDArray[np.float32], residual: npt.NDArray[np.float32], beam: Beam, cell_rad: float
) -> npt.NDArray[np.float32]:
    """residual + model convolved with the restoring beam (peak-normalised)."""
    out = np.array(residual, np.float32, copy=True)
    ys, xs = np.nonzero(model)
    if ys.size:
        _add_kernel(
            out,
            ys.astype(np.int64),
            xs.astype(np.int64),
            model[ys, xs].astype(np.float32),
            gaussian_kernel(beam, cell_rad),
        )
    return out


#: the active pixels are searched in this many runs on numba's threads; the peak chosen is the
#: first largest in pixel order whatever the split, so components do not depend on the core count
MINOR_CHUNKS = 16


@numba.njit(parallel=True, cache=True)
def _minor_cycle(
    ay: npt.NDArray[np.int64],
    ax: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float32],
    psf: npt.NDArray[np.float32],
    gain: float,
    stop: float,
    max_iter: int,
    model: npt.NDArray[np.float32],
) -> int:  # pragma: no cover - compiled
    """Hogbom CLEAN on the active pixels: at most `max_iter` components, until the peak is below
    `stop`; returns how many. Both passes of a component (find the peak, subtract the PSF) run on
    every core; they stay two loops, which vectorise, where one fused loop did not (2x slower)."""
    n = vals.shape[0]
    pc = psf.shape[0] // 2
    npsf = psf.shape[0]
    size = (n + MINOR_CHUNKS - 1) // MINOR_CHUNKS
    best_k = np.full(MINOR_CHUNKS, -1, np.int64)
    best_v = np.zeros(MINOR_CHUNKS, np.float64)
    it = 0
    while it < max_iter:
        for c in numba.prange(MINOR_CHUNKS):
            bk = -1
            bv = 0.0
            for k in range(c * size, min(n, (c + 1) * size)):
                a = abs(vals[k])
                if a > bv:
                    bv = a
                    bk = k
            best_k[c] = bk
            best_v[c] = bv
        best = -1
        bv = 0.0
        for c in range(MINOR_CHUNKS):  # in pixel order: the first largest, as one serial scan finds
            if best_k[c] >= 0 and best_v[c] > bv:
                bv = best_v[c]
                best = best_k[c]
        if best < 0 or bv < stop:
            break
        y0 = ay[best]
        x0 = ax[best]
        f = gain * vals[best]
        model[y0, x0] += f
        for k in numba.prange(n):
            dy = ay[k] - y0 + pc
            dx = ax[k] - x0 + pc
            if 0 <= dy < npsf and 0 <= dx < npsf:
                vals[k] -= f * psf[dy, dx]
        it += 1
    return it


def psf_sidelobe(psf: npt.NDArray[np.float32], level: float = 0.35, inner_fraction: float = 0.0) -> float:
    """Largest |PSF| outside the main lobe (and, with `inner_fraction`, outside that radius).

    With inner_fraction = 0.25 this is the sidelobe level far from the centre: what a minor cycle
    that subtracts only the PSF patch cannot account for.
    """
    n = psf.shape[0]
    c = n // 2
    lab, _ = ndimage.label(psf > level)
    lobe = lab == lab[c, c]
    # exclude the lobe and its immediate surroundings (down to the first null)
    lobe = ndimage.binary_dilation(lobe, iterations=2)
    if inner_fraction > 0:
        y, x = np.ogrid[:n, :n]
        lobe = lobe | ((y - c) ** 2 + (x - c) ** 2 < (inner_fraction * n) ** 2)
    out = np.abs(np.where(lobe, 0.0, psf))
    return float(out.max())


def _as_given(vis: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
    return vis


def cotton_schwab(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    vis: npt.NDArray[np.complex64],
    wgt: npt.NDArray[np.float32],
    npix: int,
    cell_rad: float,
    niter: int = 1000,
    gain: float = 0.1,
    threshold_sigma: float = 3.0,
    threshold_jy: float = 0.0,
    cycle_factor: float = 1.5,
    max_major: int = 5,
    psf_size: int | None = None,
    max_active: int = 200_000,
    epsilon: float = 1e-4,
    nthreads: int = 2,
    do_wgridding: bool = True,
    dirty: npt.NDArray[np.float32] | None = None,
    known_vis: npt.NDArray[np.complex64] | None = None,
    refine: Callable[[npt.NDArray[np.complex64]], npt.NDArray[np.complex64] | None] | None = None,
    field_model: FieldModel | None = None,
    averaging: BaselineAveraging | None = None,
) -> CleanResult:
    """Image and CLEAN vis[nrow, nchan] (Stokes I) with imaging weights wgt[nrow, nchan].

    `psf_size` (even, default npix) is the size of the PSF used for the beam fit and minor cycles;
    smaller is cheaper and exact residuals still come from the major cycles.

    `known_vis` [nrow, nchan] are the visibilities of sources modelled outside CLEAN (`peel.py`):
    they are subtracted with the CLEAN model's in every major cycle and are not in the result.
    `refine(model_vis)`, if given, is called in every major cycle with the whole model's
    visibilities (CLEAN components + known sources) and may return new data visibilities - self-
    calibration (`selfcal.py`) - from which that cycle's residual is made.
    `field_model`, if given, is asked after every minor cycle (`select`, with the residual image
    the cycle started from and its noise) whether sources are to be taken out of the CLEAN model
    and fitted to the data minus the whole model (`fit`); the change of their visibilities joins
    `known_vis` for the following cycles.
    `averaging`, if given (`averaging.plan` on these uvw, freq and wgt), is what the gridder sees:
    every visibility set is averaged into its bins before gridding, and the degridded model is
    expanded back to [nrow, nchan], so everything else works on the rows as given.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    sw = float(np.sum(wgt, dtype=np.float64))
    binned: Callable[[npt.NDArray[np.complex64]], npt.NDArray[np.complex64]]
    unbinned: Callable[[npt.NDArray[np.complex64]], npt.NDArray[np.complex64]]
    if averaging is None:
        g_uvw, g_wgt = uvw, wgt
        binned = unbinned = _as_given
    else:
        g_uvw, g_wgt = averaging.uvw, averaging.weight
        binned, unbinned = averaging.average, averaging.expand

    def data_rows(
        vis: npt.NDArray[np.complex64], known_vis: npt.NDArray[np.complex64] | None
    ) -> npt.NDArray[np.complex64]:
        """What is left to image, in the gridder's rows: the data less the sources already known."""
        return binned(vis) if known_vis is None else binned(vis) - binned(known_vis)

    if dirty is None:
        first = data_rows(vis, known_vis)
        dirty = grid_dirty(g_uvw, freq, first, g_wgt, npix, cell_rad, epsilon, nthreads, sw, do_wgridding)
        del first
    timings["dirty"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    npsf = int(npix if psf_size is None else max(64, min(npix, psf_size)))
    npsf -= npsf % 2
    psf = make_psf(g_uvw, freq, g_wgt, npsf, cell_rad, epsilon, nthreads, do_wgridding)
    beam = fit_beam(psf, cell_rad)
    # the minor cycle subtracts the PSF patch exactly; it may go down to the level of the sidelobes
    # far from the centre (a fraction of a large PSF) before a major cycle is needed
    sidelobe = psf_sidelobe(psf, inner_fraction=0.25 if npsf >= 128 else 0.0)
    timings["psf"] = time.perf_counter() - t0

    model = np.zeros((npix, npix), np.float32)
    residual = dirty
    dirty_peak = float(np.max(np.abs(dirty)))
    ncomp = 0
    nmajor = 0
    thr = threshold_jy
    converged = False
    t_minor = 0.0
    t_major = 0.0
    for _ in range(max_major + 1):
        noise = robust_std(residual)
        thr = max(threshold_jy, threshold_sigma * noise)
        peak = float(np.max(np.abs(residual)))
        converged = peak <= thr
        if converged or ncomp >= niter or nmajor >= max_major:
            break
        t1 = time.perf_counter()
        stop = max(thr, min(cycle_factor * sidelobe, 0.95) * peak)
        absr = np.abs(residual)
        level = stop
        n_above = int(np.count_nonzero(absr >= level))
        if n_above > max_active:
            level = float(np.partition(absr.ravel(), absr.size - max_active)[absr.size - max_active])
        ay, ax = np.nonzero(absr >= level)
        del absr
        vals = residual[ay, ax].astype(np.float32)
        done = _minor_cycle(
            ay.astype(np.int64),
            ax.astype(np.int64),
            vals,
            psf,
            float(gain),
            float(max(stop, level)),
            int(niter - ncomp),
            model,
        )
        t_minor += time.perf_counter() - t1
        if done == 0:
            break
        ncomp += done
        t1 = time.perf_counter()
        fitting = field_model is not None and field_model.select(model, residual, noise, beam, sidelobe)
        model_vis = degrid(g_uvw, freq, model, cell_rad, g_wgt, epsilon, nthreads, do_wgridding)
        if fitting or refine is not None:
            # both need the whole model on the data's own rows
            mvis = unbinned(model_vis)
            del model_vis
            if known_vis is not None:
                mvis += known_vis
            if fitting:
                assert field_model is not None
                t2 = time.perf_counter()
                fvis = field_model.fit(vis - mvis, wgt)  # the change of their model
                mvis += fvis
                known_vis = fvis if known_vis is None else known_vis + fvis
                del fvis
                timings["field_peel"] = time.perf_counter() - t2
            if refine is not None:
                t2 = time.perf_counter()
                new = refine(mvis)
                if new is not None:
                    vis = new
                timings["refine"] = timings.get("refine", 0.0) + time.perf_counter() - t2
            np.subtract(vis, mvis, out=mvis)
            resid_vis = binned(mvis)
            del mvis
        else:
            # the residual in the gridder's rows directly (averaging is linear); into the model's
            # array, which is this cycle's own (binned(vis) may be the data themselves)
            data_vis = data_rows(vis, known_vis)
            resid_vis = np.subtract(data_vis, model_vis, out=model_vis)
            del data_vis, model_vis
        residual = grid_dirty(g_uvw, freq, resid_vis, g_wgt, npix, cell_rad, epsilon, nthreads, sw, do_wgridding)
        del resid_vis
        nmajor += 1
        t_major += time.perf_counter() - t1
    timings["minor"] = t_minor
    timings["major"] = t_major - timings.get("refine", 0.0) - timings.get("field_peel", 0.0)
    t1 = time.perf_counter()
    restored = restore(model, residual, beam, cell_rad)
    noise = robust_std(residual)
    timings["restore"] = time.perf_counter() - t1
    return CleanResult(
        model=model,
        residual=residual,
        restored=restored,
        psf=psf,
        beam=beam,
        dirty_peak=dirty_peak,
        n_components=int(np.count_nonzero(model)),
        n_major=nmajor,
        threshold=float(thr),
        noise=noise,
        sum_weights=sw,
        converged=converged,
        timings=timings,
    )
