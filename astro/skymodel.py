"""Sky models for calibration: point-source model visibilities and primary-beam attenuation.

Convention (see `msio`): V = sum_k S_k exp(-2 pi i (u l_k + v m_k + w (n_k - 1))), l towards east.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from astro import primary_beam

C_LIGHT = 299792458.0

# OVRO (DSA-110 site), from the instrument facts; used only when no antenna positions are known
OVRO_LAT_DEG = 37.2339
OVRO_LON_DEG = -118.2825
OVRO_HEIGHT_M = 1188.0


@dataclass(frozen=True)
class PointSource:
    """A point source with a power-law spectrum: S(f) = flux_jy (f / ref_freq_hz) ** spectral_index."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = 0.0
    ref_freq_hz: float = 1.4e9

    def flux(self, freq: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return self.flux_jy * (np.asarray(freq, float) / self.ref_freq_hz) ** self.spectral_index


def radec_to_lmn(ra: npt.ArrayLike, dec: npt.ArrayLike, ra0: float, dec0: float) -> npt.NDArray[np.float64]:
    """Direction cosines (l, m, n) of (ra, dec) relative to the phase centre (ra0, dec0), radians."""
    ra_a = np.asarray(ra, float)
    dec_a = np.asarray(dec, float)
    dra = ra_a - ra0
    lval = np.cos(dec_a) * np.sin(dra)
    mval = np.sin(dec_a) * np.cos(dec0) - np.cos(dec_a) * np.sin(dec0) * np.cos(dra)
    nval = np.sin(dec_a) * np.sin(dec0) + np.cos(dec_a) * np.cos(dec0) * np.cos(dra)
    return np.stack([lval, mval, nval], axis=-1)


def lm_to_radec(
    lval: npt.ArrayLike, mval: npt.ArrayLike, ra0: float, dec0: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Inverse of `radec_to_lmn` (SIN projection), radians."""
    lv = np.asarray(lval, float)
    mv = np.asarray(mval, float)
    nv = np.sqrt(np.clip(1.0 - lv * lv - mv * mv, 0.0, None))
    dec = np.arcsin(mv * np.cos(dec0) + nv * np.sin(dec0))
    ra = ra0 + np.arctan2(lv, nv * np.cos(dec0) - mv * np.sin(dec0))
    return np.mod(ra, 2 * np.pi), dec


def airy_beam(theta: npt.ArrayLike, freq: npt.ArrayLike, dish_diameter: float = 4.65) -> npt.NDArray[np.float64]:
    """Power pattern of a uniformly illuminated dish, (2 J1(x)/x)^2: ``astro.primary_beam``'s, the
    one the simulator observes through (kept under this name for callers of this module)."""
    return np.asarray(primary_beam.airy_beam(theta, freq, dish_diameter), float)


def angular_separation(
    ra1: npt.ArrayLike, dec1: npt.ArrayLike, ra2: npt.ArrayLike, dec2: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Great-circle separation, radians (Vincenty formula; ``astro.primary_beam``'s)."""
    return np.asarray(primary_beam.angular_separation(ra1, dec1, ra2, dec2), float)


def local_sidereal_time(mjd: npt.ArrayLike, lon_deg: float = OVRO_LON_DEG) -> npt.NDArray[np.float64]:
    """Apparent local sidereal time, radians, for UTC MJDs."""
    from astropy.time import Time

    t = Time(np.atleast_1d(np.asarray(mjd, float)), format="mjd", scale="utc")
    return np.asarray(t.sidereal_time("apparent", longitude=lon_deg).rad, float)


def itrf_to_geodetic(positions: npt.ArrayLike) -> tuple[float, float, float]:
    """Mean (lat_deg, lon_deg, height_m) of ITRF antenna positions [nant, 3]."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    p = np.asarray(positions, float).reshape(-1, 3)
    c = p.mean(axis=0)
    if not np.all(np.isfinite(c)) or np.linalg.norm(c) < 6.0e6:
        return OVRO_LAT_DEG, OVRO_LON_DEG, OVRO_HEIGHT_M
    loc = EarthLocation.from_geocentric(c[0] * u.m, c[1] * u.m, c[2] * u.m)
    return float(loc.lat.deg), float(loc.lon.deg), float(loc.height.to_value(u.m))


def _meridian_ra_deg(mjd: npt.NDArray[np.float64], dec_deg: float, lon_deg: float) -> npt.NDArray[np.float64]:
    """ICRS RA (deg) of the meridian at `dec_deg`, per MJD: exact at the ends, linear in between.

    The meridian RA advances at the sidereal rate; over a tile (minutes) the linear interpolation
    between two exact astropy transformations is good to far below a milliarcsecond.
    """
    from astropy.time import Time

    from astro.coordinates import meridian_ra_deg

    lo, hi = float(np.min(mjd)), float(np.max(mjd))
    # at the site, shifted 1:1 by the longitude difference (astro.coordinates tests a location
    # for truth, which an EarthLocation refuses, so none is passed)
    ends = np.asarray(meridian_ra_deg(Time([lo, hi], format="mjd", scale="utc"), dec_deg), float)
    ends = ends + (lon_deg - OVRO_LON_DEG)
    if hi - lo < 1e-9:
        return np.full(mjd.shape, ends[0])
    span = (ends[1] - ends[0]) % 360.0
    return np.asarray((ends[0] + span * (mjd - lo) / (hi - lo)) % 360.0, float)


def drift_beam_gains(
    sources: Sequence[PointSource],
    mjd: npt.ArrayLike,
    freq: npt.ArrayLike,
    pointing_dec: float,
    lon_deg: float = OVRO_LON_DEG,
    dish_diameter: float = 4.65,
    pointing_ra: float | None = None,
) -> npt.NDArray[np.float64]:
    """Primary-beam power [nsrc, ntime, nchan] for a transit (drift-scan) instrument.

    The beam centre is the ICRS position on the meridian at `pointing_dec` at each time (as
    ``astro.coordinates.meridian_ra_deg`` gives it, and as the simulator points the dishes) unless
    `pointing_ra` (radians) fixes it. Not the local sidereal time: that is the meridian's RA in the
    equinox of date, ~0.3 deg (precession since J2000) away from the ICRS one in 2025, which put
    the calibrator's beam attenuation off by several per cent.
    """
    mjd_a = np.atleast_1d(np.asarray(mjd, float))
    f = np.asarray(freq, float)
    if pointing_ra is None:
        pra = np.deg2rad(_meridian_ra_deg(mjd_a, float(np.rad2deg(pointing_dec)), lon_deg))
    else:
        pra = np.full(mjd_a.size, pointing_ra)
    out = np.empty((len(sources), mjd_a.size, f.size))
    for k, s in enumerate(sources):
        th = angular_separation(np.deg2rad(s.ra_deg), np.deg2rad(s.dec_deg), pra, pointing_dec)
        out[k] = airy_beam(th[:, None], f[None, :], dish_diameter)
    return out


#: channels between exact re-anchorings of a phasor advanced by products (equally spaced channels)
ANCHOR_CHANNELS = 64


@numba.njit(parallel=True, cache=True, fastmath=True)
def _point_model_kernel(
    uvw: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    lmn: npt.NDArray[np.float64],
    flux: npt.NDArray[np.float64],
    dfreq: float,
    out: npt.NDArray[np.complex64],
) -> None:  # pragma: no cover - compiled
    """out[t, b, c, 0] = sum_s flux[t, c, s] exp(-2 pi i f_c delay_s / c_light), flux [ntime|1, nchan|1, nsrc].

    Sources are the innermost loop, with the phasors as separate real and imaginary arrays: each
    channel is then one pass over independent sources, which vectorises (fastmath lets the two sums
    be reassociated; the result moves by ~1e-8 relative, below complex64's own rounding). Summing
    channel by channel within one source instead chained every channel on the previous product and
    was 3x (one source) to 4.5x (200) slower.
    """
    ntime, nbl = uvw.shape[0], uvw.shape[1]
    nchan = freq.shape[0]
    nsrc = lmn.shape[0]
    k = -2.0 * np.pi / 299792458.0
    anchor = ANCHOR_CHANNELS if dfreq != 0.0 else 1
    for tb in numba.prange(ntime * nbl):
        t = tb // nbl
        b = tb % nbl
        u, v, w = uvw[t, b, 0], uvw[t, b, 1], uvw[t, b, 2]
        tl = t if lmn.shape[1] > 1 else 0
        tf = t if flux.shape[0] > 1 else 0
        delay = np.empty(nsrc)
        zr = np.empty(nsrc)
        zi = np.empty(nsrc)
        sr = np.empty(nsrc)
        si = np.empty(nsrc)
        for s in range(nsrc):
            delay[s] = u * lmn[s, tl, 0] + v * lmn[s, tl, 1] + w * (lmn[s, tl, 2] - 1.0)
            # equally spaced channels: the phasor advances by one fixed step per channel, a complex
            # product instead of a cos and a sin, re-anchored exactly every ANCHOR_CHANNELS
            step = k * delay[s] * dfreq
            sr[s] = np.cos(step)
            si[s] = np.sin(step)
        for c in range(nchan):
            if c % anchor == 0:
                for s in range(nsrc):
                    ph = k * delay[s] * freq[c]
                    zr[s] = np.cos(ph)
                    zi[s] = np.sin(ph)
            cf = c if flux.shape[1] > 1 else 0
            ar = 0.0
            ai = 0.0
            for s in range(nsrc):
                f = flux[tf, cf, s]
                ar += f * zr[s]
                ai += f * zi[s]
                nr = zr[s] * sr[s] - zi[s] * si[s]
                zi[s] = zr[s] * si[s] + zi[s] * sr[s]
                zr[s] = nr
            out[t, b, c, 0] = np.complex64(complex(ar, ai))


def point_source_vis(
    uvw: npt.ArrayLike,
    freq: npt.ArrayLike,
    lmn: npt.ArrayLike,
    flux: npt.ArrayLike,
) -> npt.NDArray[np.complex64]:
    """Model visibilities of point sources, shape [ntime, nbl, nchan, 1] (unpolarised, same for XX/YY).

    uvw: [ntime, nbl, 3] metres; freq: [nchan] Hz;
    lmn: [nsrc, 3] or [nsrc, ntime, 3] direction cosines (time-dependent if the phase centre moves);
    flux: apparent flux (flux x primary beam) in Jy, one of: scalar, [nsrc], [nsrc, nchan],
    or [nsrc, ntime|1, nchan|1].
    """
    uvw_a = np.ascontiguousarray(uvw, np.float64)
    f = np.ascontiguousarray(np.atleast_1d(np.asarray(freq, np.float64)))
    lmn_a = np.asarray(lmn, np.float64)
    if lmn_a.ndim == 1:
        lmn_a = lmn_a[None, None, :]
    elif lmn_a.ndim == 2:
        lmn_a = lmn_a[:, None, :]
    nsrc = lmn_a.shape[0]
    fl = np.asarray(flux, np.float64)
    if fl.ndim == 0:
        fl = np.full((nsrc, 1, 1), float(fl))
    elif fl.ndim == 1:  # one flux per source
        fl = fl.reshape(nsrc, 1, 1)
    elif fl.ndim == 2:  # [nsrc, nchan]
        fl = fl[:, None, :]
    if fl.ndim != 3 or fl.shape[0] != nsrc:
        raise ValueError(f"flux shape {np.shape(flux)} does not broadcast to [nsrc, ntime, nchan]")
    out = np.empty((uvw_a.shape[0], uvw_a.shape[1], f.size, 1), np.complex64)
    step = np.diff(f)
    uniform = f.size > 1 and bool(np.all(np.abs(step - step[0]) <= 1e-9 * np.abs(f).max()))
    dfreq = float(step[0]) if uniform else 0.0
    # sources innermost (see the kernel): flux as [ntime|1, nchan|1, nsrc]
    flux_t = np.ascontiguousarray(fl.transpose(1, 2, 0))
    _point_model_kernel(uvw_a, f, np.ascontiguousarray(lmn_a), flux_t, dfreq, out)
    return out


def source_model_vis(
    uvw: npt.ArrayLike,
    freq: npt.ArrayLike,
    sources: Sequence[PointSource],
    phase_dir: tuple[float, float],
    beam: npt.ArrayLike | None = None,
) -> npt.NDArray[np.complex64]:
    """Model visibilities [ntime, nbl, nchan, 1] of `sources` about `phase_dir` (radians).

    `beam`, if given, is the primary-beam power [nsrc, ntime, nchan] (e.g. from `drift_beam_gains`).
    """
    f = np.asarray(freq, float)
    lmn = radec_to_lmn(np.deg2rad([s.ra_deg for s in sources]), np.deg2rad([s.dec_deg for s in sources]), *phase_dir)
    flux = np.stack([s.flux(f) for s in sources])[:, None, :]
    if beam is not None:
        flux = flux * np.asarray(beam, float)
    return point_source_vis(uvw, f, lmn, flux)
