"""``python -m actors.precompile``: compile every numba kernel of the actors into numba's on-disk cache.

``make install`` runs it. Every kernel is ``cache=True``, so what is compiled once is loaded from
``__pycache__`` by every later process, but numba compiles on first use: without this, the first
search of a fresh install waited 30-60 s for the de-Doppler kernels, and the first DSA-110 group
for the conversion, flagging, calibration and imaging kernels (the first full-size calibrator
group of a fresh checkout took 86.6 s against ~65 s once cached, `bench/bench_image.py`).

The kernels are compiled by running them, on the argument types production passes: a tiny
de-Doppler search (``actors.searcher.actor.warm_up``), and a tiny DSA-110 calibrator group taken
the actors' way - simulated UVH5 subbands, converted to a Measurement Set (watcher), solved
(calibrator), calibrated, peeled and CLEANed (imager). Running it again is quick: the cache is
reused. `kernels_cached` is what ``run.py`` asks before it says "first start: compiling".
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the modules with numba kernels (``@numba.njit(cache=True)``); numba writes one ``.nbi`` index
#: per kernel into the module's ``__pycache__``
#: what `run.py search` (the de-Doppler search alone) compiles
SEARCH_KERNEL_MODULES = (
    "actors/searcher/dedoppler.py",
    "actors/searcher/hits.py",
    "actors/searcher/pipeline.py",
)
KERNEL_MODULES = (
    *SEARCH_KERNEL_MODULES,
    "actors/watcher/convert.py",
    "astro/flagging.py",
    "astro/skymodel.py",
    "astro/stefcal.py",
    "astro/applycal.py",
    "actors/imager/selfcal.py",
    "actors/imager/weighting.py",
    "actors/imager/clean.py",
    "actors/imager/field_peel.py",
    "actors/imager/averaging.py",
    "sim/observation.py",
)


def kernels_cached(modules: tuple[str, ...] = KERNEL_MODULES) -> bool:
    """Whether numba's cache holds kernels of every one of `modules` (a module whose kernels were
    never run has no index file: that module's first use will compile)."""
    for module in modules:
        path = ROOT / module
        if not any((path.parent / "__pycache__").glob(f"{path.stem}.*.nbi")):
            return False
    return True


def dsa_warm_up(scratch: Path) -> None:
    """One tiny calibrator group (16 antennas, 8 channels per subband) through the watcher's
    conversion, the calibrator's solve and the imager: every DSA-110 kernel on production's types."""
    import numpy as np

    from actors.calibrator.work import solve_group
    from actors.imager.field_peel import Geometry, predict_basis
    from actors.imager.pipeline import ImagingParams
    from actors.imager.work import image_ms
    from actors.watcher.convert import convert_group
    from astro.catalogue import Catalogue
    from sim.observation import simulate

    group = simulate(
        scratch / "incoming",
        1,
        "2025-10-24T00:00:00",
        None,
        n_ants=16,
        n_channels=8,
        seed=1,
        calibrator="3C286",
        jitter_s=0,
        catalogue=Catalogue(()),
        run_check=False,
    ).groups[0]
    ms = convert_group(group.files, scratch / "ms")
    calset = solve_group(str(ms.path), str(scratch / "calsets"), "warm-up")
    if calset is None:
        raise RuntimeError("the warm-up group has no calibrator in its tile")
    params = ImagingParams(imsize=256, cellsize_arcsec=8.0, niter=500, max_major=2, peel_field_max=8)
    image_ms(str(ms.path), [calset["path"]], str(scratch / "warm-up.fits"), asdict(params))
    # a 16-antenna array's far sidelobes are too high for field peeling (it runs for the full
    # array): its prediction kernel on a two-integration geometry of production's types
    geom = Geometry(
        uvw=np.zeros((2, 3, 3)),
        freq=np.arange(8, dtype=np.float64) * 244140.625 + 1.4e9,
        mjd=np.full(2, 60600.0),
        phase_dir=(0.0, 0.5),
        lon_deg=-118.28,
        dish_diameter=4.65,
        chan_avg=4,
    )
    predict_basis(geom, np.array([[0.0, 0.0, 1.0]]), np.ones((1, 2, geom.nco)), np.zeros(1, np.int64))


def main() -> int:
    if kernels_cached():
        print("numba kernels: already in numba's cache", file=sys.stderr)
    else:
        print(
            "numba kernels: compiling once (de-Doppler search, then the DSA-110 conversion, calibration and"
            " imaging; about 1-2 minutes on 2 cores) ...",
            file=sys.stderr,
            flush=True,
        )
    from actors.searcher.actor import warm_up

    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        warm_up(Path(tmp) / "searcher")
        t_search = time.perf_counter() - t
        dsa_warm_up(Path(tmp) / "dsa")
    took = time.perf_counter() - t
    print(
        f"numba kernels ready in {took:.1f} s (search {t_search:.1f} s, DSA-110 {took - t_search:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
