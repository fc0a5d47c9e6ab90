"""Known bright sources: predicted exactly in the visibilities instead of CLEANed.

Why: DSA-110 drifts. Over a 5-minute tile the sky moves ~1.2 deg through a ~3 deg primary beam,
so a source's apparent flux changes with time (and, the beam being chromatic, with frequency).
CLEAN models a sky that is constant over the data, so it cannot take such a source out: around
a 20 Jy calibrator a few per cent of unmodelled variation is hundreds of mJy of sidelobes, far
above the 0.3 mJy thermal noise of a full group, and CLEAN stalls there.

The calibrator of a calibration set is the one source whose model is known well (position,
spectrum, and the drift beam that attenuates it - the model the set was solved against). Its
visibilities are predicted per integration and channel with the drift beam and taken out of the
data before imaging; the image's CLEAN then sees only the rest of the sky. In the restored image
the source is put back as a restoring-beam Gaussian at its exact position, with the flux the image
would have measured (its apparent flux averaged with the imaging weights), so photometry and
light curves see it as any other source. Anything the model gets wrong stays in the residual and
is CLEANed as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from actors.imager.clean import Beam, beam_gaussian, kernel_radius
from astro.msio import VisData
from astro.skymodel import PointSource, drift_beam_gains, itrf_to_geodetic, radec_to_lmn, source_model_vis


@dataclass(frozen=True)
class KnownSource:
    """A source taken out of the visibilities: its model and its flux as imaged (Jy)."""

    source: PointSource
    apparent_jy: float


def calset_sources(manifests: Sequence[dict[str, Any]]) -> list[PointSource]:
    """The sky models (``sources`` of each ``calset.json``) the calibration sets were solved against,
    each source once.

    Sets written before the manifest carried the full model (no ``sources``) contribute nothing:
    a flux without its spectrum is not a model to subtract.
    """
    out: dict[str, PointSource] = {}
    for manifest in manifests:
        for s in manifest.get("sources", []):
            ps = PointSource(
                str(s["name"]), float(s["ra_deg"]), float(s["dec_deg"]), float(s["flux_jy"]),
                float(s.get("spectral_index", 0.0)), float(s.get("ref_freq_hz", 1.4e9)),
            )
            out.setdefault(ps.name, ps)
    return list(out.values())


def drift_beam(data: VisData, sources: Sequence[PointSource]) -> npt.NDArray[np.float64]:
    """Primary-beam power [nsrc, ntime, nchan] of `sources` over the group (drift scan)."""
    _, lon, _ = itrf_to_geodetic(data.antenna_positions)
    return drift_beam_gains(sources, data.mjd, data.freq, data.phase_dir[1], lon, data.dish_diameter)


def select(
    data: VisData, sources: Sequence[PointSource], min_apparent_jy: float, min_beam: float = 0.05
) -> tuple[list[PointSource], npt.NDArray[np.float64]]:
    """The sources worth taking out: mean apparent flux >= `min_apparent_jy` and inside the main
    lobe (mean beam power >= `min_beam`: far out the Airy model is not the real dish's sidelobes).
    Returns them with their beam [nsrc, ntime, nchan]."""
    if not sources:
        return [], np.zeros((0, data.ntime, data.nchan))
    beam = drift_beam(data, sources)
    keep = []
    for k, s in enumerate(sources):
        apparent = float(np.mean(beam[k] * s.flux(data.freq)[None, :]))
        if apparent >= min_apparent_jy and float(np.mean(beam[k])) >= min_beam:
            keep.append(k)
    return [sources[k] for k in keep], beam[keep]


def predict(
    data: VisData, sources: Sequence[PointSource], beam: npt.NDArray[np.float64], chan_avg: int, chunk: int = 2
) -> npt.NDArray[np.complex64]:
    """Stokes I model visibilities [ntime * ncross, nchan'] of `sources`, laid out as the
    frequency-averaged cross-correlations of `selfcal.average_parallel_hands` (predicted at full
    resolution and averaged the same way, so bandwidth smearing is the data's)."""
    avg = max(1, int(chan_avg))
    cross = np.nonzero(data.ant1 != data.ant2)[0]
    nco = -(-data.nchan // avg)
    out = np.empty((data.ntime, cross.size, nco), np.complex64)
    for t0 in range(0, data.ntime, chunk):
        t1 = min(data.ntime, t0 + chunk)
        m = source_model_vis(data.uvw[t0:t1, cross], data.freq, sources, data.phase_dir, beam[:, t0:t1])[..., 0]
        if data.nchan % avg == 0:
            out[t0:t1] = m.reshape(t1 - t0, cross.size, nco, avg).mean(axis=3)
            continue
        for co in range(nco):
            out[t0:t1, :, co] = m[:, :, co * avg : (co + 1) * avg].mean(axis=2)
    return out.reshape(data.ntime * cross.size, nco)


def imaged_flux(
    source: PointSource, beam: npt.NDArray[np.float64], freq: npt.NDArray[np.float64], chan_avg: int,
    imaging_wgt: npt.NDArray[np.floating], ntime: int,
) -> float:
    """The flux an image of the data would give the source: its apparent flux (beam [ntime, nchan]
    x spectrum) averaged over integrations and channels with the imaging weights."""
    avg = max(1, int(chan_avg))
    app = beam * source.flux(freq)[None, :]
    nco = -(-freq.size // avg)
    app_avg = np.stack([app[:, k * avg : (k + 1) * avg].mean(axis=1) for k in range(nco)], axis=1)  # [ntime, nco]
    w = np.asarray(imaging_wgt, np.float64).reshape(ntime, -1, nco).sum(axis=1)  # [ntime, nco]
    sw = float(w.sum())
    return float((w * app_avg).sum() / sw) if sw > 0 else float(app_avg.mean())


def restore_known(
    image: npt.NDArray[np.float32], known: Sequence[KnownSource], phase_dir: tuple[float, float],
    cell_rad: float, beam: Beam,
) -> None:
    """Add each known source to `image` [y, x] as the restoring beam at its exact (sub-pixel)
    position, peak = its imaged flux. Pixel (npix/2, npix/2) is the phase centre; l grows east
    (decreasing x), m north."""
    if not known:
        return
    npix = image.shape[0]
    r = kernel_radius(beam, cell_rad)
    for k in known:
        lmn = radec_to_lmn(np.deg2rad(k.source.ra_deg), np.deg2rad(k.source.dec_deg), *phase_dir)
        x = npix / 2 - float(lmn[0]) / cell_rad
        y = npix / 2 + float(lmn[1]) / cell_rad
        xi, yi = round(x), round(y)
        y0, y1, x0, x1 = max(0, yi - r), min(npix, yi + r + 1), max(0, xi - r), min(npix, xi + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue  # outside the image
        gy, gx = np.mgrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += (k.apparent_jy * beam_gaussian(gx - x, gy - y, beam, cell_rad)).astype(np.float32)
