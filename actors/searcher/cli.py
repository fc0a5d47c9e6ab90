"""``search FILE [--max-drift 4] [--min-snr 10] [--out DIR] [--formats ...]``: the pipeline on a local
file, no service.  turboSETI's own flags work with the same meaning (``-M/--max_drift``, ``-s/--snr``,
``-o/--out_dir``, ``-n/--n_coarse_chan``), so a turboSETI command line runs unchanged, and
``--formats dat`` writes only what turboSETI writes (the ``.dat``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas.seti import EXPORT_FILES

from .filterbank import FilterbankError, open_filterbank

__all__ = ["build_parser", "entry", "main"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="search", description="De-Doppler search of a SIGPROC .fil or FBH5 .h5 filterbank file."
    )
    p.add_argument("file", type=Path, help="the .fil or .h5 file")
    p.add_argument(
        "-M", "--max-drift", "--max_drift", dest="max_drift", type=float, default=4.0,
        help="largest |drift rate| searched, Hz/s (≤ 50)",
    )
    p.add_argument(
        "-s", "--min-snr", "--snr", dest="min_snr", type=float, default=10.0,
        help="hit threshold, on turboSETI's SNR unless --snr-cut-on refined",
    )
    p.add_argument(
        "--snr-cut-on", choices=("taylor", "refined"), default="taylor",
        help="which SNR --min-snr cuts on: turboSETI's (taylor, default) or the refined straight-track SNR",
    )
    p.add_argument(
        "-o", "--out", "--out_dir", dest="out", type=Path, default=None,
        help="directory for the exports (default: FILE stem + _search)",
    )
    p.add_argument(
        "-n", "--n_coarse_chan", "--n-coarse-chan", dest="n_coarse_chan", type=int, default=None,
        help="number of coarse channels in the file (default: from the header, or 2^20-channel blocks)",
    )
    p.add_argument(
        "--formats", default=None,
        help=f"comma-separated exports to write (default: all): {', '.join(EXPORT_FILES)}; 'dat' alone is turboSETI's output",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def announce_compile() -> None:
    """On a fresh install numba compiles the kernels on first use: say so rather than sit silent."""
    from actors.precompile import SEARCH_KERNEL_MODULES, kernels_cached

    if not kernels_cached(SEARCH_KERNEL_MODULES):
        print(
            "first start: compiling the de-Doppler kernels with numba (once per install, about 30-60 s on "
            "2 cores; later starts load them from the cache in about a second)",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str]) -> int:
    """Run the search; 0 on success, 2 on a bad file or bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    announce_compile()
    from .pipeline import search_file, write_exports  # numba, deferred until the arguments are valid

    out = args.out if args.out is not None else Path(args.file.stem + "_search")

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rcoarse channels {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    try:
        coarse_size = None
        if args.n_coarse_chan is not None:
            nchans = open_filterbank(args.file).nchans
            if args.n_coarse_chan < 1 or nchans % args.n_coarse_chan:
                raise ValueError(f"-n {args.n_coarse_chan} does not divide the file's {nchans} channels")
            coarse_size = nchans // args.n_coarse_chan
        result = search_file(
            args.file,
            max_drift=args.max_drift,
            min_snr=args.min_snr,
            progress=progress,
            coarse_size=coarse_size,
            cut_on=args.snr_cut_on,
        )
        paths = write_exports(result, args.file, out, formats)
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


def entry() -> int:
    """The console script's entry point."""
    return main(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
