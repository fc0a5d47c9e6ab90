"""``simulate``: write simulated DSA-110 subband files (``python run.py simulate ...``).

    simulate --out DIR --groups N --start ISO --dec DEG [--antennas 96] [--channels 48]
             [--seed S] [--rfi] [--calibrator NAME | --with-calibrator] [--epochs K]
             [--epoch-spacing-days D] [--ese N] [--variable N] [--ese-start-mjd MJD]
             [--ese-duration-days D] [--missing 3,7] [--no-noise] [--no-gains] [--jitter S]
             [--min-apparent-mjy F]

Prints one JSON line per group (group id, files, calibrator) and a summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from astro.calibrators import CalibratorError
from astro.instrument import N_SUBBANDS
from sim.observation import SIDEREAL_DAY_D, SimulationError, simulate


def _iso_time(text: str) -> str:
    """An ISO 8601 time, checked here so a mistake is one line, not astropy's list of formats."""
    from datetime import datetime

    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 UTC time: {text!r} (for example 2025-10-24T14:00:00)"
        ) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    from settings import OneLineParser

    p = OneLineParser(prog="run.py simulate", description="Write simulated DSA-110 UVH5 subband files.")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--groups", type=int, default=1, help="consecutive ~5-minute groups per epoch")
    p.add_argument("--start", default=None, type=_iso_time, help="ISO UTC start time (default: now)")
    p.add_argument("--dec", type=float, default=None, help="pointing declination, degrees")
    p.add_argument("--antennas", type=int, default=96, help="number of antennas (<= 96)")
    p.add_argument("--channels", type=int, default=48, help="channels per subband")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rfi", action="store_true", help="add narrowband RFI")
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calibrator", default=None, help="centre the first group on this calibrator's transit")
    cal.add_argument("--with-calibrator", action="store_true", help="the brightest calibrator near --dec")
    p.add_argument("--epochs", type=int, default=1, help="repeat the groups on this many days")
    p.add_argument("--epoch-spacing-days", type=float, default=SIDEREAL_DAY_D, help="default: one sidereal day")
    p.add_argument("--ese", type=int, default=0, help="inject ESE-like events into N bright sources")
    p.add_argument("--variable", type=int, default=0, help="inject sinusoidal variability into N sources")
    p.add_argument("--ese-start-mjd", type=float, default=None)
    p.add_argument("--ese-duration-days", type=float, default=None)
    p.add_argument("--missing", default="", help="comma-separated subbands not to write, e.g. 3,7")
    p.add_argument("--no-noise", action="store_true")
    p.add_argument("--no-gains", action="store_true")
    p.add_argument("--jitter", type=float, default=5.0, help="max file-timestamp jitter, seconds")
    p.add_argument("--min-apparent-mjy", type=float, default=2.0, help="faintest apparent source simulated")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        missing = {int(s) for s in args.missing.split(",") if s.strip()}
    except ValueError:
        print("error: --missing takes comma-separated subband numbers", file=sys.stderr)
        return 2
    try:
        res = simulate(
            args.out,
            args.groups,
            args.start,
            args.dec,
            n_ants=args.antennas,
            n_channels=args.channels,
            seed=args.seed,
            rfi=args.rfi,
            calibrator=args.calibrator or (True if args.with_calibrator else None),
            noise=not args.no_noise,
            gains=not args.no_gains,
            jitter_s=args.jitter,
            epochs=args.epochs,
            epoch_spacing_days=args.epoch_spacing_days,
            n_ese=args.ese,
            n_variable=args.variable,
            ese_start_mjd=args.ese_start_mjd,
            ese_duration_days=args.ese_duration_days,
            min_apparent_jy=args.min_apparent_mjy / 1000.0,
            subbands=[s for s in range(N_SUBBANDS) if s not in missing],
        )
    except (SimulationError, CalibratorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for g in res.groups:
        print(json.dumps({"group_id": g.group_id, "files": len(g.files), "mid_mjd": g.mid_mjd,
                          "calibrator": g.calibrator, "sources": g.n_sources}))
    print(json.dumps({"out": str(res.out_dir), "groups": len(res.groups), "catalogue": str(res.catalogue_path),
                      "injected": res.injected}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
