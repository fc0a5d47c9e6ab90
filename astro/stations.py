"""DSA-110 station positions and the choice of the 96 active antennas.

The published table (``astro/data/DSA110_Station_Coordinates.csv``, a copy of the DSA-110
project's file of 2022-02-15) lists 117 stations: DSA-001..051 along the east-west core arm,
DSA-052..102 along the north-south core arm, and DSA-103..117 as outriggers. DSA-117 has no
surveyed elevation; it gets the mean elevation of the others.

Only 96 stations carry active antennas (47 E-W core, 35 N-S core, 14 outriggers). The project's
exact list is not published with the table, so we choose a documented, deterministic subset:

* E-W arm: DSA-003..DSA-049 (the arm without its two outermost stations at either end);
* N-S arm: DSA-052..DSA-086 (the southern 35 stations, nearest the arm junction);
* outriggers: DSA-103..DSA-116 (all but DSA-117, the station without a surveyed elevation).

This keeps every core baseline under 485 m and the longest baseline near 2.6 km, as the
project's documents describe.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import EarthLocation

from astro.instrument import site_location

_SHIPPED = Path(__file__).resolve().parent / "data" / "DSA110_Station_Coordinates.csv"
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "DSA110_Station_Coordinates.csv"

_NAME = re.compile(r"DSA-\d{3}")

EW_ACTIVE = range(3, 50)
NS_ACTIVE = range(52, 87)
OUTRIGGER_ACTIVE = range(103, 117)


class StationFileError(ValueError):
    """The station coordinate table cannot be read."""


@dataclass(frozen=True)
class Station:
    """One station of the published table."""

    number: int
    name: str
    lat_deg: float
    lon_deg: float
    height_m: float

    @property
    def arm(self) -> str:
        """'ew', 'ns' or 'outrigger', from the station numbering."""
        if self.number <= 51:
            return "ew"
        if self.number <= 102:
            return "ns"
        return "outrigger"


def default_station_file() -> Path:
    """The shipped copy of the station table (falls back to ``../shared/data``)."""
    return _SHIPPED if _SHIPPED.exists() else _SHARED


def read_stations(path: Path | str | None = None) -> list[Station]:
    """Read the station table: skip the title block, fill a missing elevation with the mean."""
    p = Path(path) if path is not None else default_station_file()
    try:
        text = p.read_text()
    except OSError as exc:
        raise StationFileError(f"cannot read station table {p}: {exc}") from exc
    rows: list[tuple[int, str, float, float, float | None]] = []
    for rec in csv.reader(text.splitlines()):
        cells = [c.strip() for c in rec]
        name = next((c for c in cells if _NAME.fullmatch(c)), None)
        if name is None:
            continue
        idx = cells.index(name)
        try:
            lat = float(cells[idx + 1])
            lon = float(cells[idx + 2])
        except (IndexError, ValueError) as exc:
            raise StationFileError(f"station {name}: bad latitude/longitude in {p}") from exc
        height_s = cells[idx + 3] if len(cells) > idx + 3 else ""
        height = float(height_s) if height_s else None
        rows.append((int(name.split("-")[1]), name, lat, lon, height))
    if not rows:
        raise StationFileError(f"no DSA-nnn rows in station table {p}")
    known = [h for *_, h in rows if h is not None]
    mean_h = float(np.mean(known))
    return [Station(n, nm, la, lo, h if h is not None else mean_h) for n, nm, la, lo, h in rows]


def active_station_numbers() -> list[int]:
    """The 96 active station numbers, in ascending order (see the module docstring)."""
    return [*EW_ACTIVE, *NS_ACTIVE, *OUTRIGGER_ACTIVE]


@dataclass(frozen=True)
class Array:
    """A set of antennas: names, numbers (0-based antenna numbers for UVData) and positions."""

    names: list[str]
    station_numbers: np.ndarray
    ecef: np.ndarray  # (Nants, 3) metres, Earth-centred Earth-fixed
    enu: np.ndarray  # (Nants, 3) metres, east/north/up about the telescope site
    site: EarthLocation

    @property
    def n_ants(self) -> int:
        return len(self.names)

    @property
    def antenna_numbers(self) -> np.ndarray:
        """Antenna numbers as they appear in UVData/MS: station number - 1 (0-based)."""
        return self.station_numbers - 1

    def relative_ecef(self) -> np.ndarray:
        """ECEF positions relative to the site (pyuvdata's ``antenna_positions``)."""
        site = np.array([self.site.x.to_value(u.m), self.site.y.to_value(u.m), self.site.z.to_value(u.m)])
        return self.ecef - site


def ecef_to_enu(ecef: np.ndarray, site: EarthLocation) -> np.ndarray:
    """Rotate ECEF positions (metres) into the east/north/up frame at ``site``."""
    lat = site.lat.to_value(u.rad)
    lon = site.lon.to_value(u.rad)
    x0 = np.array([site.x.to_value(u.m), site.y.to_value(u.m), site.z.to_value(u.m)])
    d = np.asarray(ecef, dtype=float) - x0
    sl, cl, sp, cp = np.sin(lon), np.cos(lon), np.sin(lat), np.cos(lat)
    rot = np.array(
        [
            [-sl, cl, 0.0],
            [-sp * cl, -sp * sl, cp],
            [cp * cl, cp * sl, sp],
        ]
    )
    return d @ rot.T


@lru_cache(maxsize=8)
def _array(n_ants: int, path: str | None, core_only: bool = False) -> Array:
    stations = {s.number: s for s in read_stations(path)}
    numbers = [*EW_ACTIVE, *NS_ACTIVE] if core_only else active_station_numbers()
    if not 1 <= n_ants <= len(numbers):
        raise ValueError(f"n_ants must be between 1 and {len(numbers)}, got {n_ants}")
    if n_ants < len(numbers):
        # A small array for tests: spread the choice over all three arms (deterministic), so a
        # handful of antennas still has short and long baselines.
        pick = np.unique(np.round(np.linspace(0, len(numbers) - 1, n_ants)).astype(int))
        numbers = [numbers[i] for i in pick]
    chosen = [stations[n] for n in numbers]
    loc = EarthLocation.from_geodetic(
        lon=[s.lon_deg for s in chosen] * u.deg,
        lat=[s.lat_deg for s in chosen] * u.deg,
        height=[s.height_m for s in chosen] * u.m,
    )
    ecef = np.stack([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)], axis=1)
    site = site_location()
    return Array(
        names=[s.name for s in chosen],
        station_numbers=np.array(numbers, dtype=int),
        ecef=ecef,
        enu=ecef_to_enu(ecef, site),
        site=site,
    )


def dsa110_array(n_ants: int = 96, path: Path | str | None = None, core_only: bool = False) -> Array:
    """The active array (or an evenly spread subset of ``n_ants`` for fast tests).

    ``core_only``: choose from the two core arms only (baselines under 485 m, a ~1.5' beam), so a
    test can image the whole primary beam on a small grid.
    """
    return _array(n_ants, str(path) if path is not None else None, core_only)
