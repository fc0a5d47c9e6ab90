"""Sky geometry for a meridian drift-scan array: meridian RA, transits, directions in ENU.

The DSA-110 does not track: its dishes point at one declination on the meridian and the sky
drifts through. The "phase centre of a tile" is the ICRS position on the meridian at the pointing
declination at the tile's middle time.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import ICRS, AltAz, EarthLocation, HADec, SkyCoord
from astropy.time import Time

from astro.instrument import site_location

SIDEREAL_DAY_S = 86164.0905
#: Sidereal days per solar day (rate of hour angle per UT second, in turns per 86400 s).
SIDEREAL_RATE = 1.00273781191135448


def meridian_ra_deg(times: Time, dec_deg: float = 0.0, location: EarthLocation | None = None) -> np.ndarray:
    """ICRS right ascension (deg) of the point on the local meridian at ``dec_deg``, per time.

    Computed by transforming hour angle 0 (apparent, topocentric) to ICRS, so precession,
    nutation and aberration are included; the declination of the result is not returned (it
    differs from ``dec_deg`` by the precession since J2000, a fraction of a degree).
    """
    loc = location or site_location()
    t = Time(times)
    hadec = SkyCoord(
        HADec(
            ha=np.zeros(t.shape) * u.hourangle,
            dec=np.full(t.shape, dec_deg) * u.deg,
            obstime=t,
            location=loc,
            pressure=0 * u.hPa,
        )
    )
    icrs = hadec.transform_to(ICRS())
    return np.asarray(icrs.ra.deg)


def transit_time(ra_deg: float, after: Time, dec_deg: float = 0.0, location: EarthLocation | None = None) -> Time:
    """The first time at or after ``after`` when ICRS RA ``ra_deg`` is on the meridian."""
    t0 = Time(after)
    ra0 = float(meridian_ra_deg(t0, dec_deg, location))
    dt = ((ra_deg - ra0) % 360.0) / 360.0 * SIDEREAL_DAY_S
    t = t0 + dt * u.s
    for _ in range(3):  # Newton refinement against the exact transformation
        err = ((float(meridian_ra_deg(t, dec_deg, location)) - ra_deg + 180.0) % 360.0) - 180.0
        t = t - err / 360.0 * SIDEREAL_DAY_S * u.s
    return Time(t, format="isot", scale="utc")


def enu_directions(
    ra_deg: np.ndarray, dec_deg: np.ndarray, times: Time, location: EarthLocation | None = None
) -> np.ndarray:
    """Unit vectors (east, north, up) towards ICRS positions, shape (Ntimes, Nsrc, 3).

    astropy gives the apparent topocentric hour angle and declination (precession, nutation,
    aberration; no refraction) once, at the middle of ``times``; the other times rotate the
    hour angle by the sidereal rate. Over a 5-minute tile that differs from a full astropy AltAz
    transformation per time by well under a milliarcsecond, at a small fraction of the cost.
    """
    loc = location or site_location()
    t = Time(times)
    t1 = t.reshape(-1)
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    if ra.size == 0:
        return np.zeros((t1.size, 0, 3))
    t_ref = Time(0.5 * (t1.jd.min() + t1.jd.max()), format="jd", scale=t1.scale)
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs")
    hd = c.transform_to(HADec(obstime=t_ref, location=loc, pressure=0 * u.hPa))
    ha0 = hd.ha.rad
    d = hd.dec.rad
    dt_s = (t1.jd - t_ref.jd) * 86400.0
    ha = ha0[None, :] + (2.0 * np.pi * SIDEREAL_RATE * dt_s / 86400.0)[:, None]
    lat = loc.lat.rad
    sd, cd = np.sin(d)[None, :], np.cos(d)[None, :]
    sh, ch = np.sin(ha), np.cos(ha)
    sl, cl = np.sin(lat), np.cos(lat)
    e = -cd * sh
    n = cl * sd - sl * cd * ch
    up = sl * sd + cl * cd * ch
    return np.stack([e, n, up], axis=-1)


def enu_directions_exact(
    ra_deg: np.ndarray, dec_deg: np.ndarray, times: Time, location: EarthLocation | None = None
) -> np.ndarray:
    """Like :func:`enu_directions`, but a full astropy AltAz transformation at every time (slow)."""
    loc = location or site_location()
    t = Time(times).reshape(-1)
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=float))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=float))
    c = SkyCoord(ra=ra[None, :] * u.deg, dec=dec[None, :] * u.deg, frame="icrs")
    aa = c.transform_to(AltAz(obstime=t[:, None], location=loc, pressure=0 * u.hPa))
    alt, az = aa.alt.rad, aa.az.rad
    ca = np.cos(alt)
    return np.stack([ca * np.sin(az), ca * np.cos(az), np.sin(alt)], axis=-1)


def pointing_enu(time: Time, dec_deg: float, location: EarthLocation | None = None) -> np.ndarray:
    """ENU unit vector of the dish pointing: the meridian at ``dec_deg`` (ICRS) at ``time``."""
    ra = meridian_ra_deg(Time(time), dec_deg, location)
    return enu_directions(np.atleast_1d(ra), np.array([dec_deg]), Time([Time(time).jd], format="jd"), location)[0, 0]


def tile_phase_center(mid_time: Time, dec_deg: float, location: EarthLocation | None = None) -> tuple[float, float]:
    """(ra_deg, dec_deg) ICRS phase centre of a tile: the meridian RA at mid-time, the strip dec."""
    return float(meridian_ra_deg(Time(mid_time), dec_deg, location)), float(dec_deg)
