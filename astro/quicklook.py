"""Quicklook figures of radio images: the plot a radio astronomer would put on a slide.

* WCS axes (RA/Dec ticks in sexagesimal), a colour bar in the image's unit (Jy/beam), the
  restoring beam drawn to scale in the lower-left corner, and the noise in the title;
* a **zoom on the centre** (``CENTRE_FRACTION`` of the side, at least ``MIN_ZOOM_PX``): a 4800²
  DSA-110 snapshot is 4° across, and shrunk whole to a screen its sources are single pixels;
* a **non-saturating stretch** computed on the region shown: from -3σ (σ the robust noise, MAD)
  to the brightest pixel, through an asinh whose linear part spans ~10σ. Noise stays grey-black,
  faint sources show, and the brightest one is not clipped (a 1–99.8 % percentile stretch of the
  whole image is dominated by noise pixels, which is why sources vanished in it);
* downsampled by **block maximum** when larger than the figure, so a point source one pixel wide
  survives the reduction.

Only the displayed region is read from disk (``hdu.section``), so a quicklook of a 4800² image reads
the central 1200² and not 92 MB. Pure functions of (pixels, header); matplotlib's object API with
the Agg canvas (no pyplot state), so renders may run in threads or processes at once.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

CENTRE_FRACTION = 0.25
MIN_ZOOM_PX = 256
QUICKLOOK_MAX_PX = 900
THUMBNAIL_PX = 256


@dataclass(frozen=True)
class Cutout:
    """The pixels to show (float32, [ny, nx], possibly block-max reduced) and how to label them."""

    data: npt.NDArray[np.float32]
    wcs: WCS | None  # celestial WCS of `data` (sliced and strided), None when the file has none
    noise: float  # Jy/beam, robust
    beam_px: tuple[float, float, float] | None  # (major, minor) in displayed pixels, PA in deg
    beam_arcsec: tuple[float, float, float] | None  # (major, minor) arcsec, PA deg
    unit: str
    name: str
    zoomed: bool


def centre_box(ny: int, nx: int, zoom: bool) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the central region to show."""
    if not zoom:
        return 0, ny, 0, nx
    side_y = min(ny, max(MIN_ZOOM_PX, round(ny * CENTRE_FRACTION)))
    side_x = min(nx, max(MIN_ZOOM_PX, round(nx * CENTRE_FRACTION)))
    y0, x0 = (ny - side_y) // 2, (nx - side_x) // 2
    return y0, y0 + side_y, x0, x0 + side_x


