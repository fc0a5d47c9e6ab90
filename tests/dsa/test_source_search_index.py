"""The columnar source index answers ``POST /api/sources/search`` exactly as SQL over ``sources`` would.

Sources are projected through the real path (``SourceMeasured`` events applied by
``ProjectionStore.apply`` in batches, so the index is loaded on open and refreshed after each
commit), with NULL statistics, ties in every sort column, mixed-case and non-ASCII names and
names that only differ in case after the prefix. After each batch, and after reopening the store,
random filters, sorts and pages are compared with a straightforward SQL reference: same ids in
the same order, same totals.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bus.replay import StoredMessage
from schemas.base import encode
from schemas.dsa import SourceMeasured
from web.projections import science, source_index
from web.projections.source_index import index_for
from web.projections.store import ProjectionStore

_PREFIXES = ["NVSS J", "nvss j", "NVSS J1", "FIRST ", "Src_", "src_", "Ω-", "ÄB", "Z"]


def reference_sql(
    query: str | None,
    variability_min: float | None,
    dec_min: float | None,
    dec_max: float | None,
    flux_min_mjy: float | None,
    sort_field: str,
    order: str,
    chi2_nu_min: float | None = None,
    eta_min: float | None = None,
    v_min: float | None = None,
) -> tuple[str, str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query:
        clauses.append("source_id >= ? AND source_id < ?")
        params += [query, query + "\U0010ffff"]
    for sql, value in (
        ("sigma_deviation >= ?", variability_min),
        ("dec_deg >= ?", dec_min),
        ("dec_deg <= ?", dec_max),
        ("mean_flux_mjy >= ?", flux_min_mjy),
        ("chi2_nu >= ?", chi2_nu_min),
        ("eta >= ?", eta_min),
        ("v >= ?", v_min),
    ):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    column = science.SORT_COLUMNS[sort_field]
    direction = "DESC" if order == "desc" else "ASC"
    page = (
        "SELECT source_id, ra_deg, dec_deg, nvss_flux_mjy, mean_flux_mjy, n_obs, chi2_nu, eta, v, "  # noqa: S608
        f"sigma_deviation, last_measured_at FROM sources {where} ORDER BY {column} {direction}, source_id ASC LIMIT ? OFFSET ?"
    )
    return page, f"SELECT COUNT(*) FROM sources {where}", params  # noqa: S608


async def reference(store: ProjectionStore, **kw: Any) -> dict[str, Any]:
    limit, offset = kw.pop("limit"), kw.pop("offset")
    page, count, params = reference_sql(**kw)
    row = await store.fetchone(count, params)
    rows = await store.fetchall(page, [*params, limit, offset])
    keys = [
        "source_id",
        "ra_deg",
        "dec_deg",
        "nvss_flux_mjy",
        "mean_flux_mjy",
        "n_obs",
        "chi2_nu",
        "eta",
        "v",
        "sigma_deviation",
        "last_measured_at",
    ]
    return {
        "sources": [dict(zip(keys, tuple(r), strict=True)) for r in rows],
        "total": int(row[0]) if row else 0,
        "limit": limit,
        "offset": offset,
    }


def make_names(rng: random.Random, n: int) -> list[str]:
    names: set[str] = set()
    seen_folded: set[bytes] = set()
    while len(names) < n:
        name = rng.choice(_PREFIXES) + "".join(rng.choice("0123456789+-.aB_") for _ in range(rng.randint(0, 6)))
        folded = name.encode().translate(bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz"))
        if folded in seen_folded:  # NOCASE-unique, as the projection's unique index requires
            continue
        seen_folded.add(folded)
        names.add(name)
    return sorted(names)


def quantised(rng: random.Random, lo: float, hi: float, step: float) -> float:
    """Values on a coarse grid, so every sort column has ties."""
    return round(rng.uniform(lo, hi) / step) * step


def measured(rng: random.Random, names: list[str], mjd: float, n_obs: dict[str, int]) -> SourceMeasured:
    ids = rng.sample(names, rng.randint(1, min(len(names), 600)))
    keys = ("ra", "dec", "cat", "nobs", "mean", "std", "chi2", "eta", "v", "sig")
    fields: dict[str, list[Any]] = {k: [] for k in keys}
    for name in ids:
        n_obs[name] = n_obs.get(name, 0) + 1
        fields["ra"].append(quantised(rng, 0, 360, 15))
        fields["dec"].append(quantised(rng, -30, 90, 5))
        fields["cat"].append(quantised(rng, 0.005, 0.2, 0.005))
        fields["nobs"].append(n_obs[name])
        fields["mean"].append(None if rng.random() < 0.15 else quantised(rng, 0.005, 0.2, 0.005))
        fields["std"].append(None)
        fields["chi2"].append(None if rng.random() < 0.2 else quantised(rng, 0, 10, 0.5))
        fields["eta"].append(None if rng.random() < 0.2 else quantised(rng, 0, 10, 0.5))
        fields["v"].append(None if rng.random() < 0.2 else quantised(rng, 0, 0.5, 0.025))
        fields["sig"].append(quantised(rng, 0, 8, 0.25))
    k = len(ids)
    return SourceMeasured(
        image_path=f"/stage/img_{mjd:.4f}.fits",
        mjd=mjd,
        source_ids=ids,
        flux_jy=[0.01] * k,
        error_jy=[0.001] * k,
        snr=[10.0] * k,
        ra_deg=fields["ra"],
        dec_deg=fields["dec"],
        catalogue_flux_jy=fields["cat"],
        spectral_index=[-0.7] * k,
        n_obs=fields["nobs"],
        mean_flux_jy=fields["mean"],
        std_flux_jy=fields["std"],
        chi2_nu=fields["chi2"],
        eta=fields["eta"],
        v=fields["v"],
        sigma_deviation=fields["sig"],
    )


def random_search(rng: random.Random, names: list[str]) -> dict[str, Any]:
    def maybe(x: float) -> float | None:
        return x if rng.random() < 0.4 else None

    query = None
    if rng.random() < 0.3:
        name = rng.choice(names)
        query = name[: rng.randint(1, len(name))]
        if rng.random() < 0.5:
            query = query.swapcase()
    dec_min, dec_max = maybe(quantised(rng, -30, 90, 5)), maybe(quantised(rng, -30, 90, 5))
    if dec_min is not None and dec_max is not None and dec_min > dec_max:
        dec_min, dec_max = dec_max, dec_min
    return {
        "query": query,
        "variability_min": maybe(quantised(rng, 0, 8, 0.25)),
        "dec_min": dec_min,
        "dec_max": dec_max,
        "flux_min_mjy": maybe(quantised(rng, 5, 200, 5)),
        "chi2_nu_min": maybe(quantised(rng, 0, 10, 0.5)),
        "eta_min": maybe(quantised(rng, 0, 10, 0.5)),
        "v_min": maybe(quantised(rng, 0, 0.5, 0.025)),
        "sort_field": rng.choice(list(science.SORT_COLUMNS)),
        "order": rng.choice(["asc", "desc"]),
        "limit": rng.choice([1, 3, 10, 100, 1000]),
        "offset": rng.choice([0, 0, 1, 7, 50, 500, 2500, 10_000]),
    }


async def compare(store: ProjectionStore, rng: random.Random, names: list[str], rounds: int) -> int:
    nonempty = 0
    for _ in range(rounds):
        kw = random_search(rng, names)
        got = await science.search_sources(store, **kw)
        want = await reference(store, **kw)
        assert got == want, kw
        nonempty += bool(got["sources"])
    return nonempty


@pytest.mark.parametrize(("seed", "small"), [(1, 4096), (2, 0), (3, 7)])
async def test_columnar_search_matches_sql(tmp_path: Path, seed: int, small: int, monkeypatch: Any) -> None:
    """``small``: below it a page is one sort of every match; 0 and 7 force the partition path."""
    monkeypatch.setattr(source_index, "SMALL", small)
    rng = random.Random(seed)
    names = make_names(rng, 3000)
    path = tmp_path / "edge" / "p.sqlite"
    store = ProjectionStore(path)
    await store.open()
    n_obs: dict[str, int] = {}
    seq, mjd = 0, 60238.5
    try:
        assert await science.search_sources(store) == {"sources": [], "total": 0, "limit": 100, "offset": 0}
        # New names appear over time (appends and name-order merges), known ones are updated.
        nonempty = 0
        for batch_no in range(6):
            pool = names[: len(names) * (batch_no + 1) // 6]
            batch = []
            for _ in range(rng.randint(1, 5)):
                seq += 1
                mjd += 0.01
                event = measured(rng, pool, mjd, n_obs)
                batch.append(StoredMessage(seq, event.subject(), datetime.now(UTC), encode(event), 0))
            await store.apply(batch)
            nonempty += await compare(store, rng, names, 60)
        assert nonempty > 100
        n_sources = index_for(store).n
        assert n_sources == len(n_obs)
        await store.close()
        await store.open()  # loaded from the file
        assert index_for(store).n == n_sources
        assert await compare(store, rng, names, 150) > 50
    finally:
        await store.close()


async def test_out_of_order_measurement_is_not_projected(tmp_path: Path) -> None:
    """The upsert keeps the row with more epochs; the index, re-reading committed rows, agrees."""
    store = ProjectionStore(tmp_path / "edge" / "p.sqlite")
    await store.open()
    try:
        rng = random.Random(3)
        newer = measured(rng, ["NVSS J000000+000000"], 60300.0, {"NVSS J000000+000000": 9})
        older = measured(rng, ["NVSS J000000+000000"], 60200.0, {"NVSS J000000+000000": 4})
        for seq, event in enumerate((newer, older), start=1):
            await store.apply([StoredMessage(seq, event.subject(), datetime.now(UTC), encode(event), 0)])
        got = await science.search_sources(store)
        assert got["total"] == 1
        assert got["sources"][0]["n_obs"] == 10
        assert got["sources"][0]["sigma_deviation"] == newer.sigma_deviation[0]
        assert got == await reference(
            store,
            query=None,
            variability_min=None,
            dec_min=None,
            dec_max=None,
            flux_min_mjy=None,
            sort_field="sigma_deviation",
            order="desc",
            limit=100,
            offset=0,
        )
    finally:
        await store.close()


async def test_search_never_shows_less_than_a_sql_read_during_a_batch(tmp_path: Path) -> None:
    """While a batch is being applied, a search after ``GET /api/sources/{id}`` is at least as new."""
    store = ProjectionStore(tmp_path / "edge" / "p.sqlite")
    await store.open()
    name = "NVSS J120000+400000"
    rng = random.Random(4)
    n_obs: dict[str, int] = {}
    others = [f"NVSS J{k:06d}+000000" for k in range(400)]
    batch = []
    for seq in range(1, 201):
        event = measured(rng, [name, *others], 60000.0 + seq / 100, n_obs)
        batch.append(StoredMessage(seq, event.subject(), datetime.now(UTC), encode(event), 0))
    applying = asyncio.create_task(store.apply(batch))
    try:
        checks = 0
        while not applying.done():
            detail = await science.source_detail(store, name)
            found = await science.search_sources(store, query=name)
            if detail is not None:
                assert found["total"] == 1
                assert found["sources"][0]["n_obs"] >= detail["variability_stats"]["n_obs"]
                checks += 1
        await applying
        assert checks > 5
        found = await science.search_sources(store, query=name)
        assert found["sources"][0]["n_obs"] == n_obs[name]
    finally:
        await asyncio.wait([applying])  # the batch finishes before the store closes, pass or fail
        await store.close()
