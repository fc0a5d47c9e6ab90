"""Benchmark: our cadence events against turboSETI 2.3.2's ``find_event_pipeline`` on the same ``.dat`` files.

Run by hand:  .venv/bin/python bench/bench_cadence.py [--log2n 18] [--skip-turboseti]

* A simulated ABACAD cadence (actors/searcher/synth_cadence.py: six FBH5 files, 16 × 18.25 s, Δf = −2.79 Hz,
  ``tstart`` 312 s apart) with sky signals only in the ONs (several drifts), RFI in every file
  (drifting and not), a signal that drifts out of the band in the first ON, written to
  bench/out/cadence/ once and reused.  The OFFs are 1.5× noisier than the ONs.
* We search each file (``run.py events`` does it) and write our ``.dat`` files; turboSETI's
  ``find_event_pipeline`` (its own venv, bench/.venv-turboseti, as bench_dedoppler.py creates it)
  reads those same ``.dat`` files, with the .h5 files beside them for the headers, at filter levels
  1, 2 and 3.  Agreement: the set of (file, Top_Hit_#) rows at each level, and the events (Hit_ID).
* turboSETI keeps only the first row listed for each ``Top_Hit_#`` across the cadence (see
  actors/searcher/cadence.py), so at level 3 its table can hold fewer rows than ours; the events
  (``Hit_ID``, the first ON's hit) are compared as they are, the rows as "ours ⊇ theirs".
* Wall time of each step is printed, with the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.searcher.synth_cadence import Signal, make_cadence  # noqa: E402
from bench.bench_dedoppler import TS_PY, ensure_turboseti, load  # noqa: E402

OUT = ROOT / "bench" / "out" / "cadence"

TS_CODE = r"""
import contextlib, io, json, sys
from turbo_seti.find_event.find_event_pipeline import find_event_pipeline
dat_list, h5_list, level, csv_name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with contextlib.redirect_stdout(io.StringIO()):
    df = find_event_pipeline(dat_list, h5_file_list_str=h5_list, filter_threshold=level, number_in_cadence=6,
                             csv_name=csv_name, saving=True, SNR_cut=None)
rows = [] if df is None else [[r["FileID"], int(r["TopHitNum"]), str(r["status"]), str(r["Hit_ID"])]
                              for _, r in df.iterrows()]
print(json.dumps(rows))
"""


def signals(f0: float, foff: float, nchans: int) -> list[Signal]:
    def at(frac: float) -> float:
        return f0 + foff * int(frac * nchans)

    sky = [Signal(at(0.10 + 0.1 * k), d, 25.0 + 5 * k, files=(0, 2, 4)) for k, d in enumerate((0.15, -0.4, 1.1, -2.0))]
    rfi = [Signal(at(0.55), 0.0, 40.0, files=range(6)), Signal(at(0.62), -0.25, 30.0, files=range(6)),
           Signal(at(0.70), 0.8, 30.0, files=(0, 1, 2, 3, 4, 5))]
    edge = [Signal(f0 + foff * (nchans - 1 - 120), -1.0, 30.0, files=range(6))]
    return sky + rfi + edge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log2n", type=int, default=18)
    ap.add_argument("--skip-turboseti", action="store_true")
    args = ap.parse_args()
    nchans = 1 << args.log2n
    cad = OUT / f"2e{args.log2n}"
    from actors.searcher.synth_cadence import FOFF

    files = sorted(cad.glob("*.h5"), key=lambda p: int(p.stem.split("_")[1]))
    if len(files) != 6:
        t = time.perf_counter()
        files = make_cadence(cad, signals(1400.0, FOFF, nchans), nchans=nchans, sigma_off=1.5, fmt="h5")
        print(f"wrote the cadence ({nchans} channels × 6) in {time.perf_counter() - t:.1f} s", flush=True)
    print(f"load before: {load()}", flush=True)
    out = cad / "ours"
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "events", *map(str, files), "--out", str(out), "--quiet"],
        capture_output=True, text=True,
    )
    wall = time.perf_counter() - t
    if r.returncode:
        raise SystemExit(r.stderr)
    print(f"ours: run.py events (6 searches, filter levels, CSV/JSON, plots): {wall:.2f} s")
    print(r.stdout)
    ours_rows = list(csv.DictReader((out / "events.csv").open()))
    ours_events = sorted({row["Hit_ID"] for row in ours_rows})
    dats = [out / f"{p.stem}.dat" for p in files]
    if args.skip_turboseti:
        return
    ensure_turboseti()
    dat_list = cad / "dats.lst"
    dat_list.write_text("".join(f"{d}\n" for d in dats))
    # find_event_pipeline finds each .dat's header in the .h5 of the same name
    for p in files:
        link = out / p.name
        if not link.exists():
            link.symlink_to(p)
    h5_list = cad / "h5s.lst"
    h5_list.write_text("".join(f"{out / p.name}\n" for p in files))
    from actors.searcher.cadence import find_events, on_mask, read_dat

    mask = on_mask(6)
    parsed = [read_dat(d.read_text()) for d in dats]
    report = []
    for level in (1, 2, 3):
        ours = find_events(parsed, mask, filter_level=level)
        ours_set = {(parsed[r.file_index].file_id, r.hit.top_hit_num) for r in ours.rows}
        t = time.perf_counter()
        cp = subprocess.run(
            [str(TS_PY), "-c", TS_CODE, str(dat_list), str(h5_list), str(level), str(cad / f"ts_f{level}.csv")],
            capture_output=True, text=True,
        )
        ts_wall = time.perf_counter() - t
        if cp.returncode:
            raise SystemExit(cp.stderr[-3000:])
        theirs = json.loads(cp.stdout.strip().splitlines()[-1])
        theirs_set = {(f, n) for f, n, _, _ in theirs}
        line = {
            "level": level,
            "ours_rows": len(ours_set),
            "turboseti_rows": len(theirs_set),
            "same_rows": ours_set == theirs_set,
            "ours_contains_theirs": theirs_set <= ours_set,
            "turboseti_seconds": round(ts_wall, 2),
        }
        if level == 3:
            line["ours_events"] = ours.events
            line["turboseti_events"] = sorted({h for _, _, _, h in theirs})
            line["same_events"] = sorted(ours.events) == line["turboseti_events"]
        report.append(line)
        print(json.dumps(line), flush=True)
    assert ours_events == sorted(report[-1]["ours_events"])  # the CLI's CSV = the pure function's
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
