"""Simulated ON/OFF cadences (ABACAD), for the cadence tests and bench/bench_cadence.py.

Each file is a Breakthrough-Listen-like high-resolution filterbank (Δf = −2.79 Hz, 16 × 18.25 s);
files start ``OBS_S + SLEW_S`` apart, and their ``tstart`` says so.  A signal on the sky keeps
drifting between files: in file ``i`` it starts at ``f0 + drift · (tstart_i − tstart_0)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from actors.searcher.synth import Tone, make_filterbank

FOFF = -2.7939677238464355e-06
TSAMP = 18.253611008
NTIME = 16
OBS_S = NTIME * TSAMP
SLEW_S = 20.0
MJD0 = 60000.0


@dataclass
class Signal:
    """A signal at ``freq_mhz`` (at the first file's start) drifting ``drift`` Hz/s, in the files listed."""

    freq_mhz: float
    drift: float
    snr: float
    files: Sequence[int]


def file_start_s(i: int) -> float:
    return i * (OBS_S + SLEW_S)


def make_cadence(
    out: Path,
    signals: Sequence[Signal],
    *,
    n_files: int = 6,
    nchans: int = 1 << 14,
    fch1: float = 1400.0,
    sigma_off: float = 1.0,
    seed: int = 1,
    fmt: str = "fil",
) -> list[Path]:
    """Write ``n_files`` files (ON first, alternating); OFF noise is ``sigma_off`` times the ON noise
    (a signal keeps its power, so its SNR in an OFF is ``snr / sigma_off``)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        on = i % 2 == 0
        t = file_start_s(i)
        sigma = 10.0 * (1.0 if on else sigma_off)
        # the same power in every file: an SNR given for the ONs is lower in noisier OFFs
        tones = [
            Tone(s.freq_mhz + s.drift * t / 1e6, s.drift, s.snr * (1.0 if on else 1.0 / sigma_off))
            for s in signals
            if i in s.files
        ]
        paths.append(
            make_filterbank(
                out / f"{'ON' if on else 'OFF'}_{i}.{fmt}",
                nchans=nchans,
                ntime=NTIME,
                fch1=fch1,
                foff=FOFF,
                tsamp=TSAMP,
                tones=tones,
                sigma=sigma,
                mean=100.0,
                seed=seed * 100 + i,
                source_name="TARGET" if on else f"OFF{i}",
                extra_header={"tstart": MJD0 + t / 86400.0},
            )
        )
    return paths
