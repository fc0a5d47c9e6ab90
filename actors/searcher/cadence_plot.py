"""Stacked waterfalls of a cadence event: one panel per file, top to bottom in the order observed.

As turboSETI's ``plot_event`` draws them: the window is centred on the event's frequency in the first
ON and wide enough for the whole drift over the cadence (2.4 × |drift| × the time from the first
file's start to the last file's end, at least 500 Hz); each panel shows 10·log10 of the power,
normalised to [0, 1] per panel; the drift line starts at ``f + drift·Δt`` (``Δt`` from the first
file's start to this file's start, from the files' ``tstart``) and runs through the panel, so a
signal from the sky lies on it in every ON and interference shows in the OFFs too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .filterbank import open_filterbank, read_window

__all__ = ["plot_event"]

SECONDS_PER_DAY = 86400.0


def plot_event(
    files: Sequence[str | os.PathLike[str]],
    on: Sequence[bool],
    freq_mhz: float,
    drift_rate: float,
    title: str,
    out: Path,
) -> Path:
    """Draw the event at ``freq_mhz`` (in the first ON, at its start) drifting at ``drift_rate`` Hz/s."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    infos = [open_filterbank(f) for f in files]
    first_on = infos[next(i for i, o in enumerate(on) if o)]
    t_first = infos[0].tstart
    last = infos[-1]
    t_elapsed = (last.tstart - t_first) * SECONDS_PER_DAY + (last.ntime - 1) * last.tsamp
    bandwidth = max(2.4 * abs(drift_rate) / 1e6 * t_elapsed, 500.0 / 1e6)
    f_lo, f_hi = freq_mhz - bandwidth / 2, freq_mhz + bandwidth / 2
    t_ref = first_on.tstart
    fig = Figure(figsize=(10, 2 * len(infos)), dpi=80)
    axes = fig.subplots(len(infos), 1, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, info, is_on in zip(axes, infos, on, strict=True):
        df = abs(info.foff)
        a0 = int(np.floor((f_lo - info.f_low_mhz) / df))
        a1 = int(np.ceil((f_hi - info.f_low_mhz) / df)) + 1
        a0, a1 = max(0, a0), min(info.nchans, a1)
        duration = (info.ntime - 1) * info.tsamp
        if a1 - a0 >= 2:
            data = read_window(info, a0, a1).astype(np.float64)
            data = 10.0 * np.log10(np.clip(data, 1e-30, None))
            lo, hi = float(data.min()), float(data.max())
            data = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
            x = (info.freq_mhz(np.array([a0, a1 - 1])) - freq_mhz) * 1e6
            ax.imshow(
                data,
                aspect="auto",
                interpolation="nearest",
                cmap="viridis",
                extent=(float(x[0]), float(x[1]), duration, 0.0),
                rasterized=True,
            )
        dt = (info.tstart - t_ref) * SECONDS_PER_DAY
        f0 = drift_rate * dt  # Hz relative to the event
        ax.plot([f0, f0 + drift_rate * duration], [0.0, duration], color="#cc0000", ls="--", lw=1.0, alpha=0.6)
        ax.text(
            0.01, 0.8, f"{'ON' if is_on else 'OFF'}  {info.source_name}", transform=ax.transAxes,
            bbox={"facecolor": "white"}, fontsize=8,
        )
        ax.set_xlim((f_lo - freq_mhz) * 1e6, (f_hi - freq_mhz) * 1e6)
        ax.set_ylabel("Time [s]")
    axes[0].set_title(title)
    axes[-1].set_xlabel(f"Relative frequency [Hz] from {freq_mhz:.6f} MHz")
    fig.subplots_adjust(hspace=0)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, out)
    return out
