"""Synthetic filterbanks: Gaussian (or exponential) noise plus drifting tones at a chosen SNR.

A tone's ``snr`` is in the searcher's (turboSETI's) units: the expected excess of its de-Doppler path
sum over the 5–95 % trimmed std of the integrated spectrum.  For Gaussian pixel noise σ over ``T``
time steps that std is 0.789·√T·σ, so the tone adds ``snr·0.789·σ/√T`` to one channel per time step,
the channel nearest its track ``f(t) = f0 + drift·t·t_samp``.

Files are written one spectrum at a time, so a 1 GB file needs one spectrum of memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .filterbank import coarse_channel_size
from .filterbank_writer import FilWriter, write_h5

__all__ = ["TRIMMED_STD_FACTOR", "Tone", "make_filterbank", "tone_amplitude"]

TRIMMED_STD_FACTOR = 0.789313  # std of N(0,1) restricted to its 5-95 % range


@dataclass
class Tone:
    """A drifting narrowband signal: start frequency (MHz, at the first time step), drift (Hz/s), SNR."""

    freq_mhz: float
    drift_rate: float = 0.0
    snr: float = 20.0


def tone_amplitude(snr: float, sigma: float, ntime: int) -> float:
    return snr * TRIMMED_STD_FACTOR * sigma / np.sqrt(ntime)


def default_levels(nbits: int) -> tuple[float, float]:
    """(mean, sigma) of the noise for each sample size, chosen to use the integer range well."""
    return {8: (64.0, 8.0), 16: (20000.0, 1000.0)}.get(nbits, (100.0, 10.0))


def make_filterbank(
    path: str | os.PathLike[str],
    *,
    nchans: int = 4096,
    ntime: int = 16,
    fch1: float = 1400.0,
    foff: float = -2.7939677238464355e-06,
    tsamp: float = 18.253611008,
    tones: Sequence[Tone] = (),
    nbits: int = 32,
    nifs: int = 1,
    noise: str = "gaussian",
    mean: float | None = None,
    sigma: float | None = None,
    seed: int = 0,
    source_name: str = "SYNTHETIC",
    dc_spike: float = 0.0,
    coarse_size: int | None = None,
    fmt: str | None = None,
    extra_header: dict[str, Any] | None = None,
) -> Path:
    """Write a synthetic ``.fil`` or ``.h5`` (by ``fmt`` or the suffix) and return its path.

    ``dc_spike`` adds that many σ to the central (file-order ``n // 2``) channel of every coarse channel.
    All IFs get the same tones with independent noise.
    """
    p = Path(path)
    fmt = fmt or ("h5" if p.suffix == ".h5" else "fil")
    m0, s0 = default_levels(nbits)
    mean = m0 if mean is None else mean
    sigma = s0 if sigma is None else sigma
    rng = np.random.default_rng(seed)
    header: dict[str, Any] = {"fch1": fch1, "foff": foff, "tsamp": tsamp, "source_name": source_name}
    header.update(extra_header or {})
    df_hz = foff * 1e6
    n = coarse_channel_size(nchans, coarse_size)
    dc = np.arange(n // 2, nchans, n)

    def spectrum(t: int) -> np.ndarray:
        if noise == "gaussian":
            s = rng.standard_normal((nifs, nchans), dtype=np.float32) * np.float32(sigma) + np.float32(mean)
        elif noise == "exponential":
            s = rng.standard_exponential((nifs, nchans), dtype=np.float32) * np.float32(sigma)
            s += np.float32(mean - sigma)
        else:
            raise ValueError(f"unknown noise {noise!r}")
        for tone in tones:
            amp = tone_amplitude(tone.snr, sigma, ntime)
            f = tone.freq_mhz + tone.drift_rate * t * tsamp / 1e6
            c = round((f - fch1) / foff)
            if 0 <= c < nchans:
                s[:, c] += np.float32(amp)
        if dc_spike:
            s[:, dc] += np.float32(dc_spike * sigma)
        return s

    if fmt == "fil":
        with FilWriter(p, header, nchans=nchans, nifs=nifs, nbits=nbits) as w:
            for t in range(ntime):
                w.write(spectrum(t)[None])
    else:
        data = np.stack([spectrum(t) for t in range(ntime)])
        write_h5(p, header, data, nbits=nbits)
    _ = df_hz
    return p
