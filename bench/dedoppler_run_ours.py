"""Child process for bench_dedoppler.py: search one file with our searcher, print JSON on stdout.

``dedoppler_run_ours.py FILE MAX_DRIFT MIN_SNR [WARM_FILE]``: with ``WARM_FILE`` a small file is searched
first, in this process, so that loading numba's cached machine code (or compiling it, on a cold cache)
is reported as ``warmup_seconds`` and not counted in ``search_seconds``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    path, max_drift, min_snr = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    warm = sys.argv[4] if len(sys.argv) > 4 else None
    t_import = time.perf_counter()
    from actors.searcher.pipeline import search_file

    t_warm = time.perf_counter()
    if warm:
        search_file(warm, max_drift=max_drift, min_snr=min_snr)
    t0 = time.perf_counter()
    r = search_file(path, max_drift=max_drift, min_snr=min_snr)
    t1 = time.perf_counter()
    print(
        json.dumps(
            {
                "search_seconds": t1 - t0,
                "warmup_seconds": t0 - t_warm,
                "import_seconds": t_warm - t_import,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "hits": [
                    {
                        "frequency_mhz": h.frequency_hz / 1e6,
                        "drift_rate": h.drift_rate,
                        "snr": h.snr,
                        "snr_taylor": h.snr_taylor,
                        "classification": h.classification,
                    }
                    for h in r.hits
                ],
                "drift_rate_resolution": r.drift_rate_resolution,
            }
        )
    )


if __name__ == "__main__":
    main()
