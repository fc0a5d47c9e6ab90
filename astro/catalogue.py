"""A deterministic synthetic NVSS-like sky: the simulator's truth and the pipeline's reference.

The sky is generated in 1° cells of right ascension along a declination strip. Each cell draws
its sources from its own random stream seeded by ``(seed, cell, strip)``, so any range of RA gives
the same sources wherever it overlaps another range; a catalogue made for one night matches the
one made for the next.

Source counts follow a power law in the differential counts dN/dS ∝ S^-γ (γ = 2.1 by default,
"Euclidean-ish" at mJy levels) normalised to NVSS: ~30 sources deg⁻² above 5 mJy at 1.4 GHz.
Spectral indices are drawn around -0.7.

Light curves are constant unless a source is chosen for injected variability: a sinusoidal
modulation, or an ESE-like event (extreme scattering event): a smooth dip lasting days to weeks,
with brief caustic brightenings at its edges.

The catalogue is saved as JSON beside the simulated files (``catalogue.json``) and read back with
:func:`load_catalogue`; :func:`flux_at` gives a source's flux density at any MJD and frequency.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

REF_FREQ_HZ = 1.4e9
DEFAULT_S_MIN_JY = 0.005
DEFAULT_S_MAX_JY = 5.0
DEFAULT_DENSITY_PER_DEG2 = 30.0  # above S_MIN
DEFAULT_GAMMA = 2.1
DEFAULT_HALF_WIDTH_DEG = 4.0
CATALOGUE_VERSION = 1


class CatalogueError(ValueError):
    """A catalogue file cannot be read or does not describe a catalogue."""


@dataclass(frozen=True)
class LightCurve:
    """How a source's flux density changes with time (a multiplicative factor on ``flux_jy``).

    kind ``constant``: factor 1.
    kind ``sinusoid``: 1 + amplitude sin(2π (mjd - t0_mjd) / period_days).
    kind ``ese``: a dip of fractional ``depth`` from ``t0_mjd`` for ``duration_days``, with
    smooth edges of width ``edge_days`` and caustic brightenings of fractional height
    ``boost`` centred one edge-width outside either end of the dip.
    """

    kind: str = "constant"
    t0_mjd: float = 0.0
    duration_days: float = 0.0
    depth: float = 0.0
    boost: float = 0.0
    edge_days: float = 0.0
    amplitude: float = 0.0
    period_days: float = 0.0

    def factor(self, mjd: ArrayLike) -> np.ndarray:
        t = np.asarray(mjd, dtype=float)
        if self.kind == "constant":
            return np.ones_like(t)
        if self.kind == "sinusoid":
            return 1.0 + self.amplitude * np.sin(2 * np.pi * (t - self.t0_mjd) / self.period_days)
        if self.kind == "ese":
            t1 = self.t0_mjd + self.duration_days
            w = max(self.edge_days, 1e-6)
            box = 0.5 * (np.tanh((t - self.t0_mjd) / w) - np.tanh((t - t1) / w))
            bumps = np.exp(-0.5 * ((t - (self.t0_mjd - w)) / w) ** 2) + np.exp(
                -0.5 * ((t - (t1 + w)) / w) ** 2
            )
            return 1.0 - self.depth * box + self.boost * bumps
        raise CatalogueError(f"unknown light-curve kind {self.kind!r}")

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"


@dataclass(frozen=True)
class Source:
    """One catalogue source. ``flux_jy`` is the quiescent 1.4 GHz flux density (the 'NVSS flux')."""

    name: str
    ra_deg: float
    dec_deg: float
    flux_jy: float
    spectral_index: float = -0.7
    lightcurve: LightCurve = field(default_factory=LightCurve)


@dataclass(frozen=True)
class Catalogue:
    """A list of sources plus how it was made."""

    sources: tuple[Source, ...]
    seed: int = 0
    dec_deg: float = 0.0
    half_width_deg: float = DEFAULT_HALF_WIDTH_DEG
    s_min_jy: float = DEFAULT_S_MIN_JY

    def __len__(self) -> int:
        return len(self.sources)

    def by_name(self) -> dict[str, Source]:
        return {s.name: s for s in self.sources}

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(ra_deg, dec_deg, flux_jy, spectral_index) as arrays."""
        ra = np.array([s.ra_deg for s in self.sources], dtype=float)
        dec = np.array([s.dec_deg for s in self.sources], dtype=float)
        flux = np.array([s.flux_jy for s in self.sources], dtype=float)
        alpha = np.array([s.spectral_index for s in self.sources], dtype=float)
        return ra, dec, flux, alpha

    def fluxes_at(self, mjd: float, freq_hz: float = REF_FREQ_HZ) -> np.ndarray:
        """Flux density of every source at one MJD and frequency."""
        return np.array([float(flux_at(s, mjd, freq_hz)) for s in self.sources], dtype=float)

    def in_region(self, ra_range_deg: tuple[float, float], dec_range_deg: tuple[float, float]) -> list[Source]:
        """Sources with RA in [lo, hi] (wrapping through 0 if lo > hi) and dec in the range."""
        lo, hi = ra_range_deg
        out = []
        for s in self.sources:
            ra = s.ra_deg % 360.0
            in_ra = (lo <= ra <= hi) if lo <= hi else (ra >= lo or ra <= hi)
            if in_ra and dec_range_deg[0] <= s.dec_deg <= dec_range_deg[1]:
                out.append(s)
        return out


