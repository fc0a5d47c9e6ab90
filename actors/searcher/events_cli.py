"""``events ON1 OFF1 ON2 OFF2 ON3 OFF3 [--out DIR]``: ON/OFF cadence events from local files, no service.

Files are given in the order observed (or one per line in ``--list FILE``), ON first and alternating
unless ``--off-first`` or ``--pattern 101010``.  Each file's hits are read from ``DIR/<stem>.dat`` if
it was searched there with the same parameters, else searched (same defaults as ``search``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .filterbank import FilterbankError

__all__ = ["build_parser", "entry", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="events", description="turboSETI-style ON/OFF cadence events.")
    p.add_argument("files", type=Path, nargs="*", help=".fil/.h5 files in the order observed")
    p.add_argument("--list", type=Path, default=None, help="a text file naming the files, one a line")
    p.add_argument("-o", "--out", "--out_dir", dest="out", type=Path, default=Path("events_out"))
    p.add_argument("-M", "--max-drift", "--max_drift", dest="max_drift", type=float, default=4.0)
    p.add_argument("-s", "--min-snr", "--snr", dest="min_snr", type=float, default=10.0)
    p.add_argument("--filter-level", "--filter_threshold", dest="filter_level", type=int, choices=(1, 2, 3), default=3)
    p.add_argument("--snr-cut", "--SNR_cut", dest="snr_cut", type=float, default=None, help="turboSETI's SNR_cut")
    p.add_argument("--min-drift-rate", dest="min_drift_rate", type=float, default=None)
    p.add_argument("--max-drift-rate", dest="max_drift_rate", type=float, default=None)
    p.add_argument("--check-zero-drift", action="store_true", help="keep hits of exactly zero drift at level 1")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--off-first", action="store_true", help="the cadence starts with an OFF")
    order.add_argument("--pattern", default=None, help="ON/OFF flags in order, e.g. 101010 or 110100")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str]) -> int:
    """0 on success, 2 on a bad file or bad arguments."""
    args = build_parser().parse_args(argv)
    files = list(args.files)
    if args.list is not None:
        try:
            files += [Path(line.strip()) for line in args.list.read_text().splitlines() if line.strip()]
        except OSError as exc:
            print(f"events: {exc}", file=sys.stderr)
            return 2
    if len(files) < 2:
        print("events: give at least two files (an ON and an OFF), in the order observed", file=sys.stderr)
        return 2
    from .cadence import on_mask
    from .cli import announce_compile
    from .events import run_events

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    try:
        pattern = [c == "1" for c in args.pattern] if args.pattern else None
        if args.pattern and set(args.pattern) - {"0", "1"}:
            raise ValueError("--pattern takes 1 (ON) and 0 (OFF) only")
        on = on_mask(len(files), first="OFF" if args.off_first else "ON", pattern=pattern)
        announce_compile()
        outcome, paths = run_events(
            files,
            on,
            args.out,
            max_drift=args.max_drift,
            min_snr=args.min_snr,
            filter_level=args.filter_level,
            snr_cut=args.snr_cut,
            min_drift=args.min_drift_rate,
            max_drift_cut=args.max_drift_rate,
            check_zero_drift=args.check_zero_drift,
            plots=not args.no_plots,
            log=log,
        )
    except FilterbankError as exc:
        print(f"events: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"events: {exc}", file=sys.stderr)
        return 2
    print(
        f"level 1: {len(outcome.level1)} hits, level 2: {len(outcome.level2)} not in any OFF, "
        f"level 3: {len(outcome.events)} events in every ON"
    )
    for r in outcome.rows[:20]:
        print(f"  {r.hit_id or '-'}  on_table_{r.on_number}  {r.hit.freq_mhz:.6f} MHz  {r.hit.drift_rate:+.4f} Hz/s  SNR {r.hit.snr:.1f}")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


def entry() -> int:
    """The console script's entry point."""
    return main(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
