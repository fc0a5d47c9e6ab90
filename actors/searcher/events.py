"""The cadence step end to end: hits of each file (searched when not yet searched), turboSETI's filter
levels (:mod:`.cadence`), the events table as CSV and JSON, and one stacked waterfall per event.

The command line (``run.py events``) and the API's cadence jobs both call :func:`run_events`, so the
same files give the same events through either.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .cadence import EVENTS_CSV_COLUMNS, CadenceOutcome, DatFile, cadence_label, events_csv_rows, find_events, read_dat

__all__ = ["EVENTS_CSV", "EVENTS_JSON", "dat_path", "hits_of", "run_events", "write_events"]

EVENTS_CSV = "events.csv"
EVENTS_JSON = "events.json"


def dat_path(source: Path, out_dir: Path) -> Path:
    return out_dir / f"{source.stem or 'hits'}.dat"


def hits_of(
    source: Path, out_dir: Path, *, max_drift: float, min_snr: float, log: Callable[[str], None] | None = None
) -> DatFile:
    """The file's ``.dat`` in ``out_dir``: reused when newer than the file and searched with the same
    ``max_drift`` and ``min_snr`` (both recorded in its header line / sidecar), else searched now."""
    dat = dat_path(source, out_dir)
    stamp = dat.with_suffix(".dat.params")
    params = f"max_drift={max_drift!r} min_snr={min_snr!r}"
    if (
        dat.exists()
        and stamp.exists()
        and dat.stat().st_mtime >= source.stat().st_mtime
        and stamp.read_text() == params
    ):
        if log:
            log(f"{source.name}: hits from {dat}")
        return read_dat(dat.read_text())
    from .export import dat_text
    from .filterbank import FilterbankError
    from .pipeline import search_file

    try:
        result = search_file(source, max_drift=max_drift, min_snr=min_snr)
    except FilterbankError as exc:
        raise FilterbankError(f"{source.name}: {exc}") from None
    text = dat_text(result, dat.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic(dat, text.encode())
    _atomic(stamp, params.encode())
    if log:
        log(f"{source.name}: searched, {len(result.hits)} hits in {result.processing_time_seconds:.2f} s")
    return read_dat(text)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def events_csv_text(outcome: CadenceOutcome) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["", *EVENTS_CSV_COLUMNS])
    w.writerows(events_csv_rows(outcome))
    return buf.getvalue()


def events_json(outcome: CadenceOutcome, names: Sequence[str], plots: dict[str, str]) -> dict[str, Any]:
    """Every ON hit with its cadence label, and the events with their rows."""
    rows_by_event: dict[str, list[dict[str, Any]]] = {}
    csv_rows = events_csv_rows(outcome)
    for r, raw in zip(outcome.rows, csv_rows, strict=True):
        d = dict(zip(["index", *EVENTS_CSV_COLUMNS], raw, strict=True))
        d["file"] = names[r.file_index]
        rows_by_event.setdefault(r.hit_id or f"row_{r.index}", []).append(d)
    hits = []
    for i, (dat, is_on) in enumerate(zip(outcome.files, outcome.on, strict=True)):
        if not is_on:
            continue
        for h in dat.hits:
            cls, reason, band = cadence_label(outcome, (i, h.top_hit_num))
            hits.append(
                {
                    "file": names[i],
                    "top_hit_num": h.top_hit_num,
                    "frequency_mhz": h.freq_mhz,
                    "drift_rate": h.drift_rate,
                    "snr": h.snr,
                    "classification": cls,
                    "reason": reason,
                    "rfi_source": band,
                    "rfi_in_range": outcome.rfi_in_range.get((i, h.top_hit_num)),
                }
            )
    events = []
    for hit_id in outcome.events if outcome.filter_level == 3 else list(rows_by_event):
        rows = rows_by_event.get(hit_id, [])
        first = rows[0] if rows else {}
        key = (outcome.rows[0].file_index, 0)
        for r in outcome.rows:
            if r.hit_id == hit_id:
                key = (r.file_index, r.hit.top_hit_num)
                break
        cls, reason, band = cadence_label(outcome, key) if rows else ("", "", "")
        events.append(
            {
                "hit_id": hit_id,
                "frequency_mhz": first.get("Freq"),
                "drift_rate": first.get("DriftRate"),
                "snr": first.get("SNR"),
                "classification": cls,
                "reason": reason,
                "rfi_source": band,
                "plot": plots.get(hit_id),
                "rows": rows,
            }
        )
    return {
        "filter_level": outcome.filter_level,
        "files": [{"file": n, "on": o, "mjd": d.mjd, "n_hits": len(d.hits)} for n, o, d in
                  zip(names, outcome.on, outcome.files, strict=True)],
        "counts": {
            "level1": len(outcome.level1),
            "level2": len(outcome.level2),
            "events": len(outcome.events),
            "candidates": sum(1 for e in events if e["classification"] == "CANDIDATE_ET"),
        },
        "events": events,
        "hits": hits,
    }


def write_events(
    outcome: CadenceOutcome,
    sources: Sequence[Path],
    out_dir: Path,
    *,
    plots: bool = True,
    max_plots: int = 50,
) -> dict[str, Path]:
    """``events.csv``, ``events.json`` and ``plots/<Hit_ID>.png`` in ``out_dir``; returns name → path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in sources]
    paths: dict[str, Path] = {"events_csv": out_dir / EVENTS_CSV, "events_json": out_dir / EVENTS_JSON}
    plot_files: dict[str, str] = {}
    if plots and outcome.filter_level == 3 and outcome.events:
        from .cadence_plot import plot_event

        for hit_id in outcome.events[:max_plots]:
            row = next(r for r in outcome.rows if r.hit_id == hit_id)
            png = out_dir / "plots" / f"{hit_id}.png"
            plot_event(
                sources,
                outcome.on,
                row.hit.freq_mhz,
                row.hit.drift_rate,
                f"{hit_id}: {row.hit.freq_mhz:.6f} MHz, drift {row.hit.drift_rate:+.4f} Hz/s, SNR {row.hit.snr:.1f}",
                png,
            )
            plot_files[hit_id] = f"plots/{png.name}"
            paths[f"plot:{hit_id}"] = png
    _atomic(paths["events_csv"], events_csv_text(outcome).encode())
    _atomic(paths["events_json"], json.dumps(events_json(outcome, names, plot_files), indent=2).encode())
    return paths


def run_events(
    sources: Sequence[Path],
    on: Sequence[bool],
    out_dir: Path,
    *,
    max_drift: float = 4.0,
    min_snr: float = 10.0,
    filter_level: int = 3,
    snr_cut: float | None = None,
    min_drift: float | None = None,
    max_drift_cut: float | None = None,
    check_zero_drift: bool = False,
    plots: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[CadenceOutcome, dict[str, Path]]:
    """Hits of each file (searching those not searched yet), the filter levels, and the exports."""
    dats = [hits_of(s, out_dir, max_drift=max_drift, min_snr=min_snr, log=log) for s in sources]
    outcome = find_events(
        dats,
        on,
        filter_level=filter_level,
        snr_cut=snr_cut,
        min_drift=min_drift,
        max_drift=max_drift_cut,
        check_zero_drift=check_zero_drift,
    )
    return outcome, write_events(outcome, sources, out_dir, plots=plots)
