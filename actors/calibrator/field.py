"""The field's own sources in the calibration model, from the reference (NVSS-like) catalogue.

Why (issue 11): a calibrator group is also a science tile, and the antenna-based solve cannot tell
some of its field sources from the calibrator. DSA-110's core is a cross: an east-west arm (all
antennas at one northing) and a north-south arm (all at one easting). Near transit a north-south
baseline has u ~ 0, so a source at the calibrator's declination - due east or west of it, on its
track - has no fringe there: on every baseline between two antennas of that arm it looks exactly
like the calibrator. Likewise a source due north or south of it looks like the calibrator on the
east-west arm. Solved against the calibrator alone, the gains of that arm take the extra flux as
a gain amplitude (the model must come out at the calibrator's flux), and applying them moves the
source's flux into the calibrator, which peeling then takes out. To first order a source loses
2|A|^2 of its flux, A = (1/N) sum_k exp(-2 pi i (u_k l + v_k m) / lambda) being the array factor
of the N antennas in its direction; on the ridges of a cross A ~ the arm's share of the antennas,
so with 17 of 40 antennas on the north-south arm (the light-curve bench) an east/west source
keeps 1 - 2 (17/40)^2 ~ 0.6 of its flux, and north/south ones less (0.43 measured). The loss is
a fraction of each source's own flux, whatever its brightness, and it is the same every epoch.
Neither the solution interval nor the bandpass/gain split changes it: the source is coherent
with the calibrator over the whole 5-minute tile and over the band.

The cure is the one DSA-110 uses: model the field too (its catalogue sources through the same
drift beam as the calibrator), so the solve has nothing it must explain with gains. What the
catalogue gets wrong (a source's flux error, a variable source away from its catalogue flux) is
still pulled towards the model by the same 2|A|^2, so a catalogue error of x % costs at most ~x %
on a ridge source and nothing elsewhere. These sources are modelled, not peeled: the imager
subtracts only the calibrators (the ``sources`` of the set), and every field source is imaged
and measured from the data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from astro.catalogue import CatalogueError, load_catalogue
from astro.skymodel import PointSource

__all__ = ["field_sources"]

#: catalogue sources within this of the tile's beam track are candidates (the Airy first null at
#: the bottom of the band, 1.28 GHz, is 3.5 deg; the solve keeps those bright enough through the beam)
DEFAULT_RADIUS_DEG = 3.5
#: a catalogue entry this close to a calibrator is that calibrator (already in the model)
SAME_SOURCE_ARCSEC = 60.0


def _separation_deg(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(r1 - r2)
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def field_sources(
    catalogue_path: str | os.PathLike[str] | None,
    ra_range_deg: tuple[float, float],
    dec_deg: float,
    calibrators: Sequence[PointSource],
    radius_deg: float = DEFAULT_RADIUS_DEG,
) -> list[PointSource]:
    """Catalogue sources near the beam's track over the tile, as model `PointSource`s (quiescent flux).

    `ra_range_deg` is the meridian RA at the tile's first and last integration (the beam centre
    drifts along it at `dec_deg`); a source is a candidate within `radius_deg` of the nearest point
    of that track. Entries that are one of `calibrators` are left out. No catalogue (None, missing
    or unreadable): no field model - the solve then uses the calibrators alone, as before.
    """
    if catalogue_path is None:
        return []
    try:
        cat = load_catalogue(os.fspath(catalogue_path))
    except CatalogueError:
        return []
    lo, hi = ra_range_deg
    span = (hi - lo) % 360.0
    out: list[PointSource] = []
    for s in cat.sources:
        # nearest point of the track: the source's RA clipped to the track's RA span
        off = (s.ra_deg - lo) % 360.0
        if off > span:
            off = span if off - span < 360.0 - off else 0.0
        if _separation_deg(s.ra_deg, s.dec_deg, lo + off, dec_deg) > radius_deg:
            continue
        if any(
            _separation_deg(s.ra_deg, s.dec_deg, c.ra_deg, c.dec_deg) * 3600.0 < SAME_SOURCE_ARCSEC for c in calibrators
        ):
            continue
        out.append(PointSource(s.name, s.ra_deg, s.dec_deg, s.flux_jy, s.spectral_index, 1.4e9))
    return out