def nvss_name(ra_deg: float, dec_deg: float) -> str:
    """``NVSS JHHMMSS.s+DDMMSS`` (truncated, as survey names are)."""
    ra_h = (ra_deg % 360.0) / 15.0
    hh = int(ra_h)
    mm = int((ra_h - hh) * 60)
    ss = (ra_h - hh - mm / 60) * 3600
    ss = math.floor(ss * 10) / 10
    if ss >= 60.0:
        ss = 59.9
    sign = "+" if dec_deg >= 0 else "-"
    d = abs(dec_deg)
    dd = int(d)
    dm = int((d - dd) * 60)
    ds = int((d - dd - dm / 60) * 3600)
    ds = min(ds, 59)
    return f"NVSS J{hh:02d}{mm:02d}{ss:04.1f}{sign}{dd:02d}{dm:02d}{ds:02d}"


def flux_at(source: Source, mjd: ArrayLike, freq_hz: ArrayLike = REF_FREQ_HZ) -> np.ndarray:
    """Flux density (Jy) of ``source`` at ``mjd`` and ``freq_hz`` (both broadcast)."""
    spec = (np.asarray(freq_hz, dtype=float) / REF_FREQ_HZ) ** source.spectral_index
    return np.asarray(source.flux_jy * source.lightcurve.factor(mjd) * spec)


def _strip_key(dec_deg: float) -> int:
    return round(dec_deg * 10)


def _power_law_fluxes(rng: np.random.Generator, n: int, s_min: float, s_max: float, gamma: float) -> np.ndarray:
    """Inverse-CDF draws from dN/dS ∝ S^-γ between s_min and s_max."""
    a = 1.0 - gamma
    u = rng.random(n)
    return np.asarray((s_min**a + u * (s_max**a - s_min**a)) ** (1.0 / a))


def make_catalogue(
    dec_deg: float,
    ra_range_deg: tuple[float, float] = (0.0, 360.0),
    *,
    seed: int = 0,
    half_width_deg: float = DEFAULT_HALF_WIDTH_DEG,
    s_min_jy: float = DEFAULT_S_MIN_JY,
    s_max_jy: float = DEFAULT_S_MAX_JY,
    density_per_deg2: float = DEFAULT_DENSITY_PER_DEG2,
    gamma: float = DEFAULT_GAMMA,
) -> Catalogue:
    """Generate the sources of the strip ``dec ± half_width`` whose RA lies in ``ra_range_deg``.

    ``ra_range_deg`` may wrap (lo > hi). Sources are generated cell by cell (1° of RA), so the
    result for a sub-range is exactly the subset of the result for a larger range.
    """
    lo, hi = ra_range_deg
    lo %= 360.0
    hi = hi % 360.0 if hi != 360.0 else 360.0
    if lo <= hi:
        cells = list(range(math.floor(lo), math.ceil(hi)))
    else:
        cells = list(range(math.floor(lo), 360)) + list(range(0, math.ceil(hi)))
    dmin = max(dec_deg - half_width_deg, -90.0)
    dmax = min(dec_deg + half_width_deg, 90.0)
    smin, smax = math.sin(math.radians(dmin)), math.sin(math.radians(dmax))
    cell_area = math.degrees(1.0) * math.degrees(1.0) * math.radians(1.0) * (smax - smin)  # deg²
    sources: list[Source] = []
    seen: set[str] = set()
    for cell in cells:
        rng = np.random.default_rng([seed & 0xFFFFFFFF, cell % 360, _strip_key(dec_deg) + 10_000])
        n = int(rng.poisson(density_per_deg2 * cell_area))
        ra = cell + rng.random(n)
        dec = np.degrees(np.arcsin(smin + rng.random(n) * (smax - smin)))
        flux = _power_law_fluxes(rng, n, s_min_jy, s_max_jy, gamma)
        alpha = rng.normal(-0.7, 0.2, n)
        for r, d, f, a in zip(ra, dec, flux, alpha, strict=True):
            r_ = float(r) % 360.0
            if lo <= hi and not lo <= r_ <= hi:
                continue
            if lo > hi and not (r_ >= lo or r_ <= hi):
                continue
            name = nvss_name(r_, float(d))
            if name in seen:
                continue
            seen.add(name)
            sources.append(Source(name, round(r_, 6), round(float(d), 6), round(float(f), 6), round(float(a), 3)))
    sources.sort(key=lambda s: (s.ra_deg, s.dec_deg))
    return Catalogue(tuple(sources), seed=seed, dec_deg=dec_deg, half_width_deg=half_width_deg, s_min_jy=s_min_jy)


