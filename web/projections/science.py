"""DSA-110 science read models: sources and light curves, ESE candidates, alert history, mosaics.

Sources (``POST /api/sources/search`` over a million sources in ≤ 100 ms)
-------------------------------------------------------------------------
``sources`` holds one row per source with its *latest* running statistics (the variability actor
sends them with every measurement, so an update is one keyed upsert, never a recomputation). The
light curves live apart in ``source_timeseries``, keyed ``(sid, mjd)`` ``WITHOUT ROWID``, so one
source's epochs are contiguous on disk and a light curve is one range scan; ``sid`` is the
source's integer rowid and image paths are interned in ``timeseries_images``, which keeps a
timeseries row at ~40 bytes (100 M epochs ≈ 4 GB rather than ~10 GB with text keys).

The search (minimum filters on ``sigma_deviation``, ``mean_flux_mjy`` and the variability
statistics ``chi2_nu``, ``eta`` and ``v``, a ``dec_deg`` range, a name prefix, a sort on any served
column, an exact ``total``) is answered from an in-memory columnar copy of
``sources`` kept by ``web/projections/source_index.py``: loaded when the store opens and refreshed
after every committed batch from the rows the batch changed. Counting a broad filter exactly in
SQLite walks hundreds of thousands of index entries (~150 ms at 1 M sources); a numpy mask over
the columns takes a few milliseconds whatever the filter. ``source_id`` is ``COLLATE NOCASE`` with
a unique index (the upsert's key and ``GET /api/sources/{id}``). The secondary indexes on the
filter and sort columns predate the in-memory index and no longer serve the search.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from schemas.base import iso
from schemas.dsa import EseCandidateUpdated, MosaicReady, SourceMeasured
from schemas.ops import AlertSent
from web.projections import source_index
from web.projections.store import ProjectionStore, ddl, projects

_MJD0 = datetime(1858, 11, 17, tzinfo=UTC)

ddl(
    """CREATE TABLE IF NOT EXISTS sources (
        sid INTEGER PRIMARY KEY, source_id TEXT NOT NULL COLLATE NOCASE, ra_deg REAL NOT NULL,
        dec_deg REAL NOT NULL, nvss_flux_mjy REAL, spectral_index REAL, n_obs INTEGER NOT NULL,
        mean_flux_mjy REAL, std_flux_mjy REAL, chi2_nu REAL, eta REAL, v REAL,
        sigma_deviation REAL NOT NULL, last_mjd REAL NOT NULL, last_measured_at TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS sources_name ON sources(source_id)",
    "CREATE INDEX IF NOT EXISTS sources_sig ON sources(sigma_deviation, dec_deg, mean_flux_mjy)",
    "CREATE INDEX IF NOT EXISTS sources_dec ON sources(dec_deg, sigma_deviation, mean_flux_mjy)",
    "CREATE INDEX IF NOT EXISTS sources_flux ON sources(mean_flux_mjy, sigma_deviation, dec_deg)",
    "CREATE INDEX IF NOT EXISTS sources_chi2 ON sources(chi2_nu)",
    "CREATE INDEX IF NOT EXISTS sources_nvss ON sources(nvss_flux_mjy)",
    "CREATE INDEX IF NOT EXISTS sources_nobs ON sources(n_obs)",
    "CREATE INDEX IF NOT EXISTS sources_ra ON sources(ra_deg)",
    "CREATE INDEX IF NOT EXISTS sources_last ON sources(last_mjd)",
    """CREATE TABLE IF NOT EXISTS source_timeseries (
        sid INTEGER NOT NULL, mjd REAL NOT NULL, flux_jy REAL NOT NULL, error_jy REAL NOT NULL,
        snr REAL NOT NULL, image_id INTEGER NOT NULL, PRIMARY KEY (sid, mjd)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS timeseries_images (image_id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)",
    """CREATE TABLE IF NOT EXISTS ese_candidates (
        id INTEGER PRIMARY KEY, source_id TEXT NOT NULL, ra_deg REAL NOT NULL, dec_deg REAL NOT NULL,
        first_detection_at TEXT NOT NULL, last_detection_at TEXT NOT NULL, max_sigma_dev REAL NOT NULL,
        baseline_flux_jy REAL NOT NULL, peak_flux_jy REAL NOT NULL, status TEXT NOT NULL, notes TEXT)""",
    "CREATE INDEX IF NOT EXISTS ese_status ON ese_candidates(status, last_detection_at)",
    "CREATE INDEX IF NOT EXISTS ese_last ON ese_candidates(last_detection_at)",
    """CREATE TABLE IF NOT EXISTS alert_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, alert_id TEXT NOT NULL,
        source_id TEXT, alert_type TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
        sent_at TEXT NOT NULL, channel TEXT NOT NULL, success INTEGER NOT NULL, attempt INTEGER NOT NULL,
        status_code INTEGER, error TEXT NOT NULL, delivery TEXT NOT NULL DEFAULT 'slack')""",
    "CREATE INDEX IF NOT EXISTS alert_history_source ON alert_history(source_id, id)",
    "CREATE INDEX IF NOT EXISTS alert_history_type ON alert_history(alert_type, id)",
    """CREATE TABLE IF NOT EXISTS mosaics (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, path TEXT NOT NULL,
        start_mjd REAL NOT NULL, end_mjd REAL NOT NULL, n_images INTEGER NOT NULL, n_sources INTEGER NOT NULL,
        noise_jy REAL NOT NULL, thumbnail_path TEXT NOT NULL, noise_path TEXT NOT NULL, job_id TEXT NOT NULL,
        kind TEXT NOT NULL, dec_min_deg REAL, dec_max_deg REAL)""",
    "CREATE INDEX IF NOT EXISTS mosaics_start ON mosaics(start_mjd)",
)


def mjd_iso(mjd: float) -> str:
    return (_MJD0 + timedelta(days=mjd)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mjy(x: float | None) -> float | None:
    return None if x is None else x * 1e3


# -- sources -----------------------------------------------------------------------------------
_UPSERT_SOURCE = """INSERT INTO sources (source_id, ra_deg, dec_deg, nvss_flux_mjy, spectral_index, n_obs,
        mean_flux_mjy, std_flux_mjy, chi2_nu, eta, v, sigma_deviation, last_mjd, last_measured_at)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT(source_id) DO UPDATE SET ra_deg=excluded.ra_deg, dec_deg=excluded.dec_deg,
        nvss_flux_mjy=excluded.nvss_flux_mjy, spectral_index=excluded.spectral_index, n_obs=excluded.n_obs,
        mean_flux_mjy=excluded.mean_flux_mjy, std_flux_mjy=excluded.std_flux_mjy, chi2_nu=excluded.chi2_nu,
        eta=excluded.eta, v=excluded.v, sigma_deviation=excluded.sigma_deviation, last_mjd=excluded.last_mjd,
        last_measured_at=excluded.last_measured_at
    WHERE excluded.n_obs >= sources.n_obs"""

_INSERT_EPOCH = """INSERT OR REPLACE INTO source_timeseries (sid, mjd, flux_jy, error_jy, snr, image_id)
    VALUES ((SELECT sid FROM sources WHERE source_id = ?), ?, ?, ?, ?, ?)"""


@projects(SourceMeasured, topics=("sources",))
async def project_measurements(db: aiosqlite.Connection, e: SourceMeasured, seq: int) -> None:
    n = len(e.source_ids)
    if n == 0:
        return
    if len(e.n_obs) != n:  # a producer without statistics: keep the light curve only for known sources
        stats_rows: list[tuple[Any, ...]] = []
    else:
        at = mjd_iso(e.mjd)
        stats_rows = [
            (
                e.source_ids[k],
                e.ra_deg[k],
                e.dec_deg[k],
                _mjy(e.catalogue_flux_jy[k]),
                e.spectral_index[k],
                e.n_obs[k],
                _mjy(e.mean_flux_jy[k]),
                _mjy(e.std_flux_jy[k]),
                e.chi2_nu[k],
                e.eta[k],
                e.v[k],
                e.sigma_deviation[k],
                e.mjd,
                at,
            )
            for k in range(n)
        ]
    source_index.touched(db, e.source_ids)  # before queueing the write: see touched()
    await db.executemany(_UPSERT_SOURCE, stats_rows)
    await db.execute("INSERT OR IGNORE INTO timeseries_images (path) VALUES (?)", (e.image_path,))
    async with db.execute("SELECT image_id FROM timeseries_images WHERE path = ?", (e.image_path,)) as cur:
        row = await cur.fetchone()
    assert row is not None
    image_id = int(row[0])
    await db.executemany(
        _INSERT_EPOCH,
        [(e.source_ids[k], e.mjd, e.flux_jy[k], e.error_jy[k], e.snr[k], image_id) for k in range(n)],
    )


# -- ESE candidates ----------------------------------------------------------------------------
@projects(EseCandidateUpdated, topics=("ese",))
async def project_candidate(db: aiosqlite.Connection, e: EseCandidateUpdated, seq: int) -> None:
    await db.execute(
        "INSERT OR REPLACE INTO ese_candidates VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            e.candidate_id,
            e.source_id,
            e.ra_deg,
            e.dec_deg,
            e.first_detection_at,
            e.last_detection_at,
            e.max_sigma_dev,
            e.baseline_flux_jy,
            e.peak_flux_jy,
            e.status,
            e.notes,
        ),
    )


_CANDIDATE_COLS = (
    "id, source_id, ra_deg, dec_deg, first_detection_at, last_detection_at, max_sigma_dev, "
    "baseline_flux_jy, peak_flux_jy, status, notes"
)


def candidate_row(r: Any) -> dict[str, Any]:
    return {k: r[k] for k in r.keys()}


async def ese_candidates(
    store: ProjectionStore, limit: int = 100, status: str | None = None, offset: int = 0
) -> dict[str, Any]:
    """The body of ``GET /api/ese/candidates``: most recently detected first, a page at ``offset``."""
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    async with store.consistent():
        rows = await store.fetchall(
            f"SELECT {_CANDIDATE_COLS} FROM ese_candidates {where} ORDER BY last_detection_at DESC, id DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*params, limit, offset],
        )
        total = await store.fetchone(f"SELECT COUNT(*) FROM ese_candidates {where}", params)  # noqa: S608
    return {"candidates": [candidate_row(r) for r in rows], "total": int(total[0]) if total else 0}


async def ese_candidate(store: ProjectionStore, candidate_id: int) -> dict[str, Any] | None:
    row = await store.fetchone(f"SELECT {_CANDIDATE_COLS} FROM ese_candidates WHERE id = ?", [candidate_id])  # noqa: S608
    return None if row is None else candidate_row(row)


# -- alert history -----------------------------------------------------------------------------
@projects(AlertSent, topics=("alerts",))
async def project_alert_sent(db: aiosqlite.Connection, e: AlertSent, seq: int) -> None:
    await db.execute(
        """INSERT OR IGNORE INTO alert_history (event_id, alert_id, source_id, alert_type, severity, message,
             sent_at, channel, success, attempt, status_code, error, delivery) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (
            e.id,
            e.alert_id,
            e.source_id,
            e.alert_type,
            e.severity,
            e.message,
            e.sent_at or iso(e.time),
            e.channel,
            int(e.success),
            e.attempt,
            e.status_code,
            e.error,
            e.delivery,
        ),
    )