def robust_noise(a: npt.NDArray[np.floating]) -> float:
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return 0.0
    if finite.size > 1_000_000:
        finite = finite[:: finite.size // 1_000_000 + 1]
    return float(1.4826 * np.median(np.abs(finite - np.median(finite))))


def block_max(a: npt.NDArray[np.floating], step: int) -> npt.NDArray[np.float32]:
    """Reduce by `step` keeping each block's maximum (NaN-blocks stay NaN)."""
    a = np.asarray(a, np.float32)
    if step <= 1:
        return a
    ny, nx = (a.shape[0] // step) * step, (a.shape[1] // step) * step
    blocks = a[:ny, :nx].reshape(ny // step, step, nx // step, step)
    filled = np.where(np.isfinite(blocks), blocks, -np.inf).max(axis=(1, 3))
    return np.where(np.isfinite(filled), filled, np.nan).astype(np.float32)


def cutout(
    region: npt.NDArray[np.floating],
    header: fits.Header,
    box: tuple[int, int, int, int],
    *,
    max_px: int,
    zoomed: bool,
    name: str = "",
) -> Cutout:
    """Label the pixels `region` (= image[y0:y1, x0:x1] of `header`'s image) for display."""
    y0, y1, x0, x1 = box
    step = max(1, math.ceil(max(y1 - y0, x1 - x0) / max_px))
    noise = float(header.get("NOISE", 0.0) or 0.0)
    if not (noise > 0):
        noise = robust_noise(np.asarray(region))
    data = block_max(region, step)
    wcs: WCS | None = None
    cdelt = 0.0  # degrees per pixel along declination
    try:
        full = WCS(header)
        if full.has_celestial:
            wcs = full.celestial[y0 : y0 + data.shape[0] * step : step, x0 : x0 + data.shape[1] * step : step]
            cdelt = float(proj_plane_pixel_scales(full.celestial)[1])  # CDELT, CD or PC alike
    except Exception:  # a header without a usable WCS: plain pixel axes
        wcs = None
    beam_px = beam_arcsec = None
    bmaj, bmin, bpa = (header.get(k) for k in ("BMAJ", "BMIN", "BPA"))
    if bmaj and bmin:
        beam_arcsec = (float(bmaj) * 3600, float(bmin) * 3600, float(bpa or 0.0))
        if cdelt > 0:
            beam_px = (float(bmaj) / cdelt / step, float(bmin) / cdelt / step, float(bpa or 0.0))
    unit = str(header.get("BUNIT", "") or "Jy/beam").replace("JY/BEAM", "Jy/beam")
    return Cutout(data, wcs, noise, beam_px, beam_arcsec, unit, name or str(header.get("OBJECT", "") or ""), zoomed)


def read_cutout(path: str | os.PathLike[str], *, zoom: bool, max_px: int) -> Cutout:
    """Read only the displayed region of a FITS image (any leading axes are taken at index 0)."""
    with fits.open(path, memmap=True) as hdul:
        hdu = hdul[0]
        if hdu.data is None and len(hdul) > 1:
            hdu = hdul[1]
        header = hdu.header
        shape = hdu.shape
        if len(shape) < 2:
            raise ValueError("not an image: fewer than two axes")
        box = centre_box(shape[-2], shape[-1], zoom)
        y0, y1, x0, x1 = box
        index = (0,) * (len(shape) - 2) + (slice(y0, y1), slice(x0, x1))
        region = np.asarray(hdu.section[index], np.float32)
    return cutout(region, header, box, max_px=max_px, zoomed=zoom, name=Path(path).stem)


def norm_for(cut: Cutout, *, clip: bool = True) -> Any:
    """-3σ .. brightest pixel, asinh with its linear part ~10σ wide: nothing saturates."""
    from astropy.visualization import AsinhStretch, ImageNormalize

    finite = cut.data[np.isfinite(cut.data)]
    sigma = cut.noise if cut.noise > 0 else (robust_noise(cut.data) or 1.0)
    vmin = -3.0 * sigma
    vmax = float(finite.max()) if finite.size else 1.0
    if vmax <= vmin + sigma:
        vmax = vmin + 10.0 * sigma
    a = min(1.0, max(1e-3, 10.0 * sigma / (vmax - vmin)))
    return ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=a), clip=clip)


def _atomic(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.{id(path)}.tmp.png")


def render_quicklook(cut: Cutout, out: str | os.PathLike[str], *, cmap: str = "inferno", title: str = "") -> Path:
    """The figure: WCS axes, colour bar in the image unit, the beam, the noise in the title."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Ellipse

    fig = Figure(figsize=(7.2, 6.0), dpi=110)
    FigureCanvasAgg(fig)
    if cut.wcs is not None:
        ax = fig.add_subplot(1, 1, 1, projection=cut.wcs)
    else:
        ax = fig.add_subplot(1, 1, 1)
    # Not clipped by the norm (which would paint NaN, no coverage, in the top colour): pixels below
    # -3 sigma take the colour map's bottom colour, and NaN a neutral grey.
    norm = norm_for(cut, clip=False)
    base = colormaps[cmap]
    colours = base.with_extremes(bad="#d0d0d0", under=base(0.0), over=base(1.0))
    shown = np.ma.masked_invalid(cut.data)
    im = ax.imshow(shown, origin="lower", cmap=colours, norm=norm, interpolation="nearest")
    if cut.wcs is not None:
        ra, dec = ax.coords[0], ax.coords[1]
        ra.set_axislabel("Right Ascension (J2000)")
        dec.set_axislabel("Declination (J2000)")
        ra.set_major_formatter("hh:mm:ss")
        dec.set_major_formatter("dd:mm")
        ra.set_ticks(number=5)
        dec.set_ticks(number=5)
        ax.coords.grid(color="white", alpha=0.25, linestyle=":")
    else:
        ax.set_xlabel("x (pixel)")
        ax.set_ylabel("y (pixel)")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(f"Intensity ({cut.unit})")
    if cut.beam_px is not None:
        major, minor, pa = cut.beam_px
        # Drawn at least 3 pixels across so that a beam smaller than a displayed pixel stays visible.
        w, h = max(minor, 3.0), max(major, 3.0)
        pad = max(h, w) * 0.8 + 4
        # BPA is east of north; with east to the left, that is counter-clockwise from +y.
        ax.add_patch(Ellipse((pad, pad), w, h, angle=pa, facecolor="none", edgecolor="cyan", linewidth=1.5))
    sub = []
    if cut.beam_arcsec is not None:
        sub.append(f'beam {cut.beam_arcsec[0]:.1f}"×{cut.beam_arcsec[1]:.1f}", PA {cut.beam_arcsec[2]:.0f}°')
    if cut.zoomed:
        sub.append("central region")
    noise = f"σ = {cut.noise * 1e3:.3g} m{cut.unit}" if cut.noise > 0 else ""
    head = title or cut.name
    ax.set_title(f"{head}   {noise}" + ("\n" + ", ".join(sub) if sub else ""), fontsize=10)
    out = Path(out)
    tmp = _atomic(out)
    fig.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, out)
    return out


def render_thumbnail(cut: Cutout, out: str | os.PathLike[str], *, cmap: str = "inferno") -> Path:
    """A small image with no axes (a gallery tile), with the quicklook's stretch."""
    from matplotlib import image as mpimg

    norm = norm_for(cut)
    scaled = np.ma.filled(norm(np.where(np.isfinite(cut.data), cut.data, norm.vmin)), 0.0)
    out = Path(out)
    tmp = _atomic(out)
    mpimg.imsave(tmp, scaled, cmap=cmap, vmin=0.0, vmax=1.0, origin="lower", format="png")
    os.replace(tmp, out)
    return out


def quicklook_fits(path: str | os.PathLike[str], out: str | os.PathLike[str], *, zoom: bool = True) -> Path:
    return render_quicklook(read_cutout(path, zoom=zoom, max_px=QUICKLOOK_MAX_PX), out)


def thumbnail_fits(path: str | os.PathLike[str], out: str | os.PathLike[str], *, zoom: bool = True) -> Path:
    return render_thumbnail(read_cutout(path, zoom=zoom, max_px=THUMBNAIL_PX), out)


def quicklook_array(
    image: npt.NDArray[np.floating],
    header: fits.Header,
    out: str | os.PathLike[str],
    *,
    zoom: bool = True,
    max_px: int = QUICKLOOK_MAX_PX,
    title: str = "",
) -> Path:
    """The quicklook of an image still in memory (the imager's and the mosaicker's own PNGs)."""
    a = np.asarray(image)
    while a.ndim > 2:
        a = a[0]
    box = centre_box(a.shape[0], a.shape[1], zoom)
    y0, y1, x0, x1 = box
    cut = cutout(a[y0:y1, x0:x1], header, box, max_px=max_px, zoomed=zoom, name=Path(out).stem)
    return render_quicklook(cut, out, title=title)
