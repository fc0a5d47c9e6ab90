"""In-memory columnar index of the ``sources`` read model, for ``POST /api/sources/search``.

SQLite stays the durable read model; this is a cache derived from it, one per projection store:

* **Load** when the store opens (``on_open``): one ``SELECT`` in sid order, read in chunks by a
  plain ``sqlite3`` connection in a thread, into numpy arrays (row ``i`` of every array is the
  ``i``-th source by sid).
* **Refresh**: ``project_measurements`` notes the names it is about to upsert (``touched``: one
  ``set.update`` per event); those rows are re-read from SQLite by the unique name index and
  written into the arrays (new sids appended, new names merged into the sorted name array) after
  the batch commits (``after_commit``, before ``apply`` returns, so ``Edge.wait_applied`` covers
  the index) or, if a search comes first, by that search. Reading rows back rather than copying
  event fields keeps the cache exactly what SQL on the connection sees, including the upsert's
  ``WHERE excluded.n_obs >= sources.n_obs``; see ``touched`` for why a search never shows less
  than ``GET /api/sources/{id}`` did. (Per-row ``TEMP`` triggers calling Python were tried
  first: the GIL handoff per row cost ~20 µs, a third of the projection's throughput.)
* **Search** is synchronous numpy on the event loop, so it never sees a half-applied refresh: the
  filter mask (or the name-prefix range of the sorted name array), ``total`` = its size, and the
  page by partial selection on the sort key restricted to the matches.

Semantics are the SQL ones: NULL (NaN here; SQLite stores NaN as NULL) never passes a filter and
sorts first ascending, last descending; ties in the sort column are broken by ``source_id``
ascending; names compare as SQLite's ``NOCASE`` (ASCII case folded, then bytewise UTF-8, a shorter
name before its extensions); the prefix ``query`` is the range ``[q, q || U+10FFFF)``.

Memory, per source: 9 float64 columns and the sid and n_obs (88 bytes), the name twice (as stored,
in row order, and case-folded in name order, each padded to the longest name: 2 × 21 bytes for
NVSS names), the name order and its inverse (8), and a code for ``last_measured_at`` (4): about
142 bytes, ~145 MB at a million sources (arrays grow by half when full).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import logs
from web.projections.store import ProjectionStore, after_commit, on_open

log = logs.get("web.projections.source_index")

#: columns of ``sources`` read into the index, in this order
_COLS = (
    "sid, source_id, ra_deg, dec_deg, nvss_flux_mjy, mean_flux_mjy, n_obs, chi2_nu, "
    "sigma_deviation, last_mjd, last_measured_at, eta, v"
)
_FLOATS = ("ra", "dec", "nvss", "mean", "chi2", "sig", "last_mjd", "eta", "v")
#: position in ``_COLS`` of each float array
_FLOAT_AT = (2, 3, 4, 5, 7, 8, 9, 11, 12)
#: sort field -> array (``source_id`` sorts by the name order itself)
SORT_KEYS: dict[str, str] = {
    "sigma_deviation": "sig",
    "chi2_nu": "chi2",
    "mean_flux_mjy": "mean",
    "nvss_flux_mjy": "nvss",
    "n_obs": "n_obs",
    "ra_deg": "ra",
    "dec_deg": "dec",
    "source_id": "rank",
    "last_measured_at": "last_mjd",
    "eta": "eta",
    "v": "v",
}
_NULLABLE = frozenset({"nvss", "mean", "chi2", "eta", "v"})

_PREFIX_END = "\U0010ffff".encode()
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_CHUNK = 100_000
#: below this many matches a page is one lexsort of them all (tests lower it to cover the rest)
SMALL = 4096
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += 32

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def fold(name: str) -> bytes:
    """The ``NOCASE`` key of a name: UTF-8 with ASCII upper case mapped to lower case."""
    return name.encode().translate(_FOLD)


@dataclass
class SourceIndex:
    n: int = 0
    sid: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    ra: FloatArray = field(default_factory=lambda: np.zeros(0))
    dec: FloatArray = field(default_factory=lambda: np.zeros(0))
    nvss: FloatArray = field(default_factory=lambda: np.zeros(0))
    mean: FloatArray = field(default_factory=lambda: np.zeros(0))
    chi2: FloatArray = field(default_factory=lambda: np.zeros(0))
    sig: FloatArray = field(default_factory=lambda: np.zeros(0))
    last_mjd: FloatArray = field(default_factory=lambda: np.zeros(0))
    eta: FloatArray = field(default_factory=lambda: np.zeros(0))
    v: FloatArray = field(default_factory=lambda: np.zeros(0))
    n_obs: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    at_code: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    names: npt.NDArray[np.bytes_] = field(default_factory=lambda: np.zeros(0, "S1"))
    #: row -> position in name order, and name order -> row (the first ``n`` entries are valid)
    rank: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    order: npt.NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    folded: npt.NDArray[np.bytes_] = field(default_factory=lambda: np.zeros(0, "S1"))
    at_values: list[str] = field(default_factory=list)
    at_lookup: dict[str, int] = field(default_factory=dict)
    #: how long ``load`` took (seconds)
    load_seconds: float = 0.0

    # -- building ------------------------------------------------------------------------------
    def _codes(self, values: tuple[str, ...]) -> list[int]:
        """Codes of ``last_measured_at`` values (few distinct: one per image epoch)."""
        lookup = self.at_lookup
        for value in set(values).difference(lookup):
            lookup[value] = len(self.at_values)
            self.at_values.append(value)
        return list(map(lookup.__getitem__, values))

    @classmethod
    def load(cls, path: Path) -> SourceIndex:
        """Read every source from the database file (one SELECT in sid order, in chunks)."""
        t = time.perf_counter()
        ix = cls()
        db = sqlite3.connect(path)
        try:
            (count,) = db.execute("SELECT COUNT(*) FROM sources").fetchone()
            ix._reserve(int(count))
            cur = db.execute(f"SELECT {_COLS} FROM sources ORDER BY sid")  # noqa: S608
            while rows := cur.fetchmany(_CHUNK):
                ix._append(rows)
        finally:
            db.close()
        ix._sort_names()
        ix.load_seconds = time.perf_counter() - t
        return ix

    def _reserve(self, capacity: int) -> None:
        if capacity <= len(self.sid):
            return
        for name in ("sid", *_FLOATS, "n_obs", "at_code", "names"):
            old = getattr(self, name)
            new = np.zeros(capacity, old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def _append(self, rows: list[Any]) -> None:
        """Append rows (in ``_COLS`` order, sids ascending beyond the last one); names unsorted."""
        k = len(rows)
        if self.n + k > len(self.sid):
            self._reserve(max(self.n + k, len(self.sid) * 3 // 2, 1024))
        cols = list(zip(*rows, strict=True))
        lo, hi = self.n, self.n + k
        self.sid[lo:hi] = cols[0]
        names = np.array(list(map(str.encode, cols[1])), dtype=np.bytes_)
        if names.dtype.itemsize > self.names.dtype.itemsize:
            self.names = self.names.astype(names.dtype)
        self.names[lo:hi] = names
        for name, c in zip(_FLOATS, _FLOAT_AT, strict=True):
            getattr(self, name)[lo:hi] = np.array(cols[c], dtype=np.float64)  # None -> NaN
        self.n_obs[lo:hi] = cols[6]
        self.at_code[lo:hi] = self._codes(cols[10])
        self.n = hi

    def _sort_names(self) -> None:
        names = self.names[: self.n]
        folded = _LOWER[names.view(np.uint8)].view(names.dtype)  # ASCII fold, bytewise (as NOCASE)
        order = np.argsort(folded, kind="stable").astype(np.int32)
        self.order, self.folded = order, folded[order]
        self._rerank()

    def _rerank(self) -> None:
        self.rank = np.empty(self.n, np.int32)
        self.rank[self.order] = np.arange(self.n, dtype=np.int32)

    def refresh(self, rows: list[Any]) -> None:
        """Write re-read rows (``_COLS`` order) into the arrays: update known sids, append new ones."""
        if not rows:
            return
        rows = sorted(rows, key=lambda r: r[0])
        sids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        pos = np.searchsorted(self.sid[: self.n], sids)
        known = pos < self.n
        known[known] = self.sid[pos[known]] == sids[known]
        if known.any():
            p = pos[known]
            old = [r for r, kn in zip(rows, known.tolist(), strict=True) if kn]
            cols = list(zip(*old, strict=True))
            for name, c in zip(_FLOATS, _FLOAT_AT, strict=True):
                getattr(self, name)[p] = np.array(cols[c], dtype=np.float64)
            self.n_obs[p] = cols[6]
            self.at_code[p] = self._codes(cols[10])
            # source_id never changes for a sid (the upsert does not set it)
        new = [r for r, kn in zip(rows, known.tolist(), strict=True) if not kn]
        if not new:
            return
        if self.n and new[0][0] < self.sid[self.n - 1]:
            raise ValueError("a new source has a sid below the last one; reload")
        first = self.n
        self._append(new)
        keys = np.array([fold(r[1]) for r in new], dtype=np.bytes_)
        idx = np.argsort(keys, kind="stable")
        keys = keys[idx]
        rows_new = (first + idx).astype(np.int32)
        if keys.dtype.itemsize > self.folded.dtype.itemsize:
            self.folded = self.folded.astype(keys.dtype)
        at = np.searchsorted(self.folded, keys, side="right")
        self.folded = np.insert(self.folded, at, keys)
        self.order = np.insert(self.order, at, rows_new)
        self._rerank()

    def memory_bytes(self) -> int:
        arrays = ("sid", *_FLOATS, "n_obs", "at_code", "names", "rank", "order", "folded")
        return sum(int(getattr(self, a).nbytes) for a in arrays)

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        *,
        query: str | None,
        sort_field: str,
        order: str,
        limit: int,
        offset: int,
        variability_min: float | None = None,
        dec_min: float | None = None,
        dec_max: float | None = None,
        flux_min_mjy: float | None = None,
        chi2_nu_min: float | None = None,
        eta_min: float | None = None,
        v_min: float | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """(the page's rows, the number of matches), as the SQL over ``sources`` would answer."""
        n = self.n
        conds: list[tuple[FloatArray, str, float]] = []
        for col, x in (
            (self.sig, variability_min),
            (self.dec, dec_min),
            (self.mean, flux_min_mjy),
            (self.chi2, chi2_nu_min),
            (self.eta, eta_min),
            (self.v, v_min),
        ):
            if x is not None:
                conds.append((col, ">=", x))
        if dec_max is not None:
            conds.append((self.dec, "<=", dec_max))
        rows: npt.NDArray[np.int64] | None  # None: every source
        if query:
            q = fold(query)
            lo = int(np.searchsorted(self.folded, q, side="left"))
            hi = int(np.searchsorted(self.folded, q + _PREFIX_END, side="left"))
            rows = self.order[lo:hi].astype(np.int64)
            for col, op, x in conds:
                v = col[rows]
                rows = rows[v >= x if op == ">=" else v <= x]
        elif conds:
            mask: npt.NDArray[np.bool_] | None = None
            for col, op, x in conds:
                m = col[:n] >= x if op == ">=" else col[:n] <= x
                mask = m if mask is None else np.logical_and(mask, m, out=mask)
            assert mask is not None
            rows = np.flatnonzero(mask)
        else:
            rows = None
        total = n if rows is None else len(rows)
        if offset >= total:
            return [], total
        page = self._page(rows, sort_field, order == "desc", offset, min(offset + limit, total), bool(query))
        return self._rows(page), total

    def _page(
        self, rows: npt.NDArray[np.int64] | None, sort_field: str, desc: bool, a: int, b: int, name_ordered: bool
    ) -> npt.NDArray[np.int64]:
        """Positions ``a:b`` of ``rows`` (None: all) in the order (key, NULLs as SQLite puts them, source_id)."""
        rank = self.rank
        col = SORT_KEYS[sort_field]
        if col == "rank":  # the name order itself (names are unique)
            if rows is None:
                rows = self.order.astype(np.int64)
            elif not name_ordered:  # walk the name order, keeping the matches
                keep = np.zeros(self.n, np.bool_)
                keep[rows] = True
                rows = self.order[keep[self.order]].astype(np.int64)
            return rows[len(rows) - b : len(rows) - a][::-1] if desc else rows[a:b]
        values = getattr(self, col)[: self.n] if rows is None else getattr(self, col)[rows]
        if col in _NULLABLE:
            null = np.isnan(values)
            nn = int(np.count_nonzero(null))
            if nn:
                if rows is None:
                    nulls, rows = np.flatnonzero(null), np.flatnonzero(~null)
                else:
                    nulls, rows = rows[null], rows[~null]
                values = values[~null]
                m = len(rows)
                if desc:  # NULLs last
                    head = _window(rows, -values, rank, a, min(b, m))
                    return np.concatenate([head, _by_rank(nulls, rank, max(a - m, 0), max(b - m, 0))])
                head = _by_rank(nulls, rank, a, min(b, nn))  # NULLs first
                return np.concatenate([head, _window(rows, values, rank, max(a - nn, 0), max(b - nn, 0))])
        return _window(rows, -values if desc else values, rank, a, b)

    def _rows(self, page: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
        def opt(x: float) -> float | None:
            return None if x != x else x

        at = self.at_values
        return [
            {
                "source_id": name.decode(),
                "ra_deg": ra,
                "dec_deg": dec,
                "nvss_flux_mjy": opt(nvss),
                "mean_flux_mjy": opt(mean),
                "n_obs": n_obs,
                "chi2_nu": opt(chi2),
                "eta": opt(eta),
                "v": opt(v),
                "sigma_deviation": sig,
                "last_measured_at": at[code],
            }
            for name, ra, dec, nvss, mean, n_obs, chi2, eta, v, sig, code in zip(
                self.names[page].tolist(),
                self.ra[page].tolist(),
                self.dec[page].tolist(),
                self.nvss[page].tolist(),
                self.mean[page].tolist(),
                self.n_obs[page].tolist(),
                self.chi2[page].tolist(),
                self.eta[page].tolist(),
                self.v[page].tolist(),
                self.sig[page].tolist(),
                self.at_code[page].tolist(),
                strict=True,
            )
        ]


def _kth(x: npt.NDArray[Any], a: int, b: int) -> tuple[Any, Any]:
    """The ``a``-th and ``(b-1)``-th smallest of ``x`` (one partition each: numpy's multi-kth
    partition is ~10× slower than two single ones; the second runs on the ``b`` smallest only)."""
    head = np.partition(x, b - 1)[:b]
    return (head.min() if a == 0 else np.partition(head, a)[a]), head[b - 1]


def _by_rank(rows: npt.NDArray[np.int64], rank: npt.NDArray[np.int32], a: int, b: int) -> npt.NDArray[np.int64]:
    """Positions ``a:b`` of ``rows`` in name order."""
    b = min(b, len(rows))
    if a >= b:
        return rows[:0]
    r = rank[rows]
    if b - a < len(rows) // 4:  # select the window's ranks (unique) first, then sort only those
        lo, hi = _kth(r, a, b)
        keep = np.flatnonzero((r >= lo) & (r <= hi))
        rows, r = rows[keep], r[keep]
        return rows[np.argsort(r)]
    return rows[np.argsort(r)[a:b]]


def _window(
    rows: npt.NDArray[np.int64] | None, key: npt.NDArray[Any], rank: npt.NDArray[np.int32], a: int, b: int
) -> npt.NDArray[np.int64]:
    """Positions ``a:b`` of ``rows`` (None: ``arange``) ordered by (``key``, name rank), unsorted.

    A partition finds the keys at positions ``a`` and ``b - 1``; only rows with a key up to the
    last one are kept (one pass over all), and of those the window is the tail of the rows tied at
    the first key, every row strictly between, and the head of the rows tied at the last key. Tie
    groups (``n_obs``, ``last_measured_at``: thousands or all of the rows share a value) are cut
    by name rank with another partition, never sorted whole.
    """
    m = len(key)
    b = min(b, m)
    if a >= b:
        return np.zeros(0, np.int64)
    if m <= SMALL:
        rows = np.arange(m, dtype=np.int64) if rows is None else rows
        return rows[np.lexsort((rank[rows], key))[a:b]]
    lo, hi = _kth(key, a, b)
    keep = np.flatnonzero(key <= hi)
    rows, key = (keep, key[keep]) if rows is None else (rows[keep], key[keep])
    before = int(np.count_nonzero(key < lo))
    at_lo = rows[key == lo]
    if lo == hi:
        return _by_rank(at_lo, rank, a - before, b - before)
    inner = (key > lo) & (key < hi)
    mid_rows, mid_key = rows[inner], key[inner]
    mid = mid_rows[np.lexsort((rank[mid_rows], mid_key))]
    head = _by_rank(at_lo, rank, a - before, len(at_lo))
    tail = _by_rank(rows[key == hi], rank, 0, b - before - len(at_lo) - len(mid))
    return np.concatenate([head, mid, tail])


# -- one index per open store ------------------------------------------------------------------
@dataclass
class _Slot:
    """A store's current index and the names its projection changed since the last refresh."""

    ix: SourceIndex
    pending: set[str] = field(default_factory=set)
    #: serialises refreshes, so rows read later are never overwritten by rows read earlier
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: a refresh failed: reload everything after the next commit
    broken: bool = False


_SLOTS: weakref.WeakKeyDictionary[ProjectionStore, _Slot] = weakref.WeakKeyDictionary()
#: the same slots by the store's connection, which is what a projection function is given
_BY_DB: weakref.WeakKeyDictionary[Any, _Slot] = weakref.WeakKeyDictionary()


def touched(db: Any, source_ids: Iterable[str]) -> None:
    """Note sources a projection is about to upsert; every writer of ``sources`` calls this
    *before* queueing its write on ``db``. They are re-read after the batch commits, or by the
    next search, whichever comes first. A name whose upsert does not apply costs a re-read only.

    Before, not after: aiosqlite runs a connection's statements in the order they were queued, and
    this call and the queueing of the write happen in one step of the event loop. So a reader that
    can see the write (its SELECT was queued later) also finds the name pending, and a search that
    refreshes it reads the row after the write: the search never shows less than a SQL read of the
    same connection (``GET /api/sources/{id}``) already showed.
    """
    slot = _BY_DB.get(db)
    if slot is not None:
        slot.pending.update(source_ids)


async def fresh_index(store: ProjectionStore) -> SourceIndex:
    """The store's index, with every source touched so far re-read (what SQL on ``store.db`` sees)."""
    slot = _SLOTS.get(store)
    if slot is None:
        raise RuntimeError("the source index is loaded when the projection store opens")
    if slot.pending:
        async with slot.lock:
            await _refresh(store, slot)
    return slot.ix


def index_for(store: ProjectionStore) -> SourceIndex:
    """The store's index as it is (tests, benchmarks); searches use ``fresh_index``."""
    slot = _SLOTS.get(store)
    if slot is None:
        raise RuntimeError("the source index is loaded when the projection store opens")
    return slot.ix


async def _refresh(store: ProjectionStore, slot: _Slot) -> None:
    """Re-read the pending sources into the index (call with ``slot.lock`` held)."""
    if slot.broken or not slot.pending:
        return
    names = list(slot.pending)
    slot.pending.clear()
    try:
        async with store.db.execute(
            f"SELECT {_COLS} FROM sources WHERE source_id IN (SELECT value FROM json_each(?))",  # noqa: S608
            (json.dumps(names),),
        ) as cur:
            rows = [tuple(r) for r in await cur.fetchall()]
        slot.ix.refresh(rows)
    except Exception:
        log.exception("source index refresh failed; reloading it after the next commit")
        slot.broken = True  # the arrays may be half written


@on_open
async def load_index(store: ProjectionStore) -> None:
    """Load the index from the committed file (nothing is being applied while the store opens)."""
    slot = _SLOTS[store] = _BY_DB[store.db] = _Slot(SourceIndex())
    slot.ix = await asyncio.to_thread(SourceIndex.load, store.path)
    log.info(
        "source index loaded",
        sources=slot.ix.n,
        mb=round(slot.ix.memory_bytes() / 1e6, 1),
        seconds=round(slot.ix.load_seconds, 2),
    )


@after_commit
async def refresh_index(store: ProjectionStore) -> None:
    """Bring the index up to the committed batch (so ``Edge.wait_applied`` covers it too)."""
    slot = _SLOTS.get(store)
    if slot is None:
        return
    async with slot.lock:
        await _refresh(store, slot)
        if slot.broken:  # reload from the committed file: no batch is being written while hooks run
            slot.pending.clear()
            slot.ix = await asyncio.to_thread(SourceIndex.load, store.path)
            slot.broken = False
