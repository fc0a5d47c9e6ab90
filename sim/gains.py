"""True instrumental gains of the simulated DSA-110: slow drifts, bandpasses and delays.

Every number is a deterministic function of ``(seed, antenna number, polarisation, time,
frequency)``, so consecutive groups of one simulation share one smoothly drifting instrument
(calibration solved on one group applies to its neighbours) and the truth can be recomputed.

Model, per antenna ``a`` and polarisation ``p`` (XX, YY):

    g(t, ν) = A(t) · exp(i φ(t)) · BP(ν) · exp(2πi ν τ(t))

* ``A(t) = A0 (1 + 0.05 sin(2π t / P_A + ψ_A))``, A0 ~ 1 ± 0.1, periods of 3-8 hours;
* ``φ(t) = φ0 + 0.4 sin(2π t / P_φ + ψ_φ)`` rad, φ0 uniform in (-π, π];
* ``τ(t) = τ0 + 0.2 ns sin(2π t / P_τ + ψ_τ)``, τ0 ~ N(0, 2 ns): a slowly drifting delay;
* ``BP(ν)``: a static complex bandpass: smooth ripple across the band, a roll-off toward the edges
  of each 11.72 MHz subband (the DSA-110's polyphase filter bank), and a small phase ripple.

Convention (pyuvdata's): the data of baseline (ant1, ant2) are ``g_ant1 · conj(g_ant2) · V_true``.
An MS written by pyuvdata (or by :mod:`actors.watcher.convert`) stores the conjugate of the
visibilities with negated uvw, so in the MS's own convention the gains appear conjugated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astro.instrument import BAND_HIGH_HZ, BAND_LOW_HZ, SUBBAND_WIDTH_HZ

GAIN_CONVENTION = "V_obs(ant1, ant2) = g[ant1] * conj(g[ant2]) * V_true  (pyuvdata UVH5 convention)"


def _params(seed: int, ant: int, pol: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, 7919, ant, pol])


@dataclass(frozen=True)
class TrueGains:
    """Gains for a set of antennas, times and frequencies (axes as in the arrays' docs)."""

    times_jd: np.ndarray  # (Nt,)
    antenna_numbers: np.ndarray  # (Na,)
    freqs_hz: np.ndarray  # (Nf,) ascending
    gain: np.ndarray  # (Nt, Na, 2) complex: A(t) exp(iφ(t))
    delay_ns: np.ndarray  # (Nt, Na, 2) float: τ(t)
    bandpass: np.ndarray  # (Na, Nf, 2) complex: BP(ν)

    def full(self) -> np.ndarray:
        """Complete gains g(t, a, ν, p), shape (Nt, Na, Nf, 2), complex128."""
        phase = np.exp(2j * np.pi * self.freqs_hz[None, None, :, None] * 1e-9 * self.delay_ns[:, :, None, :])
        return self.gain[:, :, None, :] * self.bandpass[None, :, :, :] * phase

    def save(self, path: Path | str) -> Path:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            times_jd=self.times_jd,
            antenna_numbers=self.antenna_numbers,
            freqs_hz=self.freqs_hz,
            gain=self.gain,
            delay_ns=self.delay_ns,
            bandpass=self.bandpass,
            convention=np.array(GAIN_CONVENTION),
        )
        tmp.replace(p)
        return p


def load_true_gains(path: Path | str) -> TrueGains:
    """Read gains saved by :meth:`TrueGains.save`."""
    with np.load(path) as z:
        return TrueGains(
            times_jd=z["times_jd"],
            antenna_numbers=z["antenna_numbers"],
            freqs_hz=z["freqs_hz"],
            gain=z["gain"],
            delay_ns=z["delay_ns"],
            bandpass=z["bandpass"],
        )


def true_gains(seed: int, antenna_numbers: np.ndarray, times_jd: np.ndarray, freqs_hz: np.ndarray) -> TrueGains:
    """Evaluate the gain model (see the module docstring)."""
    ants = np.asarray(antenna_numbers, dtype=int)
    t_h = (np.asarray(times_jd, dtype=float) - 2_451_545.0) * 24.0  # hours since J2000
    f = np.asarray(freqs_hz, dtype=float)
    nt, na, nf = t_h.size, ants.size, f.size
    gain = np.empty((nt, na, 2), dtype=np.complex128)
    delay = np.empty((nt, na, 2), dtype=np.float64)
    bp = np.empty((na, nf, 2), dtype=np.complex128)
    x = (f - BAND_LOW_HZ) / (BAND_HIGH_HZ - BAND_LOW_HZ)  # 0..1 across the band
    # position inside each subband, -1..1 (edges of the polyphase filter bank)
    sb_pos = ((BAND_HIGH_HZ - f) % SUBBAND_WIDTH_HZ) / SUBBAND_WIDTH_HZ * 2.0 - 1.0
    rolloff = 1.0 - 0.25 * np.abs(sb_pos) ** 6
    for i, a in enumerate(ants):
        for p in range(2):
            r = _params(seed, int(a), p)
            a0 = 1.0 + 0.1 * r.standard_normal()
            pa, ppa = r.uniform(3.0, 8.0), r.uniform(0, 2 * np.pi)
            phi0 = r.uniform(-np.pi, np.pi)
            pp, ppp = r.uniform(3.0, 8.0), r.uniform(0, 2 * np.pi)
            tau0 = 2.0 * r.standard_normal()
            pt, ppt = r.uniform(4.0, 10.0), r.uniform(0, 2 * np.pi)
            amp = a0 * (1.0 + 0.05 * np.sin(2 * np.pi * t_h / pa + ppa))
            phi = phi0 + 0.4 * np.sin(2 * np.pi * t_h / pp + ppp)
            gain[:, i, p] = amp * np.exp(1j * phi)
            delay[:, i, p] = tau0 + 0.2 * np.sin(2 * np.pi * t_h / pt + ppt)
            c = r.normal(0.0, 0.05, 4)
            s = r.normal(0.0, 0.05, 3)
            ripple = 1.0 + sum(c[k] * np.cos(np.pi * (k + 1) * x) for k in range(4))
            ph_ripple = sum(s[k] * np.sin(np.pi * (k + 2) * x) for k in range(3))
            bp[i, :, p] = ripple * rolloff * np.exp(1j * ph_ripple)
    return TrueGains(np.asarray(times_jd, dtype=float), ants, f, gain, delay, bp)
