"""CASA calibration tables and calibration sets.

Tables follow CASA's "NewCalTable" layout, so CASA (applycal, browsetable, plotms) and
python-casacore read them:

* main table, one row per (time, spectral window, antenna): TIME [s, MJD UTC epoch], FIELD_ID,
  SPECTRAL_WINDOW_ID, ANTENNA1, ANTENNA2 (the reference antenna), INTERVAL [s], SCAN_NUMBER,
  OBSERVATION_ID, CPARAM (complex, python shape [nchan, npol]), PARAMERR, FLAG, SNR, WEIGHT;
* keywords ParType="Complex", VisCal ("B Jones" for a bandpass, "G Jones" for a gain), PolBasis,
  MSName and subtable references OBSERVATION, ANTENNA, FIELD, SPECTRAL_WINDOW,
  HISTORY; table info type "Calibration", subType = VisCal. No CASA_Version keyword: CASA did
  not write these tables (the HISTORY subtable says what did).

A B table has one row per antenna with CPARAM [nchan, npol]; a G table one row per
(integration, antenna) with CPARAM [1, npol].

A *calibration set* is a directory:

    <cal_group_id>/
        calset.json      manifest (below)
        bandpass.B       CASA table, "B Jones"
        gains.G          CASA table, "G Jones"

calset.json holds: format ("dsa110-calset/1"), cal_group_id (ISO time of the calibrator group),
created_at (ISO UTC, "Z"), calibrator {name, ra_deg, dec_deg, flux_jy}, obs_mjd_start /
obs_mjd_end / mjd_mid (the calibrator data solved), mjd_start / mjd_end (the *validity window*:
the set may be applied to data inside it, by default the observation +- 12 h), num_targets (the
number of antennas with valid solutions, i.e. the antennas this set can calibrate), n_antennas,
refant, tables {"B": ..., "G": ...}, freq_min_hz / freq_max_hz / nchan, pols, source_ms, and
flag statistics.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import casacore.tables as ct
import numpy as np
import numpy.typing as npt

from astro.msio import CASA_OBSERVATORY

CALSET_FORMAT = "dsa110-calset/1"
MANIFEST = "calset.json"
SECONDS_PER_DAY = 86400.0


class CalTableError(ValueError):
    """A calibration table or set is missing or malformed."""


@dataclass
class CalTable:
    """The contents of a complex CASA calibration table."""

    viscal: str  # "B Jones" or "G Jones"
    time: npt.NDArray[np.float64]  # [nrow] MJD seconds
    antenna1: npt.NDArray[np.int32]  # [nrow]
    antenna2: npt.NDArray[np.int32]  # [nrow] (reference antenna)
    spw: npt.NDArray[np.int32]  # [nrow]
    cparam: npt.NDArray[np.complex64]  # [nrow, nchan, npol]
    flag: npt.NDArray[np.bool_]
    snr: npt.NDArray[np.float32]
    paramerr: npt.NDArray[np.float32]
    interval: npt.NDArray[np.float64]
    antenna_names: list[str]
    freq: npt.NDArray[np.float64]  # [nchan] of spw 0 (B) or the band centre (G)
    keywords: dict[str, Any] = field(default_factory=dict)


def _main_desc() -> dict[str, Any]:
    tkw = {"QuantumUnits": ["s"], "MEASINFO": {"type": "epoch", "Ref": "UTC"}}
    cols = [
        ct.makescacoldesc("TIME", 0.0, keywords=tkw),
        ct.makescacoldesc("FIELD_ID", 0),
        ct.makescacoldesc("SPECTRAL_WINDOW_ID", 0),
        ct.makescacoldesc("ANTENNA1", 0),
        ct.makescacoldesc("ANTENNA2", 0),
        ct.makescacoldesc("INTERVAL", 0.0, keywords={"QuantumUnits": ["s"]}),
        ct.makescacoldesc("SCAN_NUMBER", 0),
        ct.makescacoldesc("OBSERVATION_ID", 0),
        ct.makearrcoldesc("CPARAM", 0j, ndim=2, valuetype="complex"),
        ct.makearrcoldesc("PARAMERR", 0.0, ndim=2, valuetype="float"),
        ct.makearrcoldesc("FLAG", False, ndim=2, valuetype="boolean"),
        ct.makearrcoldesc("SNR", 0.0, ndim=2, valuetype="float"),
        ct.makearrcoldesc("WEIGHT", 0.0, ndim=2, valuetype="float"),
    ]
    return ct.maketabdesc(cols)  # type: ignore[no-any-return]


def write_caltable(
    path: str | os.PathLike[str],
    viscal: str,
    time: npt.ArrayLike,
    cparam: npt.NDArray[np.complexfloating],
    flag: npt.NDArray[np.bool_],
    snr: npt.NDArray[np.floating],
    paramerr: npt.NDArray[np.floating],
    antenna_names: list[str],
    antenna_positions: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    refant: int = 0,
    interval: float = 0.0,
    field_name: str = "",
    field_dir: tuple[float, float] = (0.0, 0.0),
    ms_name: str = "",
    chan_width: float = 0.0,
    telescope: str = "DSA-110",
    history: list[str] | None = None,
) -> None:
    """Write a complex calibration table.

    `cparam`, `flag`, `snr`, `paramerr` are [ntime, nant, nchan, npol]; `time` is [ntime] MJD seconds.
    """
    p = os.fspath(path)
    if os.path.exists(p):
        shutil.rmtree(p)
    cp = np.asarray(cparam)
    if cp.ndim != 4:
        raise CalTableError(f"cparam must be [ntime, nant, nchan, npol], got {cp.shape}")
    ntime, nant, nchan, npol = cp.shape
    times = np.asarray(time, float).reshape(ntime)
    nrow = ntime * nant
    t = ct.table(p, _main_desc(), nrow=nrow, ack=False)
    try:
        t.putcol("TIME", np.repeat(times, nant))
        t.putcol("FIELD_ID", np.zeros(nrow, np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.zeros(nrow, np.int32))
        t.putcol("ANTENNA1", np.tile(np.arange(nant, dtype=np.int32), ntime))
        t.putcol("ANTENNA2", np.full(nrow, refant, np.int32))
        t.putcol("INTERVAL", np.full(nrow, interval))
        t.putcol("SCAN_NUMBER", np.ones(nrow, np.int32))
        t.putcol("OBSERVATION_ID", np.zeros(nrow, np.int32))
        t.putcol("CPARAM", cp.reshape(nrow, nchan, npol).astype(np.complex64))
        t.putcol("PARAMERR", np.asarray(paramerr, np.float32).reshape(nrow, nchan, npol))
        t.putcol("FLAG", np.asarray(flag, bool).reshape(nrow, nchan, npol))
        t.putcol("SNR", np.asarray(snr, np.float32).reshape(nrow, nchan, npol))
        t.putcol("WEIGHT", np.ones((nrow, nchan, npol), np.float32))
        t.putkeyword("ParType", "Complex")
        t.putkeyword("MSName", ms_name)
        t.putkeyword("VisCal", viscal)
        t.putkeyword("PolBasis", "unknown")
        t.putinfo({"type": "Calibration", "subType": viscal, "readme": ""})
        for name in ("OBSERVATION", "ANTENNA", "FIELD", "SPECTRAL_WINDOW", "HISTORY"):
            sub = ct.default_ms_subtable(name, os.path.join(p, name))
            try:
                _fill_subtable(
                    sub, name, antenna_names, antenna_positions, freq, chan_width, field_name, field_dir,
                    times, telescope, history or [],
                )
            finally:
                sub.close()
            t.putkeyword(name, "Table: " + os.path.abspath(os.path.join(p, name)))
    finally:
        t.close()


def _fill_subtable(
    sub: ct.table,
    name: str,
    antenna_names: list[str],
    antenna_positions: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    chan_width: float,
    field_name: str,
    field_dir: tuple[float, float],
    times: npt.NDArray[np.float64],
    telescope: str,
    history: list[str],
) -> None:
    if name == "ANTENNA":
        n = len(antenna_names)
        sub.addrows(n)
        sub.putcol("NAME", antenna_names)
        sub.putcol("STATION", antenna_names)
        sub.putcol("POSITION", np.asarray(antenna_positions, float).reshape(n, 3))
        sub.putcol("DISH_DIAMETER", np.full(n, 4.65))
        sub.putcol("TYPE", ["GROUND-BASED"] * n)
        sub.putcol("MOUNT", ["ALT-AZ"] * n)
    elif name == "SPECTRAL_WINDOW":
        f = np.atleast_1d(np.asarray(freq, float))
        width = chan_width or (float(np.median(np.diff(f))) if f.size > 1 else 0.0)
        sub.addrows(1)
        sub.putcell("CHAN_FREQ", 0, f)
        sub.putcell("CHAN_WIDTH", 0, np.full(f.size, width))
        sub.putcell("EFFECTIVE_BW", 0, np.full(f.size, width))
        sub.putcell("RESOLUTION", 0, np.full(f.size, width))
        sub.putcell("NUM_CHAN", 0, f.size)
        sub.putcell("REF_FREQUENCY", 0, float(f[0]))
        sub.putcell("TOTAL_BANDWIDTH", 0, abs(width) * f.size)
        sub.putcell("NAME", 0, "SPW0")
    elif name == "FIELD":
        sub.addrows(1)
        d = np.array([[field_dir[0], field_dir[1]]])
        sub.putcell("NAME", 0, field_name)
        sub.putcell("PHASE_DIR", 0, d)
        sub.putcell("DELAY_DIR", 0, d)
        sub.putcell("REFERENCE_DIR", 0, d)
        sub.putcell("TIME", 0, float(times[0]) if times.size else 0.0)
    elif name == "OBSERVATION":
        sub.addrows(1)
        # the observatory CASA knows (see astro.msio.CASA_OBSERVATORY), the instrument beside it
        sub.putcell("TELESCOPE_NAME", 0, CASA_OBSERVATORY)
        sub.putcell("PROJECT", 0, telescope)
        sub.putkeyword("INSTRUMENT", telescope)
        sub.putcell("TIME_RANGE", 0, np.array([times.min(), times.max()]) if times.size else np.zeros(2))
        sub.putcell("OBSERVER", 0, "pipeline")
    elif name == "HISTORY" and history:
        sub.addrows(len(history))
        now = datetime.now(UTC).timestamp() / SECONDS_PER_DAY + 40587.0
        sub.putcol("TIME", np.full(len(history), now * SECONDS_PER_DAY))
        sub.putcol("MESSAGE", history)
        sub.putcol("PRIORITY", ["INFO"] * len(history))
        sub.putcol("ORIGIN", ["actors.calibrator"] * len(history))
        sub.putcol("APPLICATION", ["actors.calibrator"] * len(history))


def read_caltable(path: str | os.PathLike[str]) -> CalTable:
    """Read a complex CASA calibration table (B or G Jones)."""
    p = os.fspath(path)
    if not ct.tableexists(p):
        raise CalTableError(f"{p!r} is not a table")
    with ct.table(p, ack=False) as t:
        kw = t.getkeywords()
        if kw.get("ParType") != "Complex":
            raise CalTableError(f"{p!r}: ParType {kw.get('ParType')!r} is not 'Complex'")
        out = CalTable(
            viscal=str(kw.get("VisCal", "")),
            time=t.getcol("TIME"),
            antenna1=t.getcol("ANTENNA1").astype(np.int32),
            antenna2=t.getcol("ANTENNA2").astype(np.int32),
            spw=t.getcol("SPECTRAL_WINDOW_ID").astype(np.int32),
            cparam=t.getcol("CPARAM").astype(np.complex64),
            flag=t.getcol("FLAG").astype(bool),
            snr=t.getcol("SNR").astype(np.float32),
            paramerr=t.getcol("PARAMERR").astype(np.float32),
            interval=t.getcol("INTERVAL"),
            antenna_names=[],
            freq=np.zeros(0),
            keywords={k: v for k, v in kw.items() if not str(v).startswith("Table:")},
        )
    ant_path = os.path.join(p, "ANTENNA")
    if ct.tableexists(ant_path):
        with ct.table(ant_path, ack=False) as a:
            out.antenna_names = [str(n) for n in a.getcol("NAME")]
    spw_path = os.path.join(p, "SPECTRAL_WINDOW")
    if ct.tableexists(spw_path):
        with ct.table(spw_path, ack=False) as s:
            if s.nrows():
                out.freq = np.asarray(s.getcell("CHAN_FREQ", 0), float)
    return out


def table_to_cube(tab: CalTable) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.complex128], npt.NDArray[np.bool_]]:
    """(times [ntime], gains [ntime, nant, nchan, npol], flags) from the rows of a table."""
    # full precision: rows of one solution share one TIME value exactly (rounding to 1 ms moved
    # the last solution before the MS's last integration, which then got the table's mean gain)
    times = np.unique(tab.time)
    nant = max(len(tab.antenna_names), int(tab.antenna1.max()) + 1)
    _, nchan, npol = tab.cparam.shape
    g = np.ones((times.size, nant, nchan, npol), np.complex128)
    f = np.ones((times.size, nant, nchan, npol), bool)
    ti = np.searchsorted(times, tab.time)
    g[ti, tab.antenna1] = tab.cparam
    f[ti, tab.antenna1] = tab.flag
    return times, g, f


# ---------------------------------------------------------------------------------------------
# calibration sets


@dataclass
class CalSet:
    """A calibration set loaded from its directory."""

    path: Path
    manifest: dict[str, Any]
    antenna_names: list[str]
    freq: npt.NDArray[np.float64]  # [nchan]
    bandpass: npt.NDArray[np.complex128]  # [nant, nchan, npol]
    bandpass_flags: npt.NDArray[np.bool_]
    gain_times: npt.NDArray[np.float64]  # [ntg] MJD seconds
    gains: npt.NDArray[np.complex128]  # [ntg, nant, npol]
    gain_flags: npt.NDArray[np.bool_]

    @property
    def cal_group_id(self) -> str:
        return str(self.manifest["cal_group_id"])

    @property
    def mjd_start(self) -> float:
        return float(self.manifest["mjd_start"])

    @property
    def mjd_end(self) -> float:
        return float(self.manifest["mjd_end"])

    @property
    def mjd_mid(self) -> float:
        return float(self.manifest["mjd_mid"])


def mjd_to_iso(mjd: float) -> str:
    from astropy.time import Time

    return str(Time(mjd, format="mjd", scale="utc").isot)[:19]


def write_calset(
    directory: str | os.PathLike[str],
    *,
    cal_group_id: str,
    calibrator: dict[str, Any],
    antenna_names: list[str],
    antenna_positions: npt.NDArray[np.float64],
    freq: npt.NDArray[np.float64],
    bandpass: npt.NDArray[np.complex128],
    bandpass_flags: npt.NDArray[np.bool_],
    bandpass_snr: npt.NDArray[np.floating],
    bandpass_err: npt.NDArray[np.floating],
    gain_times: npt.NDArray[np.float64],
    gains: npt.NDArray[np.complex128],
    gain_flags: npt.NDArray[np.bool_],
    gain_snr: npt.NDArray[np.floating],
    gain_err: npt.NDArray[np.floating],
    refant: int,
    interval: float,
    pols: list[str],
    source_ms: str = "",
    field_dir: tuple[float, float] = (0.0, 0.0),
    validity_hours: float = 12.0,
    chan_width: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a calibration set directory and return its manifest.

    bandpass* are [nant, nchan, npol]; gains* are [ntg, nant, npol]; gain_times MJD seconds.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    hist = [f"calibrator {calibrator.get('name', '')}", f"source MS {source_ms}", f"refant {antenna_names[refant]}"]
    common: dict[str, Any] = {
        "antenna_names": antenna_names,
        "antenna_positions": antenna_positions,
        "refant": refant,
        "field_name": str(calibrator.get("name", "")),
        "field_dir": field_dir,
        "ms_name": source_ms,
        "chan_width": chan_width,
        "history": hist,
    }
    t_mid = float(np.mean(gain_times))
    span = float(np.ptp(gain_times)) + interval
    write_caltable(
        d / "bandpass.B", "B Jones", [t_mid], bandpass[None], bandpass_flags[None], bandpass_snr[None],
        bandpass_err[None], freq=freq, interval=span, **common,
    )
    write_caltable(
        d / "gains.G", "G Jones", gain_times, gains[:, :, None, :], gain_flags[:, :, None, :],
        gain_snr[:, :, None, :], gain_err[:, :, None, :], freq=np.array([float(np.mean(freq))]),
        interval=interval, **common,
    )
    obs0 = (float(np.min(gain_times)) - interval / 2) / SECONDS_PER_DAY
    obs1 = (float(np.max(gain_times)) + interval / 2) / SECONDS_PER_DAY
    good_ant = ~(np.all(bandpass_flags, axis=(1, 2)) | np.all(gain_flags, axis=(0, 2)))
    manifest: dict[str, Any] = {
        "format": CALSET_FORMAT,
        "cal_group_id": cal_group_id,
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "calibrator": calibrator,
        "obs_mjd_start": obs0,
        "obs_mjd_end": obs1,
        "mjd_mid": t_mid / SECONDS_PER_DAY,
        "mjd_start": obs0 - validity_hours / 24.0,
        "mjd_end": obs1 + validity_hours / 24.0,
        "num_targets": int(good_ant.sum()),
        "n_antennas": len(antenna_names),
        "refant": antenna_names[refant],
        "tables": {"B": "bandpass.B", "G": "gains.G"},
        "freq_min_hz": float(np.min(freq)),
        "freq_max_hz": float(np.max(freq)),
        "nchan": int(np.size(freq)),
        "pols": pols,
        "source_ms": source_ms,
        "bandpass_flagged_fraction": float(np.mean(bandpass_flags)),
        "gain_flagged_fraction": float(np.mean(gain_flags)),
    }
    if extra:
        manifest.update(extra)
    tmp = d / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp, d / MANIFEST)
    return manifest


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(directory) / MANIFEST
    if not p.is_file():
        raise CalTableError(f"{os.fspath(directory)!r} has no {MANIFEST}")
    try:
        m: dict[str, Any] = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CalTableError(f"{p}: invalid JSON: {exc}") from exc
    for key in ("cal_group_id", "mjd_start", "mjd_end", "mjd_mid", "tables"):
        if key not in m:
            raise CalTableError(f"{p}: manifest lacks {key!r}")
    return m


def read_calset(directory: str | os.PathLike[str]) -> CalSet:
    """Load a calibration set (manifest and both tables)."""
    d = Path(directory)
    m = read_manifest(d)
    b = read_caltable(d / m["tables"]["B"])
    g = read_caltable(d / m["tables"]["G"])
    _, bcube, bflag = table_to_cube(b)
    gtimes, gcube, gflag = table_to_cube(g)
    return CalSet(
        path=d,
        manifest=m,
        antenna_names=b.antenna_names,
        freq=b.freq,
        bandpass=bcube[0],
        bandpass_flags=bflag[0],
        gain_times=gtimes,
        gains=gcube[:, :, 0, :],
        gain_flags=gflag[:, :, 0, :],
    )
