"""Small synthetic DSA-110-like visibility sets for tests and benchmarks.

This is not the observation simulator (that is `sim/`): it makes regular `VisData` cubes from point
sources, per-antenna complex gains and bandpasses, and Gaussian thermal noise, with numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from astro.msio import SECONDS_PER_DAY, VisData
from astro.skymodel import (
    OVRO_HEIGHT_M,
    OVRO_LAT_DEG,
    OVRO_LON_DEG,
    PointSource,
    point_source_vis,
    radec_to_lmn,
)

SIDEREAL_RATE = 2 * np.pi / 86164.0905  # rad per second


def dsa_like_layout(
    n_ew: int = 10, n_ns: int = 8, n_out: int = 2, spacing: float = 5.75, seed: int = 1
) -> npt.NDArray[np.float64]:
    """ENU positions [nant, 3] (m): an E-W line, a N-S line south of it, and a few outriggers.

    Positions along the arms are jittered (+-40 % of `spacing`) to avoid grating lobes.
    """
    rng = np.random.default_rng(seed)
    xe = (np.arange(n_ew) - n_ew / 2 + rng.uniform(-0.4, 0.4, n_ew)) * spacing
    ew = np.stack([xe, rng.uniform(-1, 1, n_ew), np.zeros(n_ew)], axis=1)
    yn = -(np.arange(1, n_ns + 1) + rng.uniform(-0.4, 0.4, n_ns)) * spacing * 1.3
    ns = np.stack([rng.uniform(-1, 1, n_ns) + 3.0, yn, np.zeros(n_ns)], axis=1)
    r = rng.uniform(200, 1200, n_out)
    ang = rng.uniform(0, 2 * np.pi, n_out)
    out = np.stack([r * np.cos(ang), r * np.sin(ang), rng.normal(0, 2, n_out)], axis=1)
    return np.concatenate([ew, ns, out])


def enu_to_itrf(
    enu: npt.ArrayLike, lat_deg: float = OVRO_LAT_DEG, lon_deg: float = OVRO_LON_DEG, height: float = OVRO_HEIGHT_M
) -> npt.NDArray[np.float64]:
    """ITRF (ECEF) positions of local ENU offsets about a geodetic reference point."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    ref = EarthLocation.from_geodetic(lon_deg * u.deg, lat_deg * u.deg, height * u.m)
    x0 = np.array([ref.x.to_value(u.m), ref.y.to_value(u.m), ref.z.to_value(u.m)])
    lat, lon = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    e = np.array([-np.sin(lon), np.cos(lon), 0.0])
    n = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    p = np.asarray(enu, float)
    return np.asarray(x0 + p[:, :1] * e + p[:, 1:2] * n + p[:, 2:3] * up, float)


def enu_uvw(
    enu: npt.ArrayLike,
    ant1: npt.ArrayLike,
    ant2: npt.ArrayLike,
    hour_angle: npt.ArrayLike,
    dec: float,
    lat_deg: float = OVRO_LAT_DEG,
) -> npt.NDArray[np.float64]:
    """uvw [ntime, nbl, 3] (m) of baselines pos[ant2] - pos[ant1] for phase-centre hour angles (rad)."""
    p = np.asarray(enu, float)
    b = p[np.asarray(ant2)] - p[np.asarray(ant1)]
    lat = np.deg2rad(lat_deg)
    x = -np.sin(lat) * b[:, 1] + np.cos(lat) * b[:, 2]
    y = b[:, 0]
    z = np.cos(lat) * b[:, 1] + np.sin(lat) * b[:, 2]
    h = np.asarray(hour_angle, float)[:, None]
    sh, ch, sd, cd = np.sin(h), np.cos(h), np.sin(dec), np.cos(dec)
    u = sh * x + ch * y
    v = -sd * ch * x + sd * sh * y + cd * z
    w = cd * ch * x - cd * sh * y + sd * z
    return np.stack([u, v, w], axis=-1)


@dataclass
class SyntheticTruth:
    gains: npt.NDArray[np.complex128]  # [ntime, nant, nchan, npol] total per-antenna gain
    bandpass: npt.NDArray[np.complex128]  # [nant, nchan, npol]
    time_gain: npt.NDArray[np.complex128]  # [ntime, nant, npol]
    sigma: float  # noise std of each real/imag component per visibility
    sources: list[PointSource]


