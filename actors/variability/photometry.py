"""Forced photometry at fixed catalogue positions on a restored FITS image.

The measurement is the one Condon (1997, PASP 109, 166) analyses for an unresolved source whose
position and shape are known: a weighted least-squares fit of a single parameter, the amplitude
``A`` of the restoring beam ``P`` centred on the catalogue position,

    A = Σ P_k (I_k − b_k) / Σ P_k² ,

over a small stamp of pixels ``k`` around the position, after subtracting the local background
``b``. The image is in Jy/beam, so ``A`` is the flux density of a point source in Jy.

Why the error is not simply ``σ / sqrt(Σ P²)``. The least-squares error formula assumes
independent pixels, but an interferometric image's noise is correlated over a beam: its
autocorrelation is (to first order) the restoring beam itself. Condon (1997) handles this by
counting independent beams; here the stamp is fixed, so the variance of the estimator can be
written exactly,

    Var(A) = σ² Σ_j Σ_k P_j P_k ρ(j − k) / (Σ P²)² ,

with ``ρ`` the noise correlation (the normalised beam). For Gaussian ``P`` and ``ρ`` the inner
quadratic form ``Pᵀ R P`` with ``R[j, k] = ρ(j − k)``; ``R`` depends only on integer pixel
lags, so it is one fixed matrix per image and the forms for all positions are one matrix
product. Ignoring the correlation would underestimate
the error by a factor of about the square root of the number of pixels per beam; the pull test
in ``tests/actors/variability`` checks that the errors come out calibrated.

``σ`` is the local noise: a robust rms (1.4826 × the median absolute deviation) and a median
background in boxes of a few tens of beams, computed once per image (:func:`estimate_noise`)
and interpolated bilinearly to each position. It is taken constant across a stamp (the boxes
are much larger than a stamp), so per-pixel weights would cancel from ``A`` anyway.

Two errors, because two questions are asked of a flux. ``err_jy`` (from the local rms) is the
uncertainty of the *absolute* flux: everything in the image that is not the source, including
the sidelobes of bright sources and confusion, which an astronomer comparing with another survey
must allow for. ``thermal_err_jy`` is the same propagation with ``σ`` the image's thermal noise
(``THNOISE``, from the radiometer equation, which the imager writes), when the header has it:
the part of the noise that is new in every epoch. The sidelobes of a drift-scan tile's bright
sources repeat from one sidereal day to the next (same sky, same uv coverage), so they shift a
source's flux by the same amount each epoch and do not scatter its light curve; using the local
rms for the light-curve statistics made constant sources' χ²ν ~ 0.2-0.3 (issue 11).
:mod:`actors.variability.errors` builds the epoch-to-epoch error from ``thermal_err_jy``.

Finally the flux and its errors are divided by the primary-beam gain at the position, from any
vectorised callable ``beam(ra_deg, dec_deg) -> gain``; positions where the gain is below a cut
are not measured ("inside the primary beam").

Everything is vectorised: positions go through the WCS once, the stamps are cut with one numpy
fancy-index gather, and every sum is an array reduction. 10,000 positions on a 4800 × 4800 image
take a small fraction of a second (see ``bench/bench_variability.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from astro.noise_map import NoiseMap, default_box_size, estimate_noise
from astro.restored_image import FitsImage, ImageError, RestoringBeam

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
PrimaryBeam = Callable[[FloatArray, FloatArray], "npt.ArrayLike"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

#: reading and measuring fail alike: one error class, named here for the photometry's callers
PhotometryError = ImageError

__all__ = [
    "FitsImage",
    "ForcedPhotometry",
    "NoiseMap",
    "PhotometryError",
    "RestoringBeam",
    "default_box_size",
    "estimate_noise",
    "forced_photometry",
    "measure_fits",
]


@dataclass(frozen=True, slots=True)
class ForcedPhotometry:
    """Per-position results, aligned with the input positions.

    ``valid`` is False where nothing was measured (outside the image, stamp off the edge or
    blanked, primary-beam gain below the cut); those entries hold NaN.
    ``flux_jy``, ``err_jy`` and ``thermal_err_jy`` are primary-beam corrected; ``peak_jy`` is the
    apparent amplitude. ``err_jy`` propagates the local rms (the absolute-flux uncertainty);
    ``thermal_err_jy`` propagates the image's thermal noise (NaN everywhere when it is not known),
    see the module docstring for which to use when.
    """

    flux_jy: FloatArray
    err_jy: FloatArray
    snr: FloatArray
    peak_jy: FloatArray
    local_rms_jy: FloatArray
    pb_gain: FloatArray
    x: FloatArray
    y: FloatArray
    valid: BoolArray
    thermal_err_jy: FloatArray

    def __len__(self) -> int:
        return int(self.valid.size)


def forced_photometry(
    image: FitsImage,
    ra_deg: npt.ArrayLike,
    dec_deg: npt.ArrayLike,
    *,
    beam: PrimaryBeam | None = None,
    min_pb_gain: float = 0.1,
    noise: NoiseMap | None = None,
    stamp_fwhm: float = 1.5,
    thermal_noise_jy: float | None = None,
) -> ForcedPhotometry:
    """Fit the restoring beam's amplitude at each (ra, dec) and correct it for the primary beam.

    ``beam`` is a vectorised ``beam(ra_deg, dec_deg) -> gain`` (None means no correction);
    positions where it is below ``min_pb_gain`` are skipped. ``noise`` is the image's
    :class:`NoiseMap` if already computed (compute it once per image and pass it for repeated
    calls). ``stamp_fwhm`` is the stamp's half-width in units of the beam's major-axis FWHM.
    ``thermal_noise_jy`` is the image's thermal noise (Jy/beam; default: the header's ``THNOISE``,
    see :attr:`FitsImage.thermal_noise_jy`), propagated like the rms into ``thermal_err_jy``.
    """
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.shape != dec.shape or ra.ndim != 1:
        raise PhotometryError(f"ra and dec must be 1-D arrays of one length, got {ra.shape} and {dec.shape}")
    n = ra.size
    data = image.data
    ny, nx = data.shape
    cov = image.beam.pixel_covariance(image.wcs)
    if noise is None:
        noise = estimate_noise(data, default_box_size(cov, (ny, nx)))

    if thermal_noise_jy is None:
        thermal_noise_jy = image.thermal_noise_jy
    nan = np.full(n, np.nan)
    gain = np.ones(n) if beam is None else np.broadcast_to(np.asarray(beam(ra, dec), dtype=np.float64), (n,))
    x, y = (np.asarray(v, dtype=np.float64) for v in image.wcs.world_to_pixel_values(ra, dec))

    fwhm_major_pix = math.sqrt(float(np.max(np.linalg.eigvalsh(cov)))) / _FWHM_TO_SIGMA
    h = max(1, math.ceil(stamp_fwhm * fwhm_major_pix))
    ix = np.rint(np.where(np.isfinite(x), x, -1e9)).astype(np.int64)
    iy = np.rint(np.where(np.isfinite(y), y, -1e9)).astype(np.int64)
    ok = (
        np.isfinite(x)
        & np.isfinite(y)
        & (ix - h >= 0)
        & (ix + h < nx)
        & (iy - h >= 0)
        & (iy + h < ny)
        & (gain >= min_pb_gain)
    )
    sel = np.flatnonzero(ok)

    out_peak, out_err, out_rms, out_th = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    if sel.size:
        offs = np.arange(-h, h + 1)
        # (m, s, s) stamps by one gather; rows are y, columns x.
        rows = iy[sel, None, None] + offs[None, :, None]
        cols = ix[sel, None, None] + offs[None, None, :]
        stamps = data[rows, cols].astype(np.float64)
        bkg, rms = noise.at(x[sel], y[sel])
        stamps -= bkg[:, None, None]

        # Offsets of each stamp pixel from the (sub-pixel) catalogue position.
        dx = (ix[sel] - x[sel])[:, None, None] + offs[None, None, :]
        dy = (iy[sel] - y[sel])[:, None, None] + offs[None, :, None]
        cinv: FloatArray = np.linalg.inv(cov).astype(np.float64)
        q = cinv[0, 0] * dx * dx + 2.0 * cinv[0, 1] * dx * dy + cinv[1, 1] * dy * dy
        p = np.exp(-0.5 * q)
        # Pᵀ R P with R[j, k] = ρ(j − k), the noise correlation between two stamp pixels
        # (ρ = the normalised beam): one matrix product for all stamps, exact on the pixel grid.
        r = _lag_correlation(cinv, offs)
        pf = p.reshape(sel.size, -1)
        sum_pcp = np.einsum("ki,ki->k", pf @ r, pf)

        sum_pp = np.einsum("kij,kij->k", p, p)
        sum_pi = np.einsum("kij,kij->k", p, stamps)
        finite = np.isfinite(sum_pi) & np.isfinite(rms) & (rms > 0)
        amp = sum_pi / sum_pp
        err = rms * np.sqrt(sum_pcp) / sum_pp
        out_peak[sel] = np.where(finite, amp, np.nan)
        out_err[sel] = np.where(finite, err, np.nan)
        out_rms[sel] = np.where(finite, rms, np.nan)
        if thermal_noise_jy is not None and math.isfinite(thermal_noise_jy) and thermal_noise_jy > 0:
            out_th[sel] = np.where(finite, thermal_noise_jy * np.sqrt(sum_pcp) / sum_pp, np.nan)
        ok[sel] = finite

    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(ok, out_peak / gain, np.nan)
        err_c = np.where(ok, out_err / gain, np.nan)
        th_c = np.where(ok, out_th / gain, np.nan)
        snr = np.where(ok, out_peak / out_err, np.nan)
    return ForcedPhotometry(
        flux_jy=flux,
        err_jy=err_c,
        snr=snr,
        peak_jy=out_peak,
        local_rms_jy=out_rms,
        pb_gain=np.asarray(gain, dtype=np.float64).copy(),
        x=x,
        y=y,
        valid=ok,
        thermal_err_jy=th_c,
    )


def _lag_correlation(cinv: FloatArray, offs: npt.NDArray[np.int_]) -> FloatArray:
    """R[j, k] = exp(−½ (r_j − r_k)ᵀ C⁻¹ (r_j − r_k)) for the pixels r of a stamp (flattened)."""
    yy, xx = np.meshgrid(offs, offs, indexing="ij")
    px, py = xx.ravel().astype(np.float64), yy.ravel().astype(np.float64)
    lx = px[:, None] - px[None, :]
    ly = py[:, None] - py[None, :]
    r: FloatArray = np.exp(-0.5 * (cinv[0, 0] * lx * lx + 2.0 * cinv[0, 1] * lx * ly + cinv[1, 1] * ly * ly))
    return r


def measure_fits(
    path: str | Path,
    ra_deg: npt.ArrayLike,
    dec_deg: npt.ArrayLike,
    *,
    beam: PrimaryBeam | None = None,
    min_pb_gain: float = 0.1,
) -> ForcedPhotometry:
    """Convenience: load a FITS image and run :func:`forced_photometry` on it."""
    return forced_photometry(FitsImage.load(path), ra_deg, dec_deg, beam=beam, min_pb_gain=min_pb_gain)
