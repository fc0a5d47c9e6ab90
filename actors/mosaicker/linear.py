"""Linear mosaics with primary-beam weighting onto a common WCS.

Each input tile ``i`` is an apparent-flux image (not primary-beam corrected) with a flat noise
``σ_i``. On the common grid the mosaic and its noise are

    I = Σ w_i B_i I_i / Σ w_i B_i² ,      σ_mosaic = 1 / sqrt(Σ w_i B_i²) ,    w_i = 1/σ_i² ,

the minimum-variance combination of the per-tile estimates ``I_i / B_i`` of the sky (each with
variance ``σ_i²/B_i²``). Where a tile's gain is below ``pb_cutoff`` it does not contribute;
pixels no tile reaches are NaN in both maps.

Reprojection is done here rather than by the ``reproject`` package (not a dependency): each
tile is interpolated (cubic spline by default, bilinear on request) at the positions of the
output pixels it covers. The
output-pixel → tile-pixel mapping is smooth, so it is computed exactly on a coarse lattice
(every ``coord_step`` pixels) and interpolated between, which costs a few percent of the full
per-pixel WCS transform and is accurate to far below a pixel for the SIN projections of
DSA-110 tiles. Interpolation preserves surface brightness (Jy/beam), so the restoring beam of
well-sampled inputs carries over to the mosaic.

The common WCS is a SIN projection centred on the mean of the tiles' centres, at the finest
input pixel scale, sized to hold every tile's footprint; if that would exceed ``max_pixels``
the pixel scale is coarsened to fit (stated in the header as ``MOSCOARS``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

from astro.noise_map import default_box_size, estimate_noise
from astro.restored_image import FitsImage, RestoringBeam

FloatArray = npt.NDArray[np.float64]
# A vectorised primary-beam model: gain at (ra, dec) for a tile pointed at (ra0, dec0), degrees.
PrimaryBeamModel = Callable[[FloatArray, FloatArray, float, float], "npt.ArrayLike"]


class MosaicError(ValueError):
    """Inputs that cannot be mosaicked; the message names the problem."""


def _angular_sep_deg(ra: FloatArray, dec: FloatArray, ra0: float, dec0: float) -> FloatArray:
    r, d, r0, d0 = np.radians(ra), np.radians(dec), math.radians(ra0), math.radians(dec0)
    s = np.sin((d - d0) / 2) ** 2 + math.cos(d0) * np.cos(d) * np.sin((r - r0) / 2) ** 2
    sep: FloatArray = np.degrees(2 * np.arcsin(np.sqrt(np.clip(s, 0.0, 1.0))))
    return sep


def gaussian_primary_beam(fwhm_deg: float) -> PrimaryBeamModel:
    """A circular Gaussian primary beam (a stand-in for the Airy model of ``astro/``)."""
    if not fwhm_deg > 0:
        raise MosaicError(f"primary beam FWHM must be positive, got {fwhm_deg}")

    def beam(ra: FloatArray, dec: FloatArray, ra0: float, dec0: float) -> FloatArray:
        sep = _angular_sep_deg(np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64), ra0, dec0)
        g: FloatArray = np.exp(-4.0 * math.log(2.0) * (sep / fwhm_deg) ** 2)
        return g

    return beam


@dataclass(frozen=True, slots=True)
class Tile:
    """One input image: data and WCS, observation MJD, pointing centre and its flat noise σ."""

    image: FitsImage
    mjd: float
    pointing_ra_deg: float
    pointing_dec_deg: float
    sigma_jy: float
    path: str | None = None

    @property
    def dec_deg(self) -> float:
        return self.pointing_dec_deg

    @classmethod
    def from_image(
        cls,
        image: FitsImage,
        *,
        mjd: float | None = None,
        sigma_jy: float | None = None,
        path: str | None = None,
    ) -> Tile:
        h = image.header
        if mjd is None:
            if "MJD-OBS" in h:
                mjd = float(h["MJD-OBS"])
            elif "DATE-OBS" in h:
                mjd = float(Time(h["DATE-OBS"], scale="utc").mjd)
            else:
                raise MosaicError(f"{path or 'tile'}: header has neither MJD-OBS nor DATE-OBS")
        ra0 = float(h.get("OBSRA", image.wcs.wcs.crval[0]))
        dec0 = float(h.get("OBSDEC", image.wcs.wcs.crval[1]))
        if sigma_jy is None:
            cov = image.beam.pixel_covariance(image.wcs)
            sigma_jy = estimate_noise(image.data, default_box_size(cov, image.data.shape)).median_rms
        if not (math.isfinite(sigma_jy) and sigma_jy > 0):
            raise MosaicError(f"{path or 'tile'}: noise must be finite and positive, got {sigma_jy}")
        return cls(image, float(mjd), ra0, dec0, float(sigma_jy), path)

    @classmethod
    def load(cls, path: str | Path, *, sigma_jy: float | None = None) -> Tile:
        return cls.from_image(FitsImage.load(path), sigma_jy=sigma_jy, path=str(path))


def _footprint(wcs: WCS, shape: tuple[int, ...], n: int = 16) -> tuple[FloatArray, FloatArray]:
    ny, nx = shape[-2], shape[-1]
    t = np.linspace(0, 1, n)
    xs = np.concatenate([t * (nx - 1), np.full(n, nx - 1.0), t[::-1] * (nx - 1), np.zeros(n)])
    ys = np.concatenate([np.zeros(n), t * (ny - 1), np.full(n, ny - 1.0), t[::-1] * (ny - 1)])
    ra, dec = wcs.pixel_to_world_values(xs - 0.5 * np.sign(xs - (nx - 1) / 2), ys - 0.5 * np.sign(ys - (ny - 1) / 2))
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def common_wcs(
    tiles: Sequence[Tile], *, cdelt_deg: float | None = None, max_pixels: int = 40_000_000
) -> tuple[WCS, tuple[int, int], bool]:
    """A SIN WCS and (ny, nx) that hold every tile's footprint; also whether it was coarsened."""
    if not tiles:
        raise MosaicError("no tiles to mosaic")
    centres = []
    for t in tiles:
        ny, nx = t.image.data.shape
        ra, dec = t.image.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
        centres.append((float(ra), float(dec)))
    r = np.radians(np.array(centres))
    v = np.stack([np.cos(r[:, 1]) * np.cos(r[:, 0]), np.cos(r[:, 1]) * np.sin(r[:, 0]), np.sin(r[:, 1])]).sum(axis=1)
    ra_c = math.degrees(math.atan2(v[1], v[0])) % 360.0
    dec_c = math.degrees(math.atan2(v[2], math.hypot(v[0], v[1])))
    scale = float(cdelt_deg or min(float(np.min(proj_plane_pixel_scales(t.image.wcs))) for t in tiles))

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [ra_c, dec_c]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    w.wcs.crpix = [0.0, 0.0]
    w.wcs.cdelt = [-scale, scale]
    xs, ys = [], []
    for t in tiles:
        ra, dec = _footprint(t.image.wcs, t.image.data.shape)
        x, y = w.world_to_pixel_values(ra, dec)
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise MosaicError("tiles span more than a hemisphere; cannot share one SIN projection")
        xs.append(x)
        ys.append(y)
    # Offsets from the reference point (provisional CRPIX 0 puts it at 0-based pixel −1).
    u, v = np.concatenate(xs) + 1.0, np.concatenate(ys) + 1.0
    width, height = float(u.max() - u.min()), float(v.max() - v.min())
    coarsened = False
    if (width + 3) * (height + 3) > max_pixels:
        factor = math.sqrt((width + 3) * (height + 3) / max_pixels)
        while (math.ceil(width / factor) + 3) * (math.ceil(height / factor) + 3) > max_pixels:
            factor *= 1.01
        scale *= factor
        u, v = u / factor, v / factor
        width, height = width / factor, height / factor
        w.wcs.cdelt = [-scale, scale]
        coarsened = True
    nx_out, ny_out = math.ceil(width) + 3, math.ceil(height) + 3
    # One pixel of margin: the footprint starts at 0-based pixel 1 of the final grid.
    w.wcs.crpix = [2.0 - float(u.min()), 2.0 - float(v.min())]
    w.wcs.set()
    return w, (ny_out, nx_out), coarsened


