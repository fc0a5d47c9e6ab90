"""The calibrator: solves a calibration set from every calibrator transit, and gives every group its sets.

On ``dsa.ms.written`` with ``stage = converted`` (from the watcher):

1. **Solve** when a calibrator of ``astro.calibrators`` transits the group's tile (found from the
   MS itself, so a converted event that lost ``has_calibrator`` still gets its set): flag
   (SumThreshold), model the calibrators and the tile's reference-catalogue sources (``--catalogue``;
   ``field.py`` says why) through the drift-scan Airy beam, StEFCal bandpass and
   gains, CASA tables + ``calset.json`` under ``DATA/calsets/<group_id>/`` (``work.solve_group``
   in the process pool). Publishes ``dsa.calibration.solved`` (cal_group_id, created_at,
   num_targets, validity window), which ``GET /api/status`` lists under ``calibration_sets``.
2. **Assign**: the nearest valid set before and/or after the group's mid-time, within
   ``--cal-max-sep-hours`` (two sets are interpolated by the imager). Publishes ``dsa.ms.written``
   with ``stage = calibrated`` and ``calsets`` = the chosen directories; the imager consumes it.
3. **Wait** when no set is valid: the group is recorded in the actor's state
   (``DATA/calibrator/state.sqlite``), ``ops.alert.raised`` (``calibrator_missing``) is published
   once per group, and nothing is imaged. Every ``dsa.calibration.solved`` (from any instance)
   releases the waiting groups that now have a set, and a sweep every ``SWEEP_S`` catches a set
   that arrived while a group was being recorded. A group is never imaged uncalibrated.

Events go through an outbox written in the same transaction as the state change (see
``actors/outbox.py``), so a crash between the two loses nothing and a redelivery
publishes nothing twice (same event ids). Instances of this role must share ``DATA`` (one host,
or a shared file system): the waiting groups and the sets are files there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, ClassVar

from actors import outbox
from actors.calibrator import work
from actors.runtime import Actor
from astro import applycal
from schemas.base import Event, encode
from schemas.dsa import CalibrationSetSolved, MeasurementSetWritten
from schemas.events import decode
from schemas.ops import AlertRaised

SWEEP_S = 30.0

DDL = (
    """CREATE TABLE IF NOT EXISTS calsets (
        cal_group_id TEXT PRIMARY KEY, path TEXT NOT NULL, valid_from_mjd REAL NOT NULL,
        valid_to_mjd REAL NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS waiting (
        path TEXT PRIMARY KEY, group_id TEXT NOT NULL, mid_mjd REAL NOT NULL, event BLOB NOT NULL,
        since TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS assigned (
        path TEXT PRIMARY KEY, group_id TEXT NOT NULL, calsets TEXT NOT NULL)""",
)


class CalibratorActor(Actor):
    role = "calibrator"
    consumes: ClassVar[tuple[type[Event], ...]] = (MeasurementSetWritten, CalibrationSetSolved)
    publishes: ClassVar[tuple[type[Event], ...]] = (CalibrationSetSolved, MeasurementSetWritten, AlertRaised)

    async def setup(self) -> None:
        self.settings.calset_dir.mkdir(parents=True, exist_ok=True)
        self.db = await self.open_state(DDL)
        self.lock = asyncio.Lock()
        self.spawn(self._sweep(), "sweep")

    async def teardown(self) -> None:
        with contextlib.suppress(Exception):
            await self.db.close()

    async def handle(self, event: Event) -> None:
        if isinstance(event, MeasurementSetWritten) and event.stage == "converted" and event.status == "ok":
            await self._on_converted(event)
        elif isinstance(event, CalibrationSetSolved):
            await self._release()

    # -- a converted group ---------------------------------------------------------------------
    async def _on_converted(self, event: MeasurementSetWritten) -> None:
        if not os.path.isdir(event.path):
            # the MS is gone (or never reached this host's data dir): nothing to calibrate; raising
            # would only retry it into the dead-letter queue, which is where it belongs
            raise FileNotFoundError(f"Measurement Set {event.path} does not exist")
        rows = await self.db.execute_fetchall("SELECT calsets FROM assigned WHERE path = ?", (event.path,))
        if rows:  # redelivered after it was assigned: only make sure its events went out
            async with self.lock:
                await outbox.flush(self.db, self.bus)
            return
        solved = await self.run_cpu(
            work.solve_group,
            event.path,
            os.fspath(self.settings.calset_dir),
            event.group_id,
            self.settings.cal_validity_hours,
            # the field's catalogue sources join the calibration model (calibrator/field.py)
            os.fspath(self.settings.catalogue_path),
        )
        if solved is not None:
            await self._record_set(solved, event)
        await self._assign(event)

    async def _record_set(self, solved: dict[str, Any], source: MeasurementSetWritten) -> None:
        ev = CalibrationSetSolved(
            cal_group_id=solved["cal_group_id"],
            path=solved["path"],
            created_at=solved["created_at"],
            num_targets=int(solved["num_targets"]),
            valid_from_mjd=float(solved["valid_from_mjd"]),
            valid_to_mjd=float(solved["valid_to_mjd"]),
            calibrator=str(solved["calibrator"]),
            producer=self.role,
            correlation_id=source.correlation_id or source.group_id,
        )
        async with self.lock:
            await self.db.execute(
                "INSERT OR REPLACE INTO calsets VALUES (?,?,?,?,?)",
                (ev.cal_group_id, ev.path, ev.valid_from_mjd, ev.valid_to_mjd, ev.created_at),
            )
            await outbox.put(self.db, ev)
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
        self.log.info(
            "calibration set solved",
            cal_group_id=ev.cal_group_id,
            calibrators=solved["calibrators"],
            field_sources=solved["field_sources"],
            num_targets=ev.num_targets,
            median_snr=round(float(solved["median_snr"]), 1),
            seconds=round(sum(solved["timings"].values()), 2),
        )

    async def _choose(self, mjd: float) -> list[str]:
        return await self.run_thread(
            applycal.choose_calsets, os.fspath(self.settings.calset_dir), mjd, self.settings.cal_max_sep_hours
        )

    async def _assign(self, event: MeasurementSetWritten) -> None:
        chosen = await self._choose(event.mid_mjd)
        async with self.lock:
            if chosen:
                await self._put_calibrated(event, chosen)
            else:
                fresh = not await self.db.execute_fetchall("SELECT 1 FROM waiting WHERE path = ?", (event.path,))
                await self.db.execute(
                    "INSERT OR IGNORE INTO waiting VALUES (?,?,?,?, datetime('now'))",
                    (event.path, event.group_id, event.mid_mjd, encode(event)),
                )
                if fresh:
                    await outbox.put(
                        self.db,
                        AlertRaised(
                            alert_type="calibrator_missing",
                            severity="warning",
                            message=(
                                f"group {event.group_id}: no calibration set within "
                                f"{self.settings.cal_max_sep_hours:g} h; it waits for one"
                            ),
                            dedup_key=f"calibrator_missing:{event.group_id}",
                            details={"group_id": event.group_id, "ms_path": event.path},
                            producer=self.role,
                            correlation_id=event.correlation_id or event.group_id,
                        ),
                    )
                    self.log.warning("no calibration set: group waits", group_id=event.group_id)
            await self.db.commit()
            await outbox.flush(self.db, self.bus)
        if not chosen:
            # a set may have been written between the choice and the record: look again now
            await self._release()

    async def _put_calibrated(self, event: MeasurementSetWritten, chosen: list[str]) -> None:
        """Inside the lock and the caller's transaction."""
        import json

        await self.db.execute(
            "INSERT OR REPLACE INTO assigned VALUES (?,?,?)", (event.path, event.group_id, json.dumps(chosen))
        )
        await self.db.execute("DELETE FROM waiting WHERE path = ?", (event.path,))
        await outbox.put(self.db, event.at_stage("calibrated", calsets=chosen, producer=self.role))
        self.log.info("calibration assigned", group_id=event.group_id, calsets=[os.path.basename(c) for c in chosen])

    async def _release(self) -> None:
        """Give every waiting group that now has a valid set its sets."""
        waiting = list(await self.db.execute_fetchall("SELECT path, mid_mjd, event FROM waiting ORDER BY mid_mjd"))
        released = 0
        for path, mjd, raw in waiting:
            chosen = await self._choose(float(mjd))
            if not chosen:
                continue
            event = decode(bytes(raw))
            assert isinstance(event, MeasurementSetWritten)
            async with self.lock:
                if not await self.db.execute_fetchall("SELECT 1 FROM waiting WHERE path = ?", (path,)):
                    continue  # released meanwhile
                await self._put_calibrated(event, chosen)
                await self.db.commit()
                await outbox.flush(self.db, self.bus)
            released += 1
        if released:
            self.log.info("waiting groups released", released=released, still_waiting=len(waiting) - released)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await self._release()
            except Exception as exc:  # keep sweeping; the next event retries too
                self.log.warning("sweep failed", error=f"{type(exc).__name__}: {exc}")
