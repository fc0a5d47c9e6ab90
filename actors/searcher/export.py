"""Exports of a search: results.json, CSV, catalog.json, classified.json, catalog.fits, waterfall PNGs and
a turboSETI-compatible ``.dat``.

Format names (the seed's ``format=`` values, plus ``dat``) map to file names in :data:`EXPORT_FILES`.
Waterfalls re-read small windows of the source file, so no data is kept in the result.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .filterbank import FilterbankInfo, open_filterbank, read_window

if TYPE_CHECKING:
    from .hits import Hit
    from .result import SearchResult

from schemas.seti import EXPORT_FILES

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FILES",
    "dat_text",
    "write_all",
]


CSV_COLUMNS = (
    "source_name",
    "frequency_hz",
    "drift_rate",
    "snr",
    "classification",
    "interestingness",
    "rfi_source",
    "source",
    "confidence",
    "coarse_channel",
    "channel",
    "channel_file",
    "drift_index",
    "persistence",
    "width_channels",
    "snr_refined",
    "reasons",
)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, allow_nan=False).encode()


def csv_text(result: SearchResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for h in result.sorted_hits():
        d = result.hit_dict(h)
        d["source_name"] = result.source_name
        d["reasons"] = ";".join(h.reasons)
        w.writerow([d[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def catalog_entries(result: SearchResult) -> list[dict[str, Any]]:
    out = []
    for h in result.sorted_hits():
        d = {"source_name": result.source_name, **result.hit_dict(h)}
        d["frequency_mhz"] = round(h.frequency_hz / 1e6, 9)
        out.append(d)
    return out


def classified_entries(result: SearchResult) -> list[dict[str, Any]]:
    return [
        {
            "frequency_hz": round(h.frequency_hz, 3),
            "drift_rate": round(h.drift_rate, 6),
            "snr": round(h.snr, 3),
            "snr_refined": round(h.snr_refined, 3),
            "classification": h.classification,
            "confidence": round(h.confidence, 4),
            "interestingness": round(h.interestingness, 4),
            "rfi_source": h.rfi_source,
            "reasons": list(h.reasons),
            "classifier": "rules-v1",
        }
        for h in result.sorted_hits()
    ]


# --------------------------------------------------------------------------------------------- FITS


def write_fits(result: SearchResult, path: Path) -> None:
    from astropy.io import fits

    hits = result.sorted_hits()

    def col(name: str, fmt: str, values: Any, unit: str | None = None) -> fits.Column:
        return fits.Column(name=name, format=fmt, array=np.asarray(values), unit=unit)

    strlen = max([1, *(len(h.rfi_source) for h in hits)])
    cols = [
        col("source_name", f"{max(1, len(result.source_name))}A", [result.source_name] * len(hits)),
        col("frequency_hz", "D", [h.frequency_hz for h in hits], "Hz"),
        col("drift_rate", "D", [h.drift_rate for h in hits], "Hz/s"),
        col("snr", "E", [h.snr for h in hits]),
        col("snr_refined", "E", [h.snr_refined for h in hits]),
        col("classification", "21A", [h.classification for h in hits]),
        col("interestingness", "E", [h.interestingness for h in hits]),
        col("confidence", "E", [h.confidence for h in hits]),
        col("rfi_source", f"{strlen}A", [h.rfi_source for h in hits]),
        col("source", "16A", [h.source for h in hits]),
        col("coarse_channel", "J", [h.coarse_channel for h in hits]),
        col("channel", "K", [h.channel for h in hits]),
        col("channel_file", "K", [result.file_channel(h) for h in hits]),
        col("drift_index", "J", [h.drift_index for h in hits]),
        col("persistence", "E", [h.persistence for h in hits]),
        col("width_channels", "J", [h.width_channels for h in hits], "channel"),
    ]
    table = fits.BinTableHDU.from_columns(cols, name="HITS")
    hdr = table.header
    hdr["SRC_NAME"] = (result.source_name[:60], "source name")
    hdr["TSTART"] = (result.tstart, "[MJD] start of observation")
    hdr["FCH1"] = (result.fch1_mhz, "[MHz] freq of channel_file 0")
    hdr["CHANORD"] = ("ascending", "channel from lowest freq; channel_file: file")
    hdr["FOFF"] = (result.foff_mhz, "[MHz] channel width (signed, as in file)")
    hdr["TSAMP"] = (result.tsamp, "[s] sampling time")
    hdr["NCHANS"] = (result.nchans, "fine channels")
    hdr["NTIME"] = (result.ntime, "time steps")
    hdr["DRIFTRES"] = (result.drift_rate_resolution, "[Hz/s] df/((N_t-1)*tsamp), N_t padded")
    hdr["MAXDRIFT"] = (result.max_drift, "[Hz/s] searched drift range +-")
    hdr["MINSNR"] = (result.min_snr, "hit threshold (turboSETI SNR)")
    hdr["RAWHITS"] = result.counts["raw_hits"]
    hdr["FILTHITS"] = result.counts["filtered_hits"]
    hdr["CANDS"] = result.counts["candidates"]
    primary = fits.PrimaryHDU()
    primary.header["ORIGIN"] = "observatory-platform de-Doppler searcher"
    buf = io.BytesIO()
    fits.HDUList([primary, table]).writeto(buf)
    _atomic_write(path, buf.getvalue())


# --------------------------------------------------------------------------------------------- .dat


def _sexagesimal(v: float, hours: bool) -> str:
    sign = "-" if v < 0 else ""
    v = abs(v)
    a = int(v // 10000)
    b = int((v - a * 10000) // 100)
    c = v - a * 10000 - b * 100
    return f"{sign}{a}{'h' if hours else 'd'}{b}m{c:.4f}s"


def dat_text(result: SearchResult, dat_name: str = "hits.dat") -> str:
    """turboSETI 2.x ``.dat``: same header block and twelve tab-separated columns."""
    h = result.header
    lines = [
        "# -------------------------- o --------------------------\n",
        f"# File ID: {dat_name.replace('.dat', '')}.h5 \n",
        "# -------------------------- o --------------------------\n",
        f"# Source:{result.source_name}\n",
        "# MJD: {:18.12f}\tRA: {}\tDEC: {}\n".format(
            result.tstart,
            _sexagesimal(float(h.get("src_raj", 0.0)), True),
            _sexagesimal(float(h.get("src_dej", 0.0)), False),
        ),
        f"# DELTAT: {result.tsamp:10.6f}\tDELTAF(Hz): {result.foff_mhz * 1e6:10.6f}\tmax_drift_rate: {result.max_drift:10.6f}\tobs_length: {result.n_time_padded * result.tsamp:10.6f}\n",
        "# --------------------------\n",
        "# Top_Hit_# \tDrift_Rate \tSNR \tUncorrected_Frequency \tCorrected_Frequency \tIndex \t"
        "freq_start \tfreq_end \tSEFD \tSEFD_freq \tCoarse_Channel_Number \tFull_number_of_hits \t\n",
        "# --------------------------\n",
    ]
    n = result.coarse_channel_size
    ncoarse = result.n_coarse_channels
    per_coarse = result.full_number_of_hits  # cells above the threshold, as turboSETI counts them
    info_desc = result.foff_mhz < 0

    # turboSETI order: file coarse channels in order, hits by index within each.
    def file_key(hit: Hit) -> tuple[int, int]:
        fc = result.nchans - 1 - hit.channel if info_desc else hit.channel
        return fc // n, fc % n

    for k, hit in enumerate(sorted(result.hits, key=file_key), start=1):
        fcc, idx = file_key(hit)
        lo = max(0, idx - result.window)
        hi = min(n, idx + result.window)

        def chan_freq(i: int, fcc: int = fcc) -> float:
            return result.fch1_mhz + (fcc * n + i) * result.foff_mhz

        lines.append(
            "%06d\t%10.6f\t%10.6f\t%14.6f\t%14.6f\t%d\t%14.6f\t%14.6f\t%s\t%14.6f\t%i\t%i\t\n"  # noqa: UP031  (turboSETI's own format)
            % (
                k,
                hit.drift_rate,
                hit.snr,
                chan_freq(idx),
                chan_freq(idx),
                idx,
                chan_freq(lo),
                chan_freq(hi - 1),
                0.0,
                0.0,
                fcc if ncoarse > 1 else 0,
                per_coarse.get(hit.coarse_channel, 0),
            )
        )
    return "".join(lines)


# --------------------------------------------------------------------------------------------- PNGs


def _panels(result: SearchResult, info: FilterbankInfo, max_panels: int) -> list[dict[str, Any]]:
    """Data windows to draw: around the top candidates, or a band overview when there are none."""
    panels: list[dict[str, Any]] = []
    for h in result.top_candidates(max_panels):
        span = abs(h.drift_index) * (result.ntime - 1) / max(1, result.n_time_padded - 1)
        half = math.ceil(span) + 32
        if h.drift_index >= 0:
            a0, a1 = h.channel - 32, h.channel + half
        else:
            a0, a1 = h.channel - half, h.channel + 32
        a0, a1 = max(0, a0), min(info.nchans, a1)
        data = read_window(info, a0, a1)
        f_ref = h.frequency_hz
        x = info.freq_mhz(np.arange(a0, a1)) * 1e6 - f_ref
        title = f"{h.classification}  SNR {h.snr:.1f}  drift {h.drift_rate:+.4f} Hz/s"
        panels.append(
            {"data": data, "x": x, "xlabel": f"Frequency − {f_ref / 1e6:.6f} MHz [Hz]", "title": title, "hit": h}
        )
    if panels:
        return panels
    # Overview: the band averaged down to ≤ 2048 columns, read a coarse channel at a time.
    ncols = min(2048, info.nchans)
    step = info.nchans // ncols
    ncols = info.nchans // step
    over = np.zeros((info.ntime, ncols), dtype=np.float32)
    csize = max(step, (1 << 20) // step * step)
    for a0 in range(0, ncols * step, csize):
        a1 = min(ncols * step, a0 + csize)
        blk = read_window(info, a0, a1)
        over[:, a0 // step : a1 // step] = blk.reshape(info.ntime, -1, step).mean(axis=2)
    x = info.freq_mhz(np.arange(ncols) * step + step / 2)
    return [{"data": over, "x": x, "xlabel": "Frequency [MHz]", "title": "Band overview (no hits)", "hit": None}]


#: a waterfall panel is ~400 pixels tall: spectra beyond this many are averaged in time blocks
MAX_PLOT_ROWS = 512


def _time_blocks(data: np.ndarray, tsamp: float, max_rows: int = MAX_PLOT_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(data averaged over consecutive spectra down to at most ``max_rows`` rows, the rows' time
    edges in s). A panel of 4096 spectra drawn one quad per sample made matplotlib build a mesh
    of millions of cells: ~1 GB and minutes for one export (issue 15's 16 GiB-declaring .h5),
    for detail no screen can show."""
    ntime = data.shape[0]
    factor = max(1, -(-ntime // max_rows))
    starts = np.arange(0, ntime, factor)
    edges = np.append(starts, ntime) * tsamp
    if factor == 1:
        return data, edges
    counts = np.diff(np.append(starts, ntime)).astype(np.float32)
    return np.add.reduceat(data, starts, axis=0) / counts[:, None], edges


def write_waterfalls(result: SearchResult, info: FilterbankInfo, path: Path, thumb: Path, max_panels: int = 4) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    panels = _panels(result, info, max_panels)
    for p in panels:
        p["data"], p["t"] = _time_blocks(p["data"], info.tsamp)
    fig = Figure(figsize=(5 * len(panels), 5), dpi=100)
    for k, p in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        data, t = p["data"], p["t"]
        x = p["x"]
        dx = (x[1] - x[0]) if len(x) > 1 else 1.0
        edges = np.concatenate([x - dx / 2, [x[-1] + dx / 2]])
        m = ax.pcolormesh(edges, t, data, shading="flat", cmap="viridis", rasterized=True)
        h = p["hit"]
        if h is not None:
            # the fitted track
            ax.plot(
                [0.0, h.drift_rate * info.ntime * info.tsamp],
                [0.0, info.ntime * info.tsamp],
                color="w",
                ls="--",
                lw=0.8,
                alpha=0.7,
            )
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel("Time since start [s]")
        ax.set_title(p["title"], fontsize=9)
        fig.colorbar(m, ax=ax, label="Power [arb. units]")
    fig.suptitle(f"{result.source_name}: frequency vs time", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _atomic_write(path, buf.getvalue())

    tf = Figure(figsize=(2.56, 1.92), dpi=100)
    ax = tf.add_axes((0, 0, 1, 1))
    p = panels[0]
    ax.imshow(p["data"], aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    ax.set_axis_off()
    buf = io.BytesIO()
    tf.savefig(buf, format="png")
    _atomic_write(thumb, buf.getvalue())


# --------------------------------------------------------------------------------------------- all


def write_all(
    result: SearchResult,
    source_file: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    formats: Collection[str] | None = None,
) -> dict[str, Path]:
    """Write every export (or only ``formats``) to ``out_dir``; returns format name → path.

    Only what is asked for is imported: ``formats={"dat"}`` (turboSETI's output alone) never loads
    astropy or matplotlib, which is most of a small search's wall time.  The FITS catalogue and the
    PNGs, the two slow ones, are written on two threads while this one writes the text formats.
    """
    wanted = set(EXPORT_FILES) if formats is None else set(formats)
    unknown = wanted - set(EXPORT_FILES)
    if unknown:
        raise ValueError(f"unknown export format(s): {', '.join(sorted(unknown))}; choose from {', '.join(EXPORT_FILES)}")
    if "waterfall_thumb" in wanted:
        wanted.add("waterfall")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in EXPORT_FILES.items() if k in wanted}
    if "dat" in wanted:
        paths["dat"] = out / f"{Path(source_file).stem or 'hits'}.dat"  # turboSETI names it after the file
    if "waterfall" in wanted:
        paths["waterfall_thumb"] = out / EXPORT_FILES["waterfall_thumb"]
    with ThreadPoolExecutor(2, thread_name_prefix="export") as pool:
        jobs: list[Future[None]] = []
        if "fits" in wanted:
            jobs.append(pool.submit(write_fits, result, paths["fits"]))
        if "waterfall" in wanted:
            jobs.append(
                pool.submit(
                    lambda: write_waterfalls(
                        result, open_filterbank(source_file), paths["waterfall"], paths["waterfall_thumb"]
                    )
                )
            )
        if "json" in wanted:
            _atomic_write(paths["json"], _json_bytes(result.to_dict()))
        if "csv" in wanted:
            _atomic_write(paths["csv"], csv_text(result).encode())
        if "catalog_json" in wanted:
            _atomic_write(paths["catalog_json"], _json_bytes(catalog_entries(result)))
        if "classified" in wanted:
            _atomic_write(paths["classified"], _json_bytes(classified_entries(result)))
        if "dat" in wanted:
            _atomic_write(paths["dat"], dat_text(result, paths["dat"].name).encode())
        for job in jobs:
            job.result()
    return paths