def _coarse_interp(coarse: FloatArray, rows: FloatArray, cols: FloatArray) -> FloatArray:
    out: FloatArray = ndimage.map_coordinates(coarse, [rows, cols], order=1, mode="nearest")
    return out


@dataclass(frozen=True, slots=True)
class _Resampled:
    y0: int
    x0: int
    data: FloatArray  # tile resampled on the output sub-grid (NaN outside)
    gain: FloatArray  # primary-beam gain on the same sub-grid


def _resample(
    tile: Tile,
    wcs_out: WCS,
    shape_out: tuple[int, int],
    beam: PrimaryBeamModel,
    coord_step: int,
    order: int,
) -> _Resampled | None:
    ra_f, dec_f = _footprint(tile.image.wcs, tile.image.data.shape)
    xf, yf = wcs_out.world_to_pixel_values(ra_f, dec_f)
    ny, nx = shape_out
    x0, x1 = max(0, math.floor(np.min(xf)) - 1), min(nx, math.ceil(np.max(xf)) + 2)
    y0, y1 = max(0, math.floor(np.min(yf)) - 1), min(ny, math.ceil(np.max(yf)) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    h, w = y1 - y0, x1 - x0
    step = max(1, coord_step)
    cy = np.unique(np.append(np.arange(0, h, step), h - 1))
    cx = np.unique(np.append(np.arange(0, w, step), w - 1))
    gy, gx = np.meshgrid(cy + y0, cx + x0, indexing="ij")
    ra, dec = wcs_out.pixel_to_world_values(gx.astype(np.float64), gy.astype(np.float64))
    ra, dec = np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)
    tx, ty = tile.image.wcs.world_to_pixel_values(ra, dec)
    gain_c = np.broadcast_to(
        np.asarray(beam(ra, dec, tile.pointing_ra_deg, tile.pointing_dec_deg), dtype=np.float64), ra.shape
    )
    tx = np.where(np.isfinite(tx), tx, -1e9)
    ty = np.where(np.isfinite(ty), ty, -1e9)
    if step == 1:
        px, py, gain = tx, ty, np.array(gain_c)
    else:
        # Fractional index of every sub-grid pixel on the coarse lattice.
        fr = np.interp(np.arange(h), cy, np.arange(cy.size))
        fc = np.interp(np.arange(w), cx, np.arange(cx.size))
        rr, cc = np.meshgrid(fr, fc, indexing="ij")
        px = _coarse_interp(np.asarray(tx, dtype=np.float64), rr, cc)
        py = _coarse_interp(np.asarray(ty, dtype=np.float64), rr, cc)
        gain = _coarse_interp(np.asarray(gain_c, dtype=np.float64), rr, cc)
    src = np.asarray(tile.image.data, dtype=np.float64)
    blank = ~np.isfinite(src)
    if order == 1:
        data = ndimage.map_coordinates(src, [py, px], order=1, mode="constant", cval=np.nan)
    else:
        # The spline prefilter is global, so blanked pixels are zero-filled first and the result
        # is blanked wherever a blanked pixel is among the interpolation neighbours.
        coeffs = ndimage.spline_filter(np.where(blank, 0.0, src), order=order, mode="mirror")
        data = ndimage.map_coordinates(coeffs, [py, px], order=order, mode="mirror", prefilter=False)
        if blank.any():
            near = ndimage.map_coordinates(blank.astype(np.float64), [py, px], order=1, mode="constant", cval=1.0)
            data[near > 0] = np.nan
    # Outside the tile (with a half-pixel edge) is NaN, not an extrapolation.
    tny, tnx = src.shape
    outside = (px < -0.5) | (px > tnx - 0.5) | (py < -0.5) | (py > tny - 0.5)
    data[outside] = np.nan
    return _Resampled(y0, x0, data, gain)


