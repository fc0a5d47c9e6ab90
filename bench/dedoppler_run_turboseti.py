"""Child process for bench_dedoppler.py, run by turboSETI's own venv: FindDoppler on one file, JSON out."""

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
    path, max_drift, min_snr, out_dir, n_coarse = (sys.argv[1], float(sys.argv[2]), float(sys.argv[3]),
                                                   sys.argv[4], int(sys.argv[5]))
    os.makedirs(out_dir, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):
        from turbo_seti.find_doppler.find_doppler import FindDoppler

        t0 = time.perf_counter()
        fd = FindDoppler(path, max_drift=max_drift, snr=min_snr, out_dir=out_dir, n_coarse_chan=n_coarse,
                         log_level_int=logging.WARNING)
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
    print(json.dumps({"search_seconds": t1 - t0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "hits": hits, "dat": dat}))


if __name__ == "__main__":
    main()
