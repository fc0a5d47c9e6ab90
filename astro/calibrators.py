"""The shipped list of standard VLA calibrators, and which one transits a tile.

``astro/data/vla_calibrators.csv`` lists the flux-density calibrators (3C48, 3C138, 3C147,
3C196, 3C286, 3C295) and bright phase calibrators spread over the DSA-110's declination strips
(+16, +33, +54 and others) with J2000 positions and 1.4 GHz flux densities. The simulator puts
them in the sky; the watcher uses :func:`calibrator_in_tile` for ``has_calibrator``; the
calibrator actor uses the same list as its models.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle

from astro.catalogue import REF_FREQ_HZ

CALIBRATOR_FILE = Path(__file__).resolve().parent / "data" / "vla_calibrators.csv"
#: A calibrator "transits within the tile" when it is this close in declination to the strip.
DEFAULT_MAX_DEC_OFFSET_DEG = 1.5


class CalibratorError(ValueError):
    """Unknown calibrator or unreadable calibrator list."""


@dataclass(frozen=True)
class Calibrator:
    name: str
    alias: str
    ra_deg: float
    dec_deg: float
    flux_jy: float  # at 1.4 GHz
    spectral_index: float
    kind: str  # 'flux' or 'phase'

    def flux_at(self, freq_hz: float | np.ndarray = REF_FREQ_HZ) -> np.ndarray:
        """Flux density at ``freq_hz`` (a power law about 1.4 GHz)."""
        return np.asarray(self.flux_jy * (np.asarray(freq_hz, dtype=float) / REF_FREQ_HZ) ** self.spectral_index)


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Calibrator, ...]:
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    except OSError as exc:
        raise CalibratorError(f"cannot read calibrator list {path}: {exc}") from exc
    out = []
    for row in csv.DictReader(lines):
        out.append(
            Calibrator(
                name=row["name"],
                alias=row["alias"],
                ra_deg=float(Angle(row["ra_hms"], unit=u.hourangle).deg),
                dec_deg=float(Angle(row["dec_dms"], unit=u.deg).deg),
                flux_jy=float(row["flux_1p4_jy"]),
                spectral_index=float(row["spectral_index"]),
                kind=row["kind"],
            )
        )
    return tuple(out)


def load_calibrators(path: Path | str | None = None) -> list[Calibrator]:
    """All calibrators of the shipped list (or of ``path``)."""
    return list(_load(str(path or CALIBRATOR_FILE)))


def get_calibrator(name: str) -> Calibrator:
    """Look a calibrator up by name or J2000 alias (case-insensitive, spaces ignored)."""
    key = name.replace(" ", "").upper()
    for c in load_calibrators():
        if key in (c.name.replace(" ", "").upper(), c.alias.upper()):
            return c
    raise CalibratorError(f"unknown calibrator {name!r}")


def _ra_in_range(ra: float, lo: float, hi: float) -> bool:
    ra, lo, hi = ra % 360.0, lo % 360.0, hi % 360.0
    return lo <= ra <= hi if lo <= hi else (ra >= lo or ra <= hi)


def calibrators_in_tile(
    ra_range_deg: tuple[float, float],
    dec_deg: float,
    max_dec_offset_deg: float = DEFAULT_MAX_DEC_OFFSET_DEG,
) -> list[Calibrator]:
    """Calibrators whose RA lies in the tile's meridian RA range and dec near the strip, brightest first."""
    lo, hi = ra_range_deg
    found = [
        c
        for c in load_calibrators()
        if _ra_in_range(c.ra_deg, lo, hi) and abs(c.dec_deg - dec_deg) <= max_dec_offset_deg
    ]
    return sorted(found, key=lambda c: -c.flux_jy)


def calibrator_in_tile(
    ra_range_deg: tuple[float, float],
    dec_deg: float,
    max_dec_offset_deg: float = DEFAULT_MAX_DEC_OFFSET_DEG,
) -> Calibrator | None:
    """The brightest calibrator transiting the tile (RA in ``ra_range_deg``, wrapping), or None."""
    found = calibrators_in_tile(ra_range_deg, dec_deg, max_dec_offset_deg)
    return found[0] if found else None


def nearest_calibrator(dec_deg: float, kind: str | None = None) -> Calibrator:
    """The brightest calibrator within 2° of ``dec_deg``, else the one nearest in declination."""
    cals = [c for c in load_calibrators() if kind is None or c.kind == kind]
    close = [c for c in cals if abs(c.dec_deg - dec_deg) <= 2.0]
    if close:
        return max(close, key=lambda c: c.flux_jy)
    return min(cals, key=lambda c: abs(c.dec_deg - dec_deg))
