"""Child process for bench_dedoppler.py, run by turboSETI's own venv: FindDoppler on one file, JSON out.

``dedoppler_run_turboseti.py FILE MAX_DRIFT MIN_SNR OUT_DIR N_COARSE [WARM_FILE]``: with ``WARM_FILE`` a
small file is searched first, in this process, so that numba's JIT compilation of turboSETI's kernels
(they are not cached on disk) is reported as ``warmup_seconds`` and not counted in ``search_seconds`` —
the same method as for our searcher.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import resource
import sys
import time


def main() -> None:
    path, max_drift, min_snr, out_dir, n_coarse = (
        sys.argv[1],
        float(sys.argv[2]),
        float(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]),
    )
    warm = sys.argv[6] if len(sys.argv) > 6 else None
    os.makedirs(out_dir, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        from turbo_seti.find_doppler.find_doppler import FindDoppler

        t_warm = time.perf_counter()
        if warm:
            warm_dir = os.path.join(out_dir, "warm")
            os.makedirs(warm_dir, exist_ok=True)
            FindDoppler(
                warm, max_drift=max_drift, snr=min_snr, out_dir=warm_dir, n_coarse_chan=1, log_level_int=logging.WARNING
            ).search()
        t0 = time.perf_counter()
        fd = FindDoppler(
            path,
            max_drift=max_drift,
            snr=min_snr,
            out_dir=out_dir,
            n_coarse_chan=n_coarse,
            log_level_int=logging.WARNING,
        )
        fd.search()
        t1 = time.perf_counter()
    dat = os.path.join(out_dir, os.path.basename(path).rsplit(".", 1)[0] + ".dat")
    hits = []
    with open(dat) as fh:
        for line in fh:
            if line.startswith("#") or not line.strip():
                continue
            f = line.split()
            hits.append({"drift_rate": float(f[1]), "snr": float(f[2]), "frequency_mhz": float(f[3])})
    print(
        json.dumps(
            {
                "search_seconds": t1 - t0,
                "warmup_seconds": t0 - t_warm,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "hits": hits,
                "dat": dat,
            }
        )
    )


if __name__ == "__main__":
    main()