async def alert_history(
    store: ProjectionStore, limit: int = 50, source_id: str | None = None, alert_type: str | None = None
) -> dict[str, Any]:
    clauses, params = [], []
    if source_id:
        clauses.append("source_id = ?")
        params.append(source_id)
    if alert_type:
        clauses.append("alert_type = ?")
        params.append(alert_type)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    async with store.consistent():
        rows = await store.fetchall(
            "SELECT id, source_id, alert_type, severity, message, sent_at, channel, success, delivery "  # noqa: S608
            "FROM alert_history "
            f"{where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        total = await store.fetchone(f"SELECT COUNT(*) FROM alert_history {where}", params)  # noqa: S608
    alerts = [
        {
            "id": r[0],
            "source_id": r[1],
            "alert_type": r[2],
            "severity": r[3],
            "message": r[4],
            "sent_at": r[5],
            "channel": r[6],
            "success": bool(r[7]),
            "delivery": r[8],
        }
        for r in rows
    ]
    return {"alerts": alerts, "total": int(total[0]) if total else 0}


# -- mosaics -----------------------------------------------------------------------------------
@projects(MosaicReady, topics=("mosaics",))
async def project_mosaic(db: aiosqlite.Connection, e: MosaicReady, seq: int) -> None:
    await db.execute(
        """INSERT INTO mosaics (name, path, start_mjd, end_mjd, n_images, n_sources, noise_jy, thumbnail_path,
             noise_path, job_id, kind, dec_min_deg, dec_max_deg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(name) DO UPDATE SET path=excluded.path, start_mjd=excluded.start_mjd,
             end_mjd=excluded.end_mjd, n_images=excluded.n_images, n_sources=excluded.n_sources,
             noise_jy=excluded.noise_jy, thumbnail_path=excluded.thumbnail_path, noise_path=excluded.noise_path,
             job_id=excluded.job_id, kind=excluded.kind, dec_min_deg=excluded.dec_min_deg,
             dec_max_deg=excluded.dec_max_deg""",
        (
            e.name,
            e.path,
            e.start_mjd,
            e.end_mjd,
            e.n_images,
            e.n_sources,
            e.noise_jy,
            e.thumbnail_path,
            e.noise_path,
            e.job_id,
            e.kind,
            e.dec_min_deg,
            e.dec_max_deg,
        ),
    )


async def query_mosaics(
    store: ProjectionStore, start_mjd: float, end_mjd: float, dec_min: float | None, dec_max: float | None
) -> dict[str, Any]:
    """Mosaics overlapping [start_mjd, end_mjd] (and the declination range, when given)."""
    clauses = ["start_mjd <= ?", "end_mjd >= ?"]
    params: list[Any] = [end_mjd, start_mjd]
    if dec_min is not None:
        clauses.append("(dec_max_deg IS NULL OR dec_max_deg >= ?)")
        params.append(dec_min)
    if dec_max is not None:
        clauses.append("(dec_min_deg IS NULL OR dec_min_deg <= ?)")
        params.append(dec_max)
    rows = await store.fetchall(
        "SELECT id, name, path, start_mjd, end_mjd, n_images, n_sources, noise_jy, thumbnail_path "  # noqa: S608
        f"FROM mosaics WHERE {' AND '.join(clauses)} ORDER BY start_mjd LIMIT 1000",
        params,
    )
    mosaics = [
        {
            "id": r[0],
            "name": r[1],
            "path": r[2],
            "start_mjd": r[3],
            "end_mjd": r[4],
            "n_images": r[5],
            "n_sources": r[6],
            "noise_jy": r[7],
            "thumbnail_path": r[8],
        }
        for r in rows
    ]
    return {"mosaics": mosaics, "total": len(mosaics)}


# -- source search and detail ------------------------------------------------------------------
#: sortable fields of ``POST /api/sources/search`` -> column
SORT_COLUMNS: dict[str, str] = {
    "sigma_deviation": "sigma_deviation",
    "chi2_nu": "chi2_nu",
    "mean_flux_mjy": "mean_flux_mjy",
    "nvss_flux_mjy": "nvss_flux_mjy",
    "n_obs": "n_obs",
    "ra_deg": "ra_deg",
    "dec_deg": "dec_deg",
    "source_id": "source_id",
    "last_measured_at": "last_mjd",
    "eta": "eta",
    "v": "v",
}


async def search_sources(
    store: ProjectionStore,
    *,
    query: str | None = None,
    variability_min: float | None = None,
    dec_min: float | None = None,
    dec_max: float | None = None,
    flux_min_mjy: float | None = None,
    chi2_nu_min: float | None = None,
    eta_min: float | None = None,
    v_min: float | None = None,
    sort_field: str = "sigma_deviation",
    order: str = "desc",
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """The body of ``POST /api/sources/search``, from the store's in-memory columnar index.

    Same answer as ``SELECT … FROM sources WHERE <filters> ORDER BY <column> <order>, source_id
    LIMIT ? OFFSET ?`` and its ``COUNT(*)`` (see ``source_index``), without counting in SQLite.
    """
    index = await source_index.fresh_index(store)
    sources, total = index.search(
        query=query,
        variability_min=variability_min,
        dec_min=dec_min,
        dec_max=dec_max,
        flux_min_mjy=flux_min_mjy,
        chi2_nu_min=chi2_nu_min,
        eta_min=eta_min,
        v_min=v_min,
        sort_field=sort_field,
        order=order,
        limit=limit,
        offset=offset,
    )
    return {"sources": sources, "total": total, "limit": limit, "offset": offset}


async def source_detail(store: ProjectionStore, source_id: str) -> dict[str, Any] | None:
    row = await store.fetchone(
        "SELECT sid, source_id, ra_deg, dec_deg, nvss_flux_mjy, spectral_index, n_obs, mean_flux_mjy, "
        "std_flux_mjy, chi2_nu, sigma_deviation, eta, v FROM sources WHERE source_id = ?",
        [source_id],
    )
    if row is None:
        return None
    epochs = await store.fetchall(
        "SELECT t.mjd, t.flux_jy, t.error_jy, t.snr, i.path FROM source_timeseries t "
        "JOIN timeseries_images i ON i.image_id = t.image_id WHERE t.sid = ? ORDER BY t.mjd",
        [row[0]],
    )
    return {
        "source_id": row[1],
        "ra_deg": row[2],
        "dec_deg": row[3],
        "nvss_flux_mjy": row[4],
        "vlass_flux_mjy": None,
        "spectral_index": row[5],
        "variability_stats": {
            "n_obs": row[6],
            "mean_flux_mjy": row[7],
            "std_flux_mjy": row[8],
            "chi2_nu": row[9],
            "eta": row[11],
            "v": row[12],
            "sigma_deviation": row[10],
        },
        "timeseries": [
            {"mjd": e[0], "flux_mjy": e[1] * 1e3, "error_mjy": e[2] * 1e3, "snr": e[3], "image_path": e[4]}
            for e in epochs
        ],
    }