@dataclass(frozen=True, slots=True)
class MosaicImage:
    """The mosaic (Jy/beam, primary-beam corrected), its noise map and the common grid."""

    data: FloatArray
    noise: FloatArray
    wcs: WCS
    beam: RestoringBeam
    n_images: int
    start_mjd: float
    end_mjd: float
    coarsened: bool = False

    @property
    def noise_jy(self) -> float:
        finite = self.noise[np.isfinite(self.noise)]
        return float(np.median(finite)) if finite.size else float("nan")


def linear_mosaic(
    tiles: Sequence[Tile],
    beam: PrimaryBeamModel,
    *,
    pb_cutoff: float = 0.1,
    cdelt_deg: float | None = None,
    max_pixels: int = 40_000_000,
    coord_step: int = 8,
    order: int = 3,
    grid: tuple[WCS, tuple[int, int]] | None = None,
) -> MosaicImage:
    """Combine tiles: I = Σ wBI / Σ wB², σ = 1/sqrt(Σ wB²), w = 1/σ_tile².

    ``order`` is the resampling order (1 bilinear, 3 cubic spline). Cubic is the default: with
    the 3–4 pixels per beam of typical images, bilinear resampling smooths a point source's peak
    by a few percent (and the noise with it), which biases forced photometry on the mosaic.
    """
    if order not in (1, 3):
        raise MosaicError(f"resampling order must be 1 or 3, got {order}")
    if not tiles:
        raise MosaicError("no tiles to mosaic")
    if not 0 < pb_cutoff < 1:
        raise MosaicError(f"pb_cutoff must be in (0, 1), got {pb_cutoff}")
    coarsened = False
    if grid is None:
        wcs_out, shape, coarsened = common_wcs(tiles, cdelt_deg=cdelt_deg, max_pixels=max_pixels)
    else:
        wcs_out, shape = grid
    num = np.zeros(shape)
    den = np.zeros(shape)
    used = 0
    for t in tiles:
        rs = _resample(t, wcs_out, shape, beam, coord_step, order)
        if rs is None:
            continue
        w = 1.0 / t.sigma_jy**2
        ok = np.isfinite(rs.data) & (rs.gain >= pb_cutoff)
        if not ok.any():
            continue
        used += 1
        h, wd = rs.data.shape
        sl = (slice(rs.y0, rs.y0 + h), slice(rs.x0, rs.x0 + wd))
        wb = np.where(ok, w * rs.gain, 0.0)
        num[sl] += wb * np.where(ok, rs.data, 0.0)
        den[sl] += wb * np.where(ok, rs.gain, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        covered = den > 0
        data = np.where(covered, num / np.where(covered, den, 1.0), np.nan)
        noise = np.where(covered, 1.0 / np.sqrt(np.where(covered, den, 1.0)), np.nan)
    # The mosaic's restoring beam: the largest of the inputs' (they differ little in one strip).
    beam_out = max((t.image.beam for t in tiles), key=lambda b: b.bmaj_deg * b.bmin_deg)
    mjds = [t.mjd for t in tiles]
    return MosaicImage(data, noise, wcs_out, beam_out, used, min(mjds), max(mjds), coarsened)


def count_sources(mosaic: MosaicImage, snr_threshold: float = 5.0) -> int:
    """Local maxima of S/N above the threshold, at most one per restoring beam."""
    snr = mosaic.data / mosaic.noise
    snr = np.where(np.isfinite(snr), snr, -np.inf)
    cov = mosaic.beam.pixel_covariance(mosaic.wcs)
    fwhm_pix = 2.0 * math.sqrt(2.0 * math.log(2.0)) * math.sqrt(float(np.max(np.linalg.eigvalsh(cov))))
    size = max(3, 2 * round(fwhm_pix / 2) + 1)
    peaks = (snr == ndimage.maximum_filter(snr, size=size, mode="constant", cval=-np.inf)) & (snr > snr_threshold)
    return int(np.count_nonzero(peaks))


def _header(mosaic: MosaicImage, bunit: str) -> fits.Header:
    h = mosaic.wcs.to_header()
    mosaic.beam.to_header(h)
    h["BUNIT"] = bunit
    h["MJD-OBS"] = mosaic.start_mjd
    h["MJDSTART"] = (mosaic.start_mjd, "first tile MJD")
    h["MJDEND"] = (mosaic.end_mjd, "last tile MJD")
    h["NIMAGES"] = (mosaic.n_images, "tiles combined")
    h["MOSCOARS"] = (mosaic.coarsened, "pixel scale coarsened to bound the size")
    h["ORIGIN"] = "observatory-platform mosaicker (linear, PB-weighted)"
    return h


def _atomic_write_fits(data: FloatArray, header: fits.Header, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fits.PrimaryHDU(data=data.astype(np.float32), header=header).writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def write_thumbnail(data: FloatArray, header: fits.Header, path: Path, *, max_side: int = 900) -> None:
    """The mosaic's PNG (seed 000's ``thumbnail_path``): the whole mosaic with RA/Dec axes, a colour
    bar in Jy/beam, the beam and the noise, under an asinh stretch from -3 sigma to the brightest
    pixel (``astro.quicklook``), so bright sources no longer saturate; NaN (no coverage) blank."""
    from astro.quicklook import quicklook_array

    quicklook_array(data, header, path, zoom=False, max_px=max_side, title=path.stem.removesuffix("_thumb"))


@dataclass(frozen=True, slots=True)
class MosaicProducts:
    """What the mosaicker records (seed 000 ``/mosaics/query`` fields)."""

    name: str
    path: str
    noise_path: str
    thumbnail_path: str
    start_mjd: float
    end_mjd: float
    n_images: int
    n_sources: int
    noise_jy: float

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": self.path,
            "noise_path": self.noise_path,
            "thumbnail_path": self.thumbnail_path,
            "start_mjd": self.start_mjd,
            "end_mjd": self.end_mjd,
            "n_images": self.n_images,
            "n_sources": self.n_sources,
            "noise_jy": self.noise_jy,
        }


def write_mosaic(mosaic: MosaicImage, out_dir: str | Path, name: str) -> MosaicProducts:
    """Write ``<name>.fits``, ``<name>_noise.fits`` and ``<name>_thumb.png`` (deterministic paths,
    written atomically, so a redelivered job overwrites its own output)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p_img, p_noise, p_png = out / f"{name}.fits", out / f"{name}_noise.fits", out / f"{name}_thumb.png"
    _atomic_write_fits(mosaic.data, _header(mosaic, "JY/BEAM"), p_img)
    _atomic_write_fits(mosaic.noise, _header(mosaic, "JY/BEAM"), p_noise)
    hdr = _header(mosaic, "JY/BEAM")
    hdr["NOISE"] = (float(mosaic.noise_jy), "median noise, Jy/beam")
    write_thumbnail(mosaic.data, hdr, p_png)
    return MosaicProducts(
        name=name,
        path=str(p_img),
        noise_path=str(p_noise),
        thumbnail_path=str(p_png),
        start_mjd=mosaic.start_mjd,
        end_mjd=mosaic.end_mjd,
        n_images=mosaic.n_images,
        n_sources=count_sources(mosaic),
        noise_jy=mosaic.noise_jy,
    )


def make_mosaic(
    tiles: Sequence[Tile],
    beam: PrimaryBeamModel,
    out_dir: str | Path,
    name: str | None = None,
    *,
    pb_cutoff: float = 0.1,
    cdelt_deg: float | None = None,
    max_pixels: int = 40_000_000,
    coord_step: int = 8,
    order: int = 3,
) -> MosaicProducts:
    """Mosaic, write the products and count sources: the whole job in one call."""
    m = linear_mosaic(
        tiles,
        beam,
        pb_cutoff=pb_cutoff,
        cdelt_deg=cdelt_deg,
        max_pixels=max_pixels,
        coord_step=coord_step,
        order=order,
    )
    return write_mosaic(m, out_dir, name or mosaic_name(m.start_mjd, m.end_mjd))


def mosaic_name(start_mjd: float, end_mjd: float, kind: str = "hourly") -> str:
    """``2025-10-24_hourly_12-13UTC`` for a group starting on the hour, else with minutes."""
    t0 = Time(start_mjd, format="mjd", scale="utc").to_datetime()
    t1 = Time(end_mjd, format="mjd", scale="utc").to_datetime()
    if t0.minute < 5:
        end_hour = (t0.hour + max(1, math.ceil((end_mjd - start_mjd) * 24 - 1e-9))) % 24
        return f"{t0:%Y-%m-%d}_{kind}_{t0:%H}-{end_hour:02d}UTC"
    return f"{t0:%Y-%m-%d}_{kind}_{t0:%H%M}-{t1:%H%M}UTC"


class _HasMjd(Protocol):
    @property
    def mjd(self) -> float: ...


T = TypeVar("T", bound=_HasMjd)


def hourly_groups(
    images_sorted_by_mjd: Sequence[T],
    n: int = 12,
    *,
    max_gap_days: float = 10.0 / 1440.0,
    max_dec_step_deg: float = 1.0,
) -> list[list[T]]:
    """Split a time-ordered run of tiles into complete groups of ``n`` consecutive tiles.

    A run breaks where two neighbours are more than ``max_gap_days`` apart (a missing tile:
    the default is two 5-minute tiles) or, for items with a ``dec_deg``, point more than
    ``max_dec_step_deg`` apart (a new declination strip). Each run is cut into consecutive,
    non-overlapping groups of ``n``; a run's incomplete tail is left out, to be grouped when
    its later tiles arrive.
    """
    if n < 1:
        raise ValueError(f"group size must be positive, got {n}")
    groups: list[list[T]] = []
    run: list[T] = []
    prev: T | None = None
    for item in images_sorted_by_mjd:
        if prev is not None:
            if item.mjd < prev.mjd:
                raise ValueError("images must be sorted by MJD")
            d0, d1 = getattr(prev, "dec_deg", None), getattr(item, "dec_deg", None)
            new_strip = d0 is not None and d1 is not None and abs(float(d1) - float(d0)) > max_dec_step_deg
            if item.mjd - prev.mjd > max_gap_days or new_strip:
                run = []
        run.append(item)
        if len(run) == n:
            groups.append(run)
            run = []
        prev = item
    return groups