def with_lightcurves(catalogue: Catalogue, curves: dict[str, LightCurve]) -> Catalogue:
    """A copy of ``catalogue`` where the named sources get the given light curves."""
    missing = set(curves) - set(catalogue.by_name())
    if missing:
        raise CatalogueError(f"no such sources in the catalogue: {sorted(missing)}")
    srcs = tuple(replace(s, lightcurve=curves[s.name]) if s.name in curves else s for s in catalogue.sources)
    return replace(catalogue, sources=srcs)


def ese_lightcurve(
    start_mjd: float, duration_days: float = 14.0, depth: float = 0.5, boost: float = 0.3
) -> LightCurve:
    """An ESE-like event: a dip of ``depth`` for ``duration_days`` with edge brightenings."""
    return LightCurve(
        kind="ese",
        t0_mjd=start_mjd,
        duration_days=duration_days,
        depth=depth,
        boost=boost,
        edge_days=max(duration_days * 0.08, 0.25),
    )


def sinusoid_lightcurve(t0_mjd: float, amplitude: float = 0.2, period_days: float = 10.0) -> LightCurve:
    """A sinusoidal modulation of fractional ``amplitude``."""
    return LightCurve(kind="sinusoid", t0_mjd=t0_mjd, amplitude=amplitude, period_days=period_days)


def merge(a: Catalogue, b: Catalogue) -> Catalogue:
    """Union by name; ``b`` wins for names in both (light curves injected later are kept)."""
    by = a.by_name()
    by.update(b.by_name())
    srcs = tuple(sorted(by.values(), key=lambda s: (s.ra_deg, s.dec_deg)))
    return replace(b, sources=srcs)


def _source_to_dict(s: Source) -> dict[str, Any]:
    d = asdict(s)
    if s.lightcurve.is_constant:
        d["lightcurve"] = {"kind": "constant"}
    return d


def save_catalogue(catalogue: Catalogue, path: Path | str) -> Path:
    """Write the catalogue as JSON (atomically: write a temporary file, then rename)."""
    p = Path(path)
    doc = {
        "version": CATALOGUE_VERSION,
        "ref_freq_hz": REF_FREQ_HZ,
        "seed": catalogue.seed,
        "dec_deg": catalogue.dec_deg,
        "half_width_deg": catalogue.half_width_deg,
        "s_min_jy": catalogue.s_min_jy,
        "sources": [_source_to_dict(s) for s in catalogue.sources],
    }
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(p)
    return p


def load_catalogue(path: Path | str) -> Catalogue:
    """Read a catalogue written by :func:`save_catalogue`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        srcs = []
        for d in doc["sources"]:
            lc = LightCurve(**d.get("lightcurve", {"kind": "constant"}))
            srcs.append(
                Source(
                    name=str(d["name"]),
                    ra_deg=float(d["ra_deg"]),
                    dec_deg=float(d["dec_deg"]),
                    flux_jy=float(d["flux_jy"]),
                    spectral_index=float(d.get("spectral_index", -0.7)),
                    lightcurve=lc,
                )
            )
        return Catalogue(
            tuple(srcs),
            seed=int(doc.get("seed", 0)),
            dec_deg=float(doc.get("dec_deg", 0.0)),
            half_width_deg=float(doc.get("half_width_deg", DEFAULT_HALF_WIDTH_DEG)),
            s_min_jy=float(doc.get("s_min_jy", DEFAULT_S_MIN_JY)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CatalogueError(f"cannot read catalogue {p}: {exc}") from exc


def brightest(sources: Iterable[Source], n: int) -> list[Source]:
    """The ``n`` brightest sources (quiescent flux), brightest first."""
    return sorted(sources, key=lambda s: -s.flux_jy)[:n]


def names(sources: Sequence[Source]) -> list[str]:
    return [s.name for s in sources]
