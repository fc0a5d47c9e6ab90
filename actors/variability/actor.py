"""The variability detector: forced photometry on every image, light curves, ESE candidates.

On ``dsa.image.ready``:

1. read the image's pointing from its header, pick the reference-catalogue sources inside the
   primary beam (gain ≥ 0.1), and measure them (``measure.measure`` in the process pool:
   Condon-style forced photometry, corrected for the Airy primary beam), each with two errors:
   the epoch-to-epoch error that the statistics and the ESE test use (``errors.epoch_error``:
   thermal noise plus a fractional flux-scale term, ``--cal-error-frac``) and the absolute-flux
   error from the local rms (``abs_error_jy`` in the event);
2. for each measured source, in one transaction of the actor's own SQLite state
   (``DATA/variability/state.sqlite``): test the measurement against the statistics from *before*
   it (``ese.evaluate``), step the source's candidate (``ese.step``), fold the measurement into
   the running statistics (``stats.update``, O(1)) and store it (keyed by (source, image));
3. publish, through an outbox written in that same transaction: one ``dsa.source.measured`` for
   the image (measurements plus each source's statistics after it), a ``dsa.ese.updated`` for each
   candidate opened or extended, and an ``ops.alert.raised`` (``ese_candidate``, critical) for each
   candidate opened.

Idempotent per image: an image already in the state is not measured again (a redelivery only
flushes the outbox), so no source sees one image twice and its statistics stay exact.
``concurrency = 1`` on purpose: the statistics and the ESE test are order-dependent (the baseline
is the epochs before), and images arrive from the stream in time order.

Command ``cmd.variability.set_status`` (queue group ``variability``): an operator closes a
candidate (``resolved`` | ``false_positive``) through the edge; the actor applies
``ese.transition`` and publishes the updated candidate. The reply carries the stream sequence of
that event so the edge can answer after its projection has it (read-your-writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from actors import outbox
from actors.runtime import Actor
from actors.variability import commands, ese, measure
from actors.variability import stats as st
from astro.catalogue import CatalogueError, load_catalogue
from bus.request import CommandError, serve
from schemas.base import Event
from schemas.dsa import EseCandidateUpdated, ImageReady, SourceMeasured
from schemas.ops import AlertRaised

_MJD0 = datetime(1858, 11, 17, tzinfo=UTC)

DDL = (
    "CREATE TABLE IF NOT EXISTS sources (source_id TEXT PRIMARY KEY, stats TEXT NOT NULL) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS measurements (
        source_id TEXT NOT NULL, image_path TEXT NOT NULL, mjd REAL NOT NULL, flux_jy REAL NOT NULL,
        error_jy REAL NOT NULL, snr REAL NOT NULL, PRIMARY KEY (source_id, image_path)) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS images (path TEXT PRIMARY KEY, mjd REAL NOT NULL, n_measured INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS candidates (
        id INTEGER PRIMARY KEY AUTOINCREMENT, source_id TEXT NOT NULL, data TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS candidates_source ON candidates(source_id, id)",
)


def mjd_to_datetime(mjd: float) -> datetime:
    return _MJD0 + timedelta(days=mjd)


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else x


class _Catalogue:
    """The reference catalogue as arrays, reloaded when its file changes (the simulator merges into it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = -1.0
        self.names: list[str] = []
        self.ra = np.zeros(0)
        self.dec = np.zeros(0)
        self.flux = np.zeros(0)
        self.alpha = np.zeros(0)

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise CatalogueError(f"reference catalogue {self.path} does not exist (set --catalogue)") from None
        if mtime == self.mtime:
            return
        cat = load_catalogue(self.path)
        self.names = [s.name for s in cat.sources]
        self.ra, self.dec, self.flux, self.alpha = cat.arrays()
        self.mtime = mtime


class VariabilityActor(Actor):
    role = "variability"
    consumes: ClassVar[tuple[type[Event], ...]] = (ImageReady,)
    publishes: ClassVar[tuple[type[Event], ...]] = (SourceMeasured, EseCandidateUpdated, AlertRaised)
    concurrency = 1

    async def setup(self) -> None:
        self.config = ese.preset(self.settings.ese_preset)
        self.db = await self.open_state(DDL, synchronous="NORMAL")
        self.lock = asyncio.Lock()
        self.catalogue = _Catalogue(self.settings.catalogue_path)
        with contextlib.suppress(CatalogueError):
            self.catalogue.refresh()
        self._sub = await serve(
            self.bus.nc, commands.SET_STATUS, commands.QUEUE, commands.SetCandidateStatus, self.set_status
        )

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()
        await self.db.close()

    # -- images --------------------------------------------------------------------------------
    async def handle(self, event: Event) -> None:
        if not isinstance(event, ImageReady):
            return
        async with self.lock:
            done = await self._one("SELECT 1 FROM images WHERE path = ?", (event.path,))
        if done is None:
            await self._process(event)
        async with self.lock:
            await outbox.flush(self.db, self.bus)

    async def _process(self, event: ImageReady) -> None:
        await self.run_thread(self.catalogue.refresh)
        cat = self.catalogue
        pointing = await self.run_thread(measure.read_pointing, event.path)
        idx = await self.run_thread(measure.in_beam, cat.ra, cat.dec, pointing)
        m = await self.run_cpu(
            measure.measure,
            event.path,
            cat.ra[idx],
            cat.dec[idx],
            pointing,
            measure.MIN_PB_GAIN,
            self.settings.cal_error_frac,
        )
        valid = m.valid
        chosen = idx[valid]
        flux, err, snr, abs_err = m.flux_jy[valid], m.err_jy[valid], m.snr[valid], m.abs_err_jy[valid]
        names = [cat.names[i] for i in chosen]
        at = mjd_to_datetime(event.mjd)
        self.log.info("measured", image=event.path, in_beam=int(idx.size), measured=len(names))

        async with self.lock:
            if await self._one("SELECT 1 FROM images WHERE path = ?", (event.path,)) is not None:
                return
            before = await self._load_stats(names)
            current = await self._load_candidates(names)
            out = SourceMeasuredRows()
            events: list[Event] = []
            for k, name in enumerate(names):
                i = int(chosen[k])
                f, e, s = float(flux[k]), float(err[k]), float(snr[k])
                prior = before.get(name, st.SourceStats())
                detection = ese.evaluate(prior, f, e, self.config)
                after = st.update(prior, f, e, min_baseline=self.config.min_baseline_epochs)
                await self.db.execute(
                    "INSERT OR REPLACE INTO sources VALUES (?, ?)", (name, json.dumps(after.to_dict()))
                )
                await self.db.execute(
                    "INSERT OR IGNORE INTO measurements VALUES (?,?,?,?,?,?)", (name, event.path, event.mjd, f, e, s)
                )
                cand_id, cand = current.get(name, (0, None))
                upd = ese.step(
                    cand, detection, source_id=name, ra_deg=float(cat.ra[i]), dec_deg=float(cat.dec[i]), at=at
                )
                if upd.changed and upd.candidate is not None:
                    events.extend(await self._save_candidate(cand_id, upd, event))
                out.add(
                    name,
                    f,
                    e,
                    s,
                    float(cat.ra[i]),
                    float(cat.dec[i]),
                    float(cat.flux[i]),
                    float(cat.alpha[i]),
                    after,
                    abs_err=float(abs_err[k]),
                )
            await self.db.execute("INSERT INTO images VALUES (?, ?, ?)", (event.path, event.mjd, len(names)))
            for measured in out.events(event):
                await outbox.put(self.db, measured)
            for ev in events:
                await outbox.put(self.db, ev)
            await self.db.commit()

    async def _save_candidate(self, cand_id: int, upd: ese.CandidateUpdate, image: ImageReady) -> list[Event]:
        cand = upd.candidate
        assert cand is not None
        data = json.dumps(cand.to_dict())
        if upd.opened or cand_id == 0:
            cur = await self.db.execute(
                "INSERT INTO candidates (source_id, data) VALUES (?, ?)", (cand.source_id, data)
            )
            cand_id = int(cur.lastrowid or 0)
        else:
            await self.db.execute("UPDATE candidates SET data = ? WHERE id = ?", (data, cand_id))
        out: list[Event] = [self._candidate_event(cand_id, cand, image.correlation_id)]
        if upd.opened:
            out.append(
                AlertRaised(
                    alert_type="ese_candidate",
                    severity="critical",
                    message=f"ESE candidate detected: {cand.max_sigma_dev:.1f}σ deviation",
                    source_id=cand.source_id,
                    dedup_key=f"ese_candidate:{cand.source_id}",
                    details={
                        "candidate_id": str(cand_id),
                        "baseline_flux_jy": f"{cand.baseline_flux_jy:.4g}",
                        "flux_jy": f"{cand.peak_flux_jy:.4g}",
                        "image": image.path,
                    },
                    producer=self.role,
                    correlation_id=image.correlation_id,
                )
            )
        return out

    def _candidate_event(self, cand_id: int, cand: ese.EseCandidate, correlation_id: str) -> EseCandidateUpdated:
        d = cand.to_dict()
        return EseCandidateUpdated(
            candidate_id=cand_id,
            source_id=cand.source_id,
            ra_deg=cand.ra_deg,
            dec_deg=cand.dec_deg,
            status=d["status"],
            first_detection_at=d["first_detection_at"],
            last_detection_at=d["last_detection_at"],
            max_sigma_dev=cand.max_sigma_dev,
            baseline_flux_jy=cand.baseline_flux_jy,
            peak_flux_jy=cand.peak_flux_jy,
            notes=cand.notes,
            producer=self.role,
            correlation_id=correlation_id,
        )

    async def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        async with self.db.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _load_stats(self, names: list[str]) -> dict[str, st.SourceStats]:
        out: dict[str, st.SourceStats] = {}
        for k in range(0, len(names), 500):
            chunk = names[k : k + 500]
            sql = f"SELECT source_id, stats FROM sources WHERE source_id IN ({','.join('?' * len(chunk))})"  # noqa: S608
            async with self.db.execute(sql, chunk) as cur:
                for sid, raw in await cur.fetchall():
                    out[sid] = st.SourceStats.from_dict(json.loads(raw))
        return out

    async def _load_candidates(self, names: list[str]) -> dict[str, tuple[int, ese.EseCandidate]]:
        """The latest candidate of each source that has one."""
        out: dict[str, tuple[int, ese.EseCandidate]] = {}
        for k in range(0, len(names), 500):
            chunk = names[k : k + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, source_id, data FROM candidates WHERE id IN (SELECT MAX(id) FROM candidates WHERE source_id IN ({marks}) GROUP BY source_id)"  # noqa: S608
            async with self.db.execute(sql, chunk) as cur:
                for cid, sid, raw in await cur.fetchall():
                    out[sid] = (int(cid), ese.EseCandidate.from_dict(json.loads(raw)))
        return out

    # -- commands ------------------------------------------------------------------------------
    async def set_status(self, cmd: commands.SetCandidateStatus) -> dict[str, Any]:
        async with self.lock:
            row = await self._one("SELECT data FROM candidates WHERE id = ?", (cmd.candidate_id,))
            if row is None:
                raise CommandError(404, f"no ESE candidate with id {cmd.candidate_id}", "NOT_FOUND")
            cand = ese.EseCandidate.from_dict(json.loads(row[0]))
            try:
                new = ese.transition(cand, cmd.status, cmd.notes)
            except ese.TransitionError as exc:
                code = 422 if "unknown candidate status" in str(exc) else 409
                raise CommandError(
                    code, str(exc), "INVALID_TRANSITION" if code == 409 else "VALIDATION_ERROR"
                ) from None
            await self.db.execute(
                "UPDATE candidates SET data = ? WHERE id = ?", (json.dumps(new.to_dict()), cmd.candidate_id)
            )
            ev = self._candidate_event(cmd.candidate_id, new, f"ese-{cmd.candidate_id}")
            await outbox.put(self.db, ev)
            await self.db.commit()
            seqs = await outbox.flush(self.db, self.bus)
        self.log.info("candidate status set", candidate_id=cmd.candidate_id, status=new.status, operator=cmd.operator)
        return {"seq": seqs.get(ev.id, 0), "candidate": new.to_dict() | {"id": cmd.candidate_id}}


class SourceMeasuredRows:
    """Accumulates one image's rows in the column layout of ``SourceMeasured``."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "source_ids",
                "flux_jy",
                "error_jy",
                "snr",
                "ra_deg",
                "dec_deg",
                "catalogue_flux_jy",
                "spectral_index",
                "n_obs",
                "mean_flux_jy",
                "std_flux_jy",
                "chi2_nu",
                "eta",
                "v",
                "sigma_deviation",
                "abs_error_jy",
            )
        }

    def add(
        self,
        name: str,
        flux: float,
        err: float,
        snr: float,
        ra: float,
        dec: float,
        cat_flux: float,
        alpha: float,
        s: st.SourceStats,
        *,
        abs_err: float,
    ) -> None:
        c = self.cols
        c["source_ids"].append(name)
        c["flux_jy"].append(flux)
        c["error_jy"].append(err)
        c["snr"].append(snr if math.isfinite(snr) else 0.0)
        c["ra_deg"].append(ra)
        c["dec_deg"].append(dec)
        c["catalogue_flux_jy"].append(cat_flux)
        c["spectral_index"].append(alpha)
        c["n_obs"].append(s.n_obs)
        c["mean_flux_jy"].append(_clean(s.mean))
        c["std_flux_jy"].append(_clean(s.std))
        c["chi2_nu"].append(_clean(s.chi2_nu))
        c["eta"].append(_clean(s.eta))
        c["v"].append(_clean(s.v))
        c["sigma_deviation"].append(s.sigma_deviation)
        c["abs_error_jy"].append(abs_err)

    def events(self, image: ImageReady, per_event: int = 2000) -> list[SourceMeasured]:
        """One event per image; split in parts of ``per_event`` sources only for a huge catalogue
        (a DSA-110 beam holds a few hundred NVSS sources; NATS messages are limited to 1 MB)."""
        n = len(self.cols["source_ids"])
        return [
            SourceMeasured(
                image_path=image.path,
                mjd=image.mjd,
                producer=VariabilityActor.role,
                correlation_id=image.correlation_id,
                **{k: v[a : a + per_event] for k, v in self.cols.items()},  # type: ignore[arg-type]
            )
            for a in range(0, max(n, 1), per_event)
        ]
