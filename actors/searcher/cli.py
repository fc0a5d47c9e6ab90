"""``search FILE [--max-drift 4] [--min-snr 10] [--out DIR]``: the pipeline on a local file, no service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .filterbank import FilterbankError
from .pipeline import search_file, write_exports

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="search", description="De-Doppler search of a SIGPROC .fil or FBH5 .h5 filterbank file."
    )
    p.add_argument("file", type=Path, help="the .fil or .h5 file")
    p.add_argument("--max-drift", type=float, default=4.0, help="largest |drift rate| searched, Hz/s (≤ 50)")
    p.add_argument("--min-snr", type=float, default=10.0, help="hit threshold (turboSETI SNR)")
    p.add_argument("--out", type=Path, default=None, help="directory for the exports (default: FILE stem)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv: list[str]) -> int:
    """Run the search; 0 on success, 2 on a bad file or bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else Path(args.file.stem + "_search")

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rcoarse channels {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    try:
        result = search_file(args.file, max_drift=args.max_drift, min_snr=args.min_snr, progress=progress)
        paths = write_exports(result, args.file, out)
    except FilterbankError as exc:
        print(f"search: {args.file}: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"search: {exc}", file=sys.stderr)
        return 2
    r = result.to_results()
    print(
        f"{result.source_name}: {r['raw_hits']} raw hits, {r['filtered_hits']} filtered, "
        f"{r['candidates']} candidates in {r['processing_time_seconds']:.2f} s "
        f"(drift resolution {result.drift_rate_resolution:.5f} Hz/s)"
    )
    for c in r["top_candidates"][:10]:
        print(
            f"  {c['frequency_hz'] / 1e6:.6f} MHz  drift {c['drift_rate']:+.4f} Hz/s  SNR {c['snr']:.1f}  "
            f"{c['classification']}  {c['interestingness']:.2f}  {c['rfi_source']}"
        )
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
