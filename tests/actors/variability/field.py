"""A multi-epoch drift-scan field across the whole primary beam, as FITS images (issue 11, item 5b).

Every epoch is the same tile one sidereal day later, so its image is the sum of

* the sources through the DSA-110 Airy primary beam (``measure.AiryGain``), each scaled by the
  epoch's flux-scale factor ``1 + g_e`` (one per epoch, every source in an image shares its
  calibration; the ``g_e`` have a sample std of exactly ``cal_frac``) and by its light curve (an
  ESE dip for the chosen few);
* a *repeating* pattern, the same in every epoch (the sidelobes of the tile's bright sources:
  same sky, same uv coverage), ``sidelobe_jy`` rms, correlated over the beam;
* thermal noise, a new realisation each epoch, ``thermal_jy`` rms, correlated over the beam, and
  written into the header as ``THNOISE`` as the imager does.

The local rms is then ``sqrt(sidelobe² + thermal²)`` while a light curve scatters only with the
thermal noise and the flux scale: the situation in which the local-rms error made constant
sources' χ²ν ~ 0.2-0.3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actors.variability.measure import AiryGain, Pointing
from actors.variability.photometry import FitsImage, RestoringBeam
from tests.actors.variability.synth import add_point_sources, correlated_noise, sin_wcs, write_fits

RA0, DEC0, FREQ_HZ = 150.0, 40.0, 1.4e9
#: the Airy beam's half-power radius at 1.4 GHz for a 4.65 m dish is ~1.35 deg
HALF_POWER_DEG = 1.35


@dataclass(frozen=True)
class Field:
    ra: np.ndarray
    dec: np.ndarray
    radius_deg: np.ndarray  # distance from the pointing centre
    flux_jy: np.ndarray  # quiescent (catalogue) flux
    ese: tuple[int, ...]  # indices of the sources given a dip
    dip_epochs: tuple[int, ...]
    dip_depth: float
    scale: np.ndarray  # (n_epochs,) the epochs' flux-scale factors 1 + g_e
    paths: list[Path]
    pointing: Pointing

    def truth(self, epoch: int) -> np.ndarray:
        """Each source's primary-beam-corrected flux in that epoch's image."""
        f = self.flux_jy * self.scale[epoch]
        if epoch in self.dip_epochs:
            f = f.copy()
            f[list(self.ese)] *= 1.0 - self.dip_depth
        return f


def make_field(
    directory: Path,
    *,
    n_epochs: int = 20,
    n_rings: int = 6,
    per_ring: int = 8,
    thermal_jy: float = 5e-4,
    sidelobe_jy: float = 1e-3,
    cal_frac: float = 0.01,
    ese: tuple[int, ...] = (5, 30),
    dip_epochs: tuple[int, ...] = (),
    dip_depth: float = 0.5,
    flux_range: tuple[float, float] = (0.02, 1.0),
    seed: int = 0,
) -> Field:
    """Write ``n_epochs`` images (``epoch_NN.fits``) of one field; sources on rings out to 1.35 deg."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cdelt = 15.0 / 3600
    n_pix = 2 * math.ceil((HALF_POWER_DEG + 0.15) / cdelt)
    shape = (n_pix, n_pix)
    beam = RestoringBeam(60.0 / 3600, 45.0 / 3600, 30.0)
    wcs = sin_wcs(RA0, DEC0, shape, cdelt)
    cov = beam.pixel_covariance(wcs)

    radius = np.repeat(np.linspace(HALF_POWER_DEG / n_rings, HALF_POWER_DEG, n_rings), per_ring)
    pa = np.radians(np.concatenate([(np.arange(per_ring) + 0.5 * (k % 2)) * 360.0 / per_ring for k in range(n_rings)]))
    x0, y0 = wcs.world_to_pixel_values(RA0, DEC0)
    # offsets on the tangent plane, converted to pixels (cdelt per pixel), with a sub-pixel jitter
    xs = float(x0) - radius * np.sin(pa) / cdelt + rng.uniform(-0.5, 0.5, radius.size)
    ys = float(y0) + radius * np.cos(pa) / cdelt + rng.uniform(-0.5, 0.5, radius.size)
    ra, dec = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(xs, ys))
    pointing = Pointing(RA0, DEC0, FREQ_HZ)
    gain = AiryGain.of(pointing)(ra, dec)
    radius_true = np.degrees(
        np.arccos(
            np.clip(
                np.sin(np.radians(dec)) * math.sin(math.radians(DEC0))
                + np.cos(np.radians(dec)) * math.cos(math.radians(DEC0)) * np.cos(np.radians(ra - RA0)),
                -1,
                1,
            )
        )
    )
    # log-uniform, as a field's sources are: many faint, a few bright
    flux = np.exp(rng.uniform(math.log(flux_range[0]), math.log(flux_range[1]), radius.size))
    # the epochs' flux scales scatter by exactly cal_frac (sample std), so that what a test sees does
    # not hinge on how a handful of random draws fell
    z = rng.standard_normal(n_epochs)
    z = (z - z.mean()) / z.std(ddof=1) if n_epochs > 1 else np.zeros(n_epochs)
    scale = 1.0 + cal_frac * z
    sidelobes = correlated_noise(shape, cov, sidelobe_jy, np.random.default_rng(seed + 1))

    fld = Field(ra, dec, radius_true, flux, ese, dip_epochs, dip_depth, scale, [], pointing)
    header = wcs.to_header()
    beam.to_header(header)
    header["BUNIT"] = "JY/BEAM"
    header["RESTFRQ"] = FREQ_HZ
    header["THNOISE"] = (thermal_jy, "expected thermal noise, Jy/beam")
    for ep in range(n_epochs):
        data = sidelobes + correlated_noise(shape, cov, thermal_jy, np.random.default_rng(seed + 100 + ep))
        add_point_sources(data, cov, xs, ys, fld.truth(ep) * gain)
        img = FitsImage(data=data.astype(np.float32), wcs=wcs, beam=beam, header=header)
        fld.paths.append(write_fits(img, directory / f"epoch_{ep:02d}.fits", mjd=60950.5 + ep))
    return fld
