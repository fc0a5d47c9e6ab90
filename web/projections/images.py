"""The images read model: one row per FITS image the imager wrote (``dsa.image.ready``).

Seed 000 lists mosaics but had no list of images; the page shows the latest images as thumbnails,
so the edge keeps their records here, newest first by the event's time. A re-imaged group (an image
job, a redelivered event) names the same path and updates its row instead of adding one.
"""

from __future__ import annotations

from typing import Any

import aiosqlite

from schemas.dsa import ImageReady
from web.projections.store import ProjectionStore, ddl, projects

ddl(
    """CREATE TABLE IF NOT EXISTS images (
        id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, group_id TEXT NOT NULL,
        ms_path TEXT NOT NULL, mid_mjd REAL NOT NULL, created_at TEXT NOT NULL, noise_jy REAL NOT NULL,
        bmaj_deg REAL NOT NULL, bmin_deg REAL NOT NULL, bpa_deg REAL NOT NULL, thumbnail_path TEXT NOT NULL,
        ra_deg REAL NOT NULL, dec_deg REAL NOT NULL, n_sources_5sigma INTEGER NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS images_created ON images(created_at, id)",
)


@projects(ImageReady, topics=("images",))
async def project_image(db: aiosqlite.Connection, e: ImageReady, seq: int) -> None:
    await db.execute(
        """INSERT INTO images (path, group_id, ms_path, mid_mjd, created_at, noise_jy, bmaj_deg, bmin_deg, bpa_deg,
             thumbnail_path, ra_deg, dec_deg, n_sources_5sigma) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(path) DO UPDATE SET group_id=excluded.group_id, ms_path=excluded.ms_path,
             mid_mjd=excluded.mid_mjd, created_at=excluded.created_at, noise_jy=excluded.noise_jy,
             bmaj_deg=excluded.bmaj_deg, bmin_deg=excluded.bmin_deg, bpa_deg=excluded.bpa_deg,
             thumbnail_path=excluded.thumbnail_path, ra_deg=excluded.ra_deg, dec_deg=excluded.dec_deg,
             n_sources_5sigma=excluded.n_sources_5sigma""",
        (
            e.path,
            e.group_id,
            e.ms_path,
            e.mjd,
            e.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            e.noise_jy,
            e.bmaj_deg,
            e.bmin_deg,
            e.bpa_deg,
            e.thumbnail_path,
            e.ra_deg,
            e.dec_deg,
            e.n_sources_5sigma,
        ),
    )


async def list_images(store: ProjectionStore, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    async with store.consistent():
        rows = await store.fetchall(
            "SELECT * FROM images ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        total = await store.fetchone("SELECT COUNT(*) AS n FROM images")
    return [dict(r) for r in rows], int(total["n"]) if total else 0


async def image_by_id(store: ProjectionStore, image_id: int) -> dict[str, Any] | None:
    row = await store.fetchone("SELECT * FROM images WHERE id = ?", (image_id,))
    return dict(row) if row is not None else None


async def mosaic_by_id(store: ProjectionStore, mosaic_id: int) -> dict[str, Any] | None:
    row = await store.fetchone("SELECT * FROM mosaics WHERE id = ?", (mosaic_id,))
    return dict(row) if row is not None else None
