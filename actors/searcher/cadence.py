"""ON/OFF cadence events: turboSETI's ``find_events`` rules, implemented from their description.

Input is one ``.dat`` hit table per file of the cadence, in the order observed, each marked ON (the
target) or OFF (a reference position).  Breakthrough Listen's standard cadence is ABACAD: three ONs
interleaved with three OFFs.  A signal from the target is in every ON and in no OFF; interference,
which enters through the sidelobes wherever the telescope points, is in the OFFs too.

The three filter levels (turboSETI 2.x, ``turbo_seti/find_event/find_event.py``):

1. ON hits that pass the per-hit cuts: drift ≠ 0 exactly (unless ``check_zero_drift``), ``|SNR| >
   snr_cut``, ``min_drift < |drift| < max_drift`` (each cut only when given).  No ON/OFF check.
2. Level-1 hits with *no* OFF hit (any OFF file, any SNR) strictly inside ``f ± |D|·T/10⁶`` MHz,
   where ``D`` is the ON file's searched ``max_drift_rate`` (``Δf/Δt`` when that is 0) and ``T`` its
   ``obs_length``: the whole band the signal could have drifted over during one observation.
3. Level-2 hits of the first ON that can be *followed* into every later ON: the later ON has a
   level-2 hit strictly inside ``f + d·Δt/10⁶ ± |d|·2T/10⁶`` MHz, where ``d`` is the hit's own drift
   (``Δf/Δt`` when 0) and ``Δt`` the time between the two ONs' starts, from the files' ``tstart``
   (the ``MJD`` in the ``.dat`` header).  Each such hit of the first ON starts an event; the event's
   rows are the level-2 hits of each ON inside that window (with ``Δt`` of that ON).

Differences from turboSETI, on purpose:

* turboSETI removes rows already listed by the *first* matching ``Top_Hit_#`` alone, which numbers
  hits per file, so an event's rows in the second and third ON are dropped whenever their number is
  already used by a row of another file (with one signal per file, every file's hit is #1).  Here a
  row is identified by (file, ``Top_Hit_#``).
* turboSETI numbers ON tables only among ONs that have hits; an ON with no hits makes level 3 empty
  there and here alike, so that changes nothing.

The labels a cadence gives (:func:`cadence_label`): a hit present in an OFF is ``RFI_TERRESTRIAL``,
whatever its drift; only an event that passes level 3, drifts by more than one drift bin and lies
outside the known RFI bands is ``CANDIDATE_ET``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .classify import (
    CANDIDATE_ET,
    NARROWBAND_DRIFTING,
    NARROWBAND_STATIONARY,
    RFI_TERRESTRIAL,
    STATIONARY_MAX_DRIFT_INDEX,
    rfi_band,
)

__all__ = [
    "EVENTS_CSV_COLUMNS",
    "CadenceOutcome",
    "DatFile",
    "DatHit",
    "EventRow",
    "find_events",
    "on_mask",
    "read_dat",
]

#: turboSETI's events CSV, after the unnamed index column (``find_event_pipeline`` writes a pandas
#: DataFrame: the ``.dat`` columns it reads, the header fields, then its own four, then ``delta_t``).
EVENTS_CSV_COLUMNS = (
    "TopHitNum",
    "DriftRate",
    "SNR",
    "Freq",
    "ChanIndx",
    "FreqStart",
    "FreqEnd",
    "CoarseChanNum",
    "FullNumHitsInRange",
    "FileID",
    "Source",
    "MJD",
    "RA",
    "DEC",
    "DELTAT",
    "DELTAF",
    "max_drift_rate",
    "obs_length",
    "Hit_ID",
    "status",
    "in_n_ons",
    "RFI_in_range",
    "delta_t",
)

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class DatHit:
    """One row of a ``.dat``: ``snr`` is turboSETI's SNR, ``chan_index`` the file-order index within
    the coarse channel, frequencies in MHz."""

    top_hit_num: int
    drift_rate: float
    snr: float
    freq_mhz: float
    chan_index: int
    freq_start: float
    freq_end: float
    coarse_chan: int
    full_num_hits: int


@dataclass
class DatFile:
    """A ``.dat`` file: its header (``mjd`` = the file's ``tstart``) and hits."""

    file_id: str
    source: str
    mjd: float
    ra: str
    dec: str
    deltat: float  # s
    deltaf: float  # Hz, signed as in the file
    max_drift_rate: float  # Hz/s
    obs_length: float  # s
    hits: list[DatHit] = field(default_factory=list)

    @property
    def drift_resolution(self) -> float:
        """Hz/s of one drift bin: Δf / ((N − 1)·Δt) with N = obs_length / Δt."""
        steps = max(1.0, self.obs_length / self.deltat - 1.0) if self.deltat > 0 else 1.0
        return abs(self.deltaf) / (steps * self.deltat) if self.deltat > 0 else abs(self.deltaf)


def _header_value(line: str, index: int) -> str:
    return line.strip().split("\t")[index].split(":")[-1].strip()


def read_dat(text: str) -> DatFile:
    """Parse turboSETI 2.x ``.dat`` text (ours or turboSETI's).  Raises ``ValueError`` if it is not one."""
    lines = text.splitlines()
    if len(lines) < 9 or not lines[0].startswith("#"):
        raise ValueError("not a turboSETI .dat file: the 9-line header is missing")
    try:
        dat = DatFile(
            file_id=lines[1].split(":")[-1].strip(),
            source=lines[3].split(":")[-1].strip(),
            mjd=float(_header_value(lines[4], 0)),
            ra=_header_value(lines[4], 1),
            dec=_header_value(lines[4], 2),
            deltat=float(_header_value(lines[5], 0)),
            deltaf=float(_header_value(lines[5], 1)),
            max_drift_rate=float(_header_value(lines[5], 2)),
            obs_length=float(_header_value(lines[5], 3)),
        )
        for line in lines[9:]:
            f = re.split(r"\s+", line.replace("\t", " ").strip())
            if len(f) < 12:
                continue
            dat.hits.append(
                DatHit(
                    top_hit_num=int(f[0]),
                    drift_rate=float(f[1]),
                    snr=float(f[2]),
                    freq_mhz=float(f[3]),
                    chan_index=int(f[5]),
                    freq_start=float(f[6]),
                    freq_end=float(f[7]),
                    coarse_chan=int(f[10]),
                    full_num_hits=int(f[11]),
                )
            )
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not a turboSETI 2.x .dat file: {exc}") from None
    return dat


def on_mask(n_files: int, *, first: str = "ON", pattern: Sequence[bool] | None = None) -> list[bool]:
    """ON/OFF flags of a cadence: an explicit ``pattern``, or alternating starting with ``first``."""
    if pattern is not None:
        if len(pattern) != n_files:
            raise ValueError(f"the ON/OFF pattern has {len(pattern)} flags for {n_files} files")
        mask = list(pattern)
    else:
        if first not in ("ON", "OFF"):
            raise ValueError("first must be 'ON' or 'OFF'")
        mask = [(i % 2 == 0) == (first == "ON") for i in range(n_files)]
    if not any(mask):
        raise ValueError("a cadence needs at least one ON file")
    return mask


@dataclass
class EventRow:
    """One row of the events table: a hit of one ON file, and the event it belongs to."""

    index: int  # the hit's row among all ON hits, in file order (turboSETI's DataFrame index)
    file_index: int  # position of its file in the cadence
    on_number: int  # 1 for the first ON, ...
    hit: DatHit
    hit_id: str  # the event: <Source>_<index of the first ON's hit>
    in_n_ons: int | None
    rfi_in_range: int
    delta_t: float  # s since the first ON started


@dataclass
class CadenceOutcome:
    """What each level kept, and the events.  Hits are named by ``(file_index, top_hit_num)``."""

    files: list[DatFile]
    on: list[bool]
    filter_level: int
    level1: list[tuple[int, int]] = field(default_factory=list)
    rfi_in_range: dict[tuple[int, int], int] = field(default_factory=dict)
    level2: list[tuple[int, int]] = field(default_factory=list)
    rows: list[EventRow] = field(default_factory=list)  # the events table (rows of the asked level)
    events: list[str] = field(default_factory=list)  # Hit_IDs of level-3 events, in order

    def in_event(self) -> set[tuple[int, int]]:
        return {(r.file_index, r.hit.top_hit_num) for r in self.rows} if self.filter_level == 3 else set()


def _half_width(drift: float, dat: DatFile, span_s: float) -> float:
    d = drift if drift != 0.0 else dat.deltaf / dat.deltat
    return abs(d) * span_s / 1e6


def find_events(
    files: Sequence[DatFile],
    on: Sequence[bool],
    *,
    filter_level: int = 3,
    snr_cut: float | None = None,
    min_drift: float | None = None,
    max_drift: float | None = None,
    check_zero_drift: bool = False,
) -> CadenceOutcome:
    """Apply filter levels 1..``filter_level`` to a cadence (see the module docstring)."""
    if filter_level not in (1, 2, 3):
        raise ValueError("filter_level must be 1, 2 or 3")
    if len(files) != len(on):
        raise ValueError("one ON/OFF flag per file")
    out = CadenceOutcome(files=list(files), on=list(on), filter_level=filter_level)
    on_idx = [i for i, o in enumerate(on) if o]
    off_idx = [i for i, o in enumerate(on) if not o]
    if not on_idx:
        return out
    # the DataFrame index turboSETI gives each ON hit: its position among all ON hits
    row_index: dict[tuple[int, int], int] = {}
    for i in on_idx:
        for h in files[i].hits:
            row_index[(i, h.top_hit_num)] = len(row_index)
    first_with_hits = next((i for i in on_idx if files[i].hits), None)
    if first_with_hits is None:
        return out
    ref_mjd = files[first_with_hits].mjd

    def delta_t(i: int) -> float:
        return (files[i].mjd - ref_mjd) * SECONDS_PER_DAY

    by_key = {(i, h.top_hit_num): h for i in on_idx for h in files[i].hits}
    # level 1
    for i in on_idx:
        for h in files[i].hits:
            if not check_zero_drift and h.drift_rate == 0.0:
                continue
            if snr_cut is not None and not abs(h.snr) > abs(snr_cut):
                continue
            if min_drift is not None and not abs(h.drift_rate) > abs(min_drift):
                continue
            if max_drift is not None and not abs(h.drift_rate) < abs(max_drift):
                continue
            out.level1.append((i, h.top_hit_num))
    if filter_level == 1:
        out.rows = [_row(k, by_key, row_index, files, on_idx, "", None, 0, delta_t) for k in out.level1]
        return out
    # level 2: nothing in any OFF within the band the ON file's drift range spans in one observation
    off_freqs = sorted(h.freq_mhz for i in off_idx for h in files[i].hits)
    for key in out.level1:
        i = key[0]
        h = by_key[key]
        dat = files[i]
        w = _half_width(dat.max_drift_rate, dat, dat.obs_length)
        lo = bisect.bisect_right(off_freqs, h.freq_mhz - w)
        hi = bisect.bisect_left(off_freqs, h.freq_mhz + w)
        n = max(0, hi - lo)
        out.rfi_in_range[key] = n
        if n == 0:
            out.level2.append(key)
    if filter_level == 2:
        out.rows = [_row(k, by_key, row_index, files, on_idx, "", None, 0, delta_t) for k in out.level2]
        return out
    # level 3: follow each first-ON hit into every later ON
    per_on: list[list[DatHit]] = [[] for _ in on_idx]
    pos = {i: n for n, i in enumerate(on_idx)}
    for key in out.level2:
        per_on[pos[key[0]]].append(by_key[key])
    if any(not hs for hs in per_on):
        return out

    def follow(h: DatHit, n: int) -> list[DatHit]:
        i = on_idx[n]
        dt = delta_t(i)
        dat0 = files[on_idx[0]]
        d = h.drift_rate if h.drift_rate != 0.0 else dat0.deltaf / dat0.deltat
        centre = h.freq_mhz + d * dt / 1e6
        w = _half_width(h.drift_rate, dat0, 2.0 * dat0.obs_length)
        return [g for g in per_on[n] if centre - w < g.freq_mhz < centre + w]

    seen: set[tuple[int, int]] = set()
    for h in per_on[0]:
        found = sum(1 for n in range(1, len(on_idx)) if follow(h, n))
        if found != len(on_idx) - 1:
            continue
        hit_id = f"{files[on_idx[0]].source.upper()}_{row_index[(on_idx[0], h.top_hit_num)]}"
        out.events.append(hit_id)
        for n in range(len(on_idx)):
            for g in follow(h, n):
                key = (on_idx[n], g.top_hit_num)
                if key in seen:
                    continue
                seen.add(key)
                out.rows.append(_row(key, by_key, row_index, files, on_idx, hit_id, found, 0, delta_t))
    return out


def _row(
    key: tuple[int, int],
    by_key: dict[tuple[int, int], DatHit],
    row_index: dict[tuple[int, int], int],
    files: Sequence[DatFile],
    on_idx: list[int],
    hit_id: str,
    in_n_ons: int | None,
    rfi: int,
    delta_t: Callable[[int], float],
) -> EventRow:
    return EventRow(
        index=row_index[key],
        file_index=key[0],
        on_number=on_idx.index(key[0]) + 1,
        hit=by_key[key],
        hit_id=hit_id,
        in_n_ons=in_n_ons,
        rfi_in_range=rfi,
        delta_t=delta_t(key[0]),
    )


def cadence_label(outcome: CadenceOutcome, key: tuple[int, int]) -> tuple[str, str, str]:
    """``(classification, reason, rfi_source)`` of an ON hit in the light of the cadence.

    In an OFF → ``RFI_TERRESTRIAL`` (``in_off``), whatever the drift; in a known RFI band →
    ``RFI_TERRESTRIAL`` (``known_rfi_band``); within one drift bin of zero → ``NARROWBAND_STATIONARY``;
    in a level-3 event → ``CANDIDATE_ET``; otherwise ``NARROWBAND_DRIFTING`` (``not_in_all_ons``, or
    ``below_cuts`` when level 1 dropped it).
    """
    i, _ = key
    dat = outcome.files[i]
    hit = next(h for h in dat.hits if h.top_hit_num == key[1])
    band = rfi_band(hit.freq_mhz * 1e6)
    if outcome.rfi_in_range.get(key, 0) > 0:
        return RFI_TERRESTRIAL, "in_off", band
    if band:
        return RFI_TERRESTRIAL, "known_rfi_band", band
    if abs(hit.drift_rate) <= STATIONARY_MAX_DRIFT_INDEX * dat.drift_resolution * (1 + 1e-6):
        return NARROWBAND_STATIONARY, "zero_drift", ""
    if key in outcome.in_event():
        return CANDIDATE_ET, "in_all_ons_not_in_offs", ""
    if key not in set(outcome.level1):
        return NARROWBAND_DRIFTING, "below_cuts", ""
    return NARROWBAND_DRIFTING, "not_in_all_ons", ""


def events_csv_rows(outcome: CadenceOutcome) -> list[list[Any]]:
    """The events table in turboSETI's column order, the index first."""
    rows = []
    for r in outcome.rows:
        dat = outcome.files[r.file_index]
        h = r.hit
        rows.append(
            [
                r.index,
                h.top_hit_num,
                h.drift_rate,
                h.snr,
                h.freq_mhz,
                h.chan_index,
                h.freq_start,
                h.freq_end,
                h.coarse_chan,
                h.full_num_hits,
                dat.file_id,
                dat.source.upper(),
                f"{dat.mjd:.12f}",
                dat.ra,
                dat.dec,
                f"{dat.deltat:.6f}",
                f"{dat.deltaf:.6f}",
                f"{dat.max_drift_rate:.6f}",
                f"{dat.obs_length:.6f}",
                r.hit_id,
                f"on_table_{r.on_number}",
                "" if r.in_n_ons is None else r.in_n_ons,
                r.rfi_in_range,
                r.delta_t,
            ]
        )
    return rows