def random_gains(
    nant: int,
    nchan: int,
    ntime: int,
    npol: int = 2,
    seed: int = 2,
    amp_scatter: float = 0.2,
    phase_drift_rad: float = 0.3,
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128]]:
    """(bandpass [nant, nchan, npol], time gain [ntime, nant, npol]) with smooth ripples and delays."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1, 1, nchan)[None, :, None]
    amp = 1 + amp_scatter * rng.uniform(-1, 1, (nant, 1, npol)) + 0.05 * np.sin(
        3 * np.pi * x + rng.uniform(0, 2 * np.pi, (nant, 1, npol))
    )
    delay = rng.uniform(-3, 3, (nant, 1, npol))
    phase0 = rng.uniform(-np.pi, np.pi, (nant, 1, npol))
    bp = amp * np.exp(1j * (phase0 + delay * x))
    tt = np.linspace(0, 1, ntime)[:, None, None]
    drift = rng.normal(0, phase_drift_rad, (1, nant, npol)) * tt
    g = (1 + 0.02 * rng.normal(size=(ntime, nant, npol))) * np.exp(1j * drift)
    return bp.astype(np.complex128), g.astype(np.complex128)


def make_synthetic(
    sources: Sequence[PointSource],
    enu: npt.ArrayLike | None = None,
    nchan: int = 16,
    ntime: int = 8,
    f0: float = 1.311e9,
    chan_width: float = 244140.625 * 12,
    integration: float = 12.884902,
    dec0_deg: float = 33.0,
    mjd0: float = 60600.25,
    sigma: float = 0.1,
    gains: bool = True,
    seed: int = 3,
    include_autos: bool = False,
    corr_types: Sequence[int] = (9, 12),
    apparent_fluxes: bool = True,
) -> tuple[VisData, SyntheticTruth]:
    """A phased, regular visibility set observed at transit of the phase centre.

    The phase centre is at (LST at mid-time, dec0); `sources` carry apparent fluxes (no primary beam
    is applied here). `sigma` is the noise std of each real and imaginary part per visibility.
    WEIGHT counts samples (1), as in a converted MS; the SEFD that gives `sigma` is
    `sefd_for(sigma, chan_width, integration)` (what an imager needs for its thermal expectation).
    """
    pos = dsa_like_layout() if enu is None else np.asarray(enu, float)
    nant = pos.shape[0]
    npol = len(corr_types)
    a1, a2 = np.triu_indices(nant, 0 if include_autos else 1)
    ant1, ant2 = a1.astype(np.int32), a2.astype(np.int32)
    t_sec = mjd0 * SECONDS_PER_DAY + (np.arange(ntime) - (ntime - 1) / 2) * integration
    ha = (t_sec - t_sec.mean()) * SIDEREAL_RATE
    from astro.skymodel import local_sidereal_time

    ra0 = float(local_sidereal_time(mjd0)[0])
    dec0 = np.deg2rad(dec0_deg)
    uvw = enu_uvw(pos, ant1, ant2, ha, dec0)
    freq = f0 + np.arange(nchan) * chan_width
    lmn = radec_to_lmn(np.deg2rad([s.ra_deg for s in sources]), np.deg2rad([s.dec_deg for s in sources]), ra0, dec0)
    flux = np.stack([s.flux(freq) for s in sources])
    model = point_source_vis(uvw, freq, lmn, flux)[..., 0]  # [nt, nbl, nchan]
    vis = np.repeat(model[..., None], npol, axis=3).astype(np.complex128)
    bp, tg = random_gains(nant, nchan, ntime, npol, seed=seed)
    if not gains:
        bp = np.ones_like(bp)
        tg = np.ones_like(tg)
    g = bp[None, :, :, :] * tg[:, :, None, :]  # [nt, nant, nchan, npol]
    vis *= g[:, ant1] * np.conj(g[:, ant2])
    rng = np.random.default_rng(seed + 100)
    vis += sigma * (rng.standard_normal(vis.shape) + 1j * rng.standard_normal(vis.shape))
    autos = ant1 == ant2
    if autos.any():
        vis[:, autos] = np.abs(vis[:, autos]) + 100.0
    data = VisData(
        vis=vis.astype(np.complex64),
        flags=np.zeros(vis.shape, bool),
        weight=np.ones((ntime, ant1.size, npol), np.float32),
        uvw=uvw,
        ant1=ant1,
        ant2=ant2,
        time=np.asarray(t_sec, np.float64),
        freq=np.asarray(freq, np.float64),
        corr_types=list(corr_types),
        phase_dir=(ra0, float(dec0)),
        antenna_names=[f"DSA-{k + 1:03d}" for k in range(nant)],
        antenna_positions=enu_to_itrf(pos),
        interval=integration,
        chan_width=chan_width,
        field_name="synthetic",
    )
    return data, SyntheticTruth(gains=g, bandpass=bp, time_gain=tg, sigma=sigma, sources=list(sources))


def offset_source(
    name: str, ra0_rad: float, dec0_rad: float, dl_arcsec: float, dm_arcsec: float, flux_jy: float
) -> PointSource:
    """A point source at offset (l, m) (arcsec, SIN projection) from a phase centre."""
    from astro.skymodel import lm_to_radec

    ra, dec = lm_to_radec(np.deg2rad(dl_arcsec / 3600), np.deg2rad(dm_arcsec / 3600), ra0_rad, dec0_rad)
    return PointSource(name, float(np.rad2deg(ra)), float(np.rad2deg(dec)), flux_jy)


def transit_phase_centre(mjd0: float = 60600.25, dec0_deg: float = 33.0) -> tuple[float, float]:
    """Phase centre (ra, dec) radians used by `make_synthetic` for the same mjd0 and dec0."""
    from astro.skymodel import local_sidereal_time

    return float(local_sidereal_time(mjd0)[0]), float(np.deg2rad(dec0_deg))


def sefd_for(sigma: float, chan_width_hz: float, integration_s: float) -> float:
    """The SEFD (Jy) whose radiometer noise per real/imag part of one visibility is `sigma`."""
    return float(sigma * np.sqrt(2.0 * chan_width_hz * integration_s))


def thermal_sigma(sefd_jy: float, chan_width_hz: float, integration_s: float) -> float:
    """Std of each real/imag part of one visibility from the radiometer equation (single pol)."""
    return float(sefd_jy / np.sqrt(2.0 * chan_width_hz * integration_s))
