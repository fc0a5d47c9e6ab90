"""Convert one observation group (16 UVH5 subband files) into one CASA Measurement Set.

The output MS has one spectral window with all channels in ascending frequency, XX and YY, every
baseline including autocorrelations, and is phased to the tile's phase centre: the ICRS position
on the meridian at the pointing declination at the tile's middle time. The path is
``<out_dir>/<group_id>.ms``, so a redelivered conversion rewrites the same MS (written beside it
under a temporary name, then swapped in).

Why not ``UVData.read`` + ``phase`` + ``write_ms``: for a full group (4656 baselines x 24
integrations x 768 channels x 2 polarisations, 1.4 GB of complex64) that reads and concatenates
through several full-size copies in complex128 and takes minutes. Here:

1. pyuvdata reads only the *metadata* of the first file; its frequency axis is replaced by the
   whole band, and pyuvdata's ``phase`` (metadata only) computes the new uvw and apparent
   coordinates, so the astrometry is pyuvdata's own;
2. each file's visibilities are read with h5py and a numba kernel writes them into the full
   array in one pass: channel reversal, phase rotation by exp(-2πi w ν / c) (pyuvdata's sign, w
   from step 1; unprojected data have w = 0) and the conjugation pyuvdata applies when it writes
   an MS (``pyuvdata_flip_conj``), so the result reads back identically with ``UVData.read``;
3. the main table is written with bulk ``putcol`` in row blocks into the skeleton MS that
   pyuvdata's own MS module creates, and the ANTENNA, DATA_DESCRIPTION, FEED, FIELD, HISTORY,
   OBSERVATION, POINTING, POLARIZATION, SOURCE and SPECTRAL_WINDOW subtables are written by
   pyuvdata's MS helpers from the metadata object.

Missing subbands (allowed with ``missing_ok``) are zero-filled and flagged.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numba
import numpy as np
from astropy.time import Time
from casacore import tables
from pyuvdata import UVData
from pyuvdata.utils import pol as pol_utils
from pyuvdata.utils.io import ms as ms_utils

from actors.watcher.checks import Expectations, SubbandFileError, check_subband_file
from astro.calibrators import calibrator_in_tile
from astro.coordinates import meridian_ra_deg, tile_phase_center
from astro.instrument import GROUP_TOLERANCE_S, N_SUBBANDS, subband_frequencies_hz
from astro.msio import name_observatory

C_M_S = 299_792_458.0
ROW_BLOCK = 16384


class ConversionError(ValueError):
    """A group cannot be converted (missing or inconsistent subbands, unreadable data)."""


@dataclass(frozen=True)
class MsInfo:
    """What the watcher publishes about a converted group."""

    path: Path
    group_id: str
    mid_mjd: float
    field_name: str
    phase_center_ra_deg: float
    phase_center_dec_deg: float
    n_subbands: int  # subbands present in the input
    flagged_subbands: tuple[int, ...]  # missing, zero-filled and flagged
    n_rows: int
    n_channels: int
    n_antennas: int
    freq_min_hz: float
    freq_max_hz: float
    calibrator: str | None
    seconds: float

    @property
    def has_calibrator(self) -> bool:
        return self.calibrator is not None


def field_name_for(ra_deg: float, dec_deg: float) -> str:
    """``JHHMM+DD`` (the seed's style, e.g. ``J1234+42``)."""
    h = (ra_deg % 360.0) / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    sign = "+" if dec_deg >= 0 else "-"
    return f"J{hh:02d}{mm:02d}{sign}{int(abs(dec_deg)):02d}"


def ms_path_for(out_dir: Path | str, group_id: str) -> Path:
    """The deterministic MS path of a group."""
    return Path(out_dir) / f"{group_id}.ms"


# --------------------------------------------------------------------------------- kernels


@numba.njit(cache=True)
def _place_block(
    src: np.ndarray,
    w_m: np.ndarray,
    f0: float,
    df: float,
    reverse: bool,
    ch0: int,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """out[b, ch0 + k, p] = conj(src[b, j, p] · exp(-2πi w ν_j / c)), k = j or reversed.

    ``f0`` is the frequency of src channel 0, ``df`` the (signed) step between src channels.
    """
    nb, nc, npol = src.shape
    for b in range(nb):
        t = w_m[b] / C_M_S
        ph0 = -2.0 * np.pi * ((f0 * t) % 1.0)
        dph = -2.0 * np.pi * ((df * t) % 1.0)
        z = complex(np.cos(ph0), np.sin(ph0))
        dz = complex(np.cos(dph), np.sin(dph))
        for j in range(nc):
            k = ch0 + (nc - 1 - j if reverse else j)
            for p in range(npol):
                out[b, k, p] = (src[b, j, p] * z).conjugate()
            z = z * dz


@numba.njit(cache=True)
def _place_flags(src: np.ndarray, reverse: bool, ch0: int, out: np.ndarray) -> None:  # pragma: no cover
    nb, nc, npol = src.shape
    for b in range(nb):
        for j in range(nc):
            k = ch0 + (nc - 1 - j if reverse else j)
            for p in range(npol):
                out[b, k, p] = src[b, j, p]


# ------------------------------------------------------------------------------- conversion


def _validate_group(
    files: Sequence[Path], missing_ok: bool, expected_subbands: int
) -> tuple[dict[int, Path], dict[int, object], str]:
    if not files:
        raise ConversionError("no files to convert")
    infos = {}
    by_sb: dict[int, Path] = {}
    for f in files:
        try:
            info = check_subband_file(f, Expectations(n_subbands=expected_subbands, n_channels=None))
        except SubbandFileError as exc:
            raise ConversionError(f"cannot convert: {exc}") from exc
        if info.subband in by_sb:
            raise ConversionError(f"duplicate subband sb{info.subband:02d}: {by_sb[info.subband].name} and {Path(f).name}")
        by_sb[info.subband] = Path(f)
        infos[info.subband] = info
    t0 = min(i.unix_time for i in infos.values())
    t1 = max(i.unix_time for i in infos.values())
    if t1 - t0 > 2 * GROUP_TOLERANCE_S:
        raise ConversionError(f"files span {t1 - t0:.0f} s: not one group")
    first = infos[min(infos)]
    for sb, i in infos.items():
        if (i.n_blts, i.n_freqs, i.n_pols, i.n_ants) != (first.n_blts, first.n_freqs, first.n_pols, first.n_ants):
            raise ConversionError(
                f"sb{sb:02d} has shape (Nblts, Nfreqs, Npols, Nants) = {(i.n_blts, i.n_freqs, i.n_pols, i.n_ants)}, "
                f"sb{first.subband:02d} has {(first.n_blts, first.n_freqs, first.n_pols, first.n_ants)}"
            )
        if abs(i.start_jd - first.start_jd) * 86400 > 1.0:
            raise ConversionError(f"sb{sb:02d} has a different time axis from sb{first.subband:02d}")
    missing = [s for s in range(expected_subbands) if s not in by_sb]
    if missing and not missing_ok:
        raise ConversionError(f"missing subbands: {', '.join(f'sb{s:02d}' for s in missing)}")
    group_id = min(i.timestamp for i in infos.values())
    return by_sb, dict(infos), group_id


def convert_group(
    files: Sequence[Path | str],
    out_dir: Path | str,
    *,
    missing_ok: bool = False,
    group_id: str | None = None,
    expected_subbands: int = N_SUBBANDS,
    dec_deg: float | None = None,
) -> MsInfo:
    """Write the MS of one group and describe it (see the module docstring).

    ``group_id`` names the MS (default: the earliest file timestamp); ``dec_deg`` overrides the
    pointing declination recorded in the files.
    """
    t_start = time.perf_counter()
    paths = [Path(f) for f in files]
    by_sb, infos, gid = _validate_group(paths, missing_ok, expected_subbands)
    gid = group_id or gid
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first_sb = min(by_sb)

    meta = UVData()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta.read(str(by_sb[first_sb]), file_type="uvh5", read_data=False, run_check=False)
    n_chan = meta.Nfreqs
    # the band: present subbands' own frequencies, missing ones from the instrument model
    sb_freqs: dict[int, np.ndarray] = {}
    for sb in range(expected_subbands):
        if sb in by_sb:
            with h5py.File(by_sb[sb], "r") as fh:
                sb_freqs[sb] = np.asarray(fh["Header/freq_array"][()], dtype=float).ravel()
        else:
            sb_freqs[sb] = subband_frequencies_hz(sb, n_chan)
    all_freqs = np.concatenate([sb_freqs[s] for s in range(expected_subbands)])
    order = np.argsort(all_freqs)
    freqs = all_freqs[order]
    if np.any(np.diff(freqs) <= 0):
        raise ConversionError("subband frequencies overlap")
    # position of each subband's block in the ascending axis
    sb_start = {}
    for sb in range(expected_subbands):
        lo = float(sb_freqs[sb].min())
        sb_start[sb] = int(np.searchsorted(freqs, lo))
    chan_w = float(np.median(np.abs(np.diff(sb_freqs[first_sb])))) if n_chan > 1 else float(
        np.abs(np.asarray(meta.channel_width).ravel()[0])
    )

    # ---- metadata: the whole band, phased to the tile's phase centre (pyuvdata's astrometry)
    times_unique = np.unique(meta.time_array)
    mid_jd = 0.5 * (times_unique.min() + times_unique.max())
    mid = Time(mid_jd, format="jd", scale="utc")
    if dec_deg is None:
        dec_deg = infos[first_sb].dec_deg  # type: ignore[attr-defined]
        if dec_deg is None:
            raise ConversionError("files do not record the pointing declination (phase_center_dec)")
    ra0, dec0 = tile_phase_center(mid, float(dec_deg))
    fname = field_name_for(ra0, dec0)
    meta.freq_array = freqs
    meta.channel_width = np.full(freqs.size, chan_w)
    meta.Nfreqs = freqs.size
    meta.flex_spw_id_array = np.zeros(freqs.size, dtype=int)
    meta.spw_array = np.array([0])
    meta.Nspws = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta.phase(ra=math.radians(ra0), dec=math.radians(dec0), epoch="J2000", cat_name=fname)
    w = np.ascontiguousarray(meta.uvw_array[:, 2], dtype=np.float64)
    nblts, npol, nf = meta.Nblts, meta.Npols, freqs.size
    pol_order = pol_utils.determine_pol_order(meta.polarization_array, order="CASA")
    if not np.array_equal(pol_order, np.arange(npol)):
        raise ConversionError(f"unexpected polarisation order {meta.polarization_array}")

    # ---- visibilities: one pass per file
    data = np.zeros((nblts, nf, npol), dtype=np.complex64)
    flags = np.zeros((nblts, nf, npol), dtype=bool)
    flagged = tuple(s for s in range(expected_subbands) if s not in by_sb)
    for sb in flagged:
        flags[:, sb_start[sb] : sb_start[sb] + sb_freqs[sb].size, :] = True
    for sb, path in sorted(by_sb.items()):
        f_sb = sb_freqs[sb]
        reverse = bool(f_sb.size > 1 and f_sb[0] > f_sb[-1])
        if f_sb.size > 1 and not np.allclose(np.diff(f_sb), f_sb[1] - f_sb[0], rtol=1e-9, atol=1e-3):
            raise ConversionError(f"sb{sb:02d}: channels are not uniformly spaced")
        df = float(f_sb[1] - f_sb[0]) if f_sb.size > 1 else 0.0
        try:
            with h5py.File(path, "r") as fh:
                vis = fh["Data/visdata"]
                if vis.dtype.names is not None:
                    raise ConversionError(f"{path.name}: integer-typed visibilities are not supported")
                src = np.asarray(vis[()], dtype=np.complex64)
                fl = np.asarray(fh["Data/flags"][()], dtype=bool)
                t_file = np.asarray(fh["Header/time_array"][()], dtype=float)
        except OSError as exc:
            raise ConversionError(f"{path.name}: cannot read visibilities ({exc})") from exc
        if src.shape != (nblts, f_sb.size, npol) or not np.allclose(t_file, meta.time_array, atol=1e-7):
            raise ConversionError(f"{path.name}: data shape or time axis differs from sb{first_sb:02d}")
        _place_block(src, w, float(f_sb[0]), df, reverse, sb_start[sb], data)
        _place_flags(fl, reverse, sb_start[sb], flags)
        del src, fl

    # ---- write the MS beside the final path, then swap it in
    final = ms_path_for(out, gid)
    tmp = final.with_name(f".{final.name}.{int(time.time() * 1e6)}.tmp")
    try:
        _write_ms(tmp, meta, data, flags)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    ra_edges = meridian_ra_deg(Time([times_unique.min(), times_unique.max()], format="jd"), float(dec_deg))
    cal = calibrator_in_tile((float(ra_edges[0]), float(ra_edges[1])), float(dec_deg))
    return MsInfo(
        path=final,
        group_id=gid,
        mid_mjd=float(mid.mjd),
        field_name=fname,
        phase_center_ra_deg=ra0,
        phase_center_dec_deg=dec0,
        n_subbands=len(by_sb),
        flagged_subbands=flagged,
        n_rows=nblts,
        n_channels=nf,
        n_antennas=int(meta.Nants_data),
        freq_min_hz=float(freqs[0]),
        freq_max_hz=float(freqs[-1]),
        calibrator=cal.name if cal else None,
        seconds=time.perf_counter() - t_start,
    )


def _write_ms(path: Path, meta: UVData, data: np.ndarray, flags: np.ndarray) -> None:
    """The main table in row blocks, then pyuvdata's subtables (as ``UVData.write_ms`` lays them out)."""
    fp = str(path)
    nblts = meta.Nblts
    ms = ms_utils.init_ms_file(fp)
    try:
        ms.removecols("WEIGHT_SPECTRUM")  # all nsamples are 1: WEIGHT carries it, saves 0.7 GB
        ms.addrows(nblts)
        for r0 in range(0, nblts, ROW_BLOCK):
            r1 = min(nblts, r0 + ROW_BLOCK)
            ms.putcol("DATA", data[r0:r1], startrow=r0, nrow=r1 - r0)
            ms.putcol("FLAG", flags[r0:r1], startrow=r0, nrow=r1 - r0)
        weights = np.ones((nblts, meta.Npols), dtype=np.float64)
        ms.putcol("WEIGHT", weights)
        ms.putcol("SIGMA", weights)
        ms.putcol("ANTENNA1", meta.ant_1_array)
        ms.putcol("ANTENNA2", meta.ant_2_array)
        ms.putcol("INTERVAL", meta.integration_time)
        ms.putcol("EXPOSURE", meta.integration_time)
        ms.putcol("DATA_DESC_ID", np.zeros(nblts, dtype=int))
        if meta.scan_number_array is None:
            meta._set_scan_numbers()
        ms.putcol("SCAN_NUMBER", meta.scan_number_array)
        tu, ti = np.unique(meta.time_array, return_inverse=True)
        tsec = (Time(tu, format="jd", scale="utc").mjd * 86400.0)[ti]
        ms.putcol("TIME", tsec)
        ms.putcol("TIME_CENTROID", tsec)
        ms.putcol("UVW", -meta.uvw_array)  # with the conjugated data (pyuvdata's flip_conj)
        ms.putcol("FIELD_ID", np.zeros(nblts, dtype=int))
        ms.putcolkeyword("DATA", "QuantumUnits", meta.vis_units)
        if meta.extra_keywords:
            ms.putkeyword("pyuvdata_extra", dict(meta.extra_keywords))
        ms.putkeyword("pyuvdata_flip_conj", True)
    finally:
        ms.done()
    pol_order = pol_utils.determine_pol_order(meta.polarization_array, order="CASA")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ms_utils.write_ms_antenna(fp, uvobj=meta)
        ms_utils.write_ms_data_description(fp, uvobj=meta)
        ms_utils.write_ms_feed(fp, uvobj=meta)
        ms_utils.write_ms_field(fp, uvobj=meta)
        ms_utils.write_ms_history(fp, uvobj=meta)
        ms_utils.write_ms_observation(fp, uvobj=meta)
        ms_utils.write_ms_pointing(fp, uvobj=meta)
        ms_utils.write_ms_polarization(fp, pol_order=pol_order, uvobj=meta)
        ms_utils.write_ms_source(fp, uvobj=meta)
        ms_utils.write_ms_spectral_window(fp, uvobj=meta)
    name_observatory(fp, meta.telescope.name)  # a TELESCOPE_NAME CASA knows (astro.msio)


def read_ms_summary(path: Path | str) -> dict[str, object]:
    """A few facts about an MS read back with casacore (rows, channels, phase centre, frequencies)."""
    p = str(path)
    with tables.table(p, ack=False) as t:
        nrows = t.nrows()
    with tables.table(p + "/SPECTRAL_WINDOW", ack=False) as t:
        chan = np.asarray(t.getcol("CHAN_FREQ"))[0]
    with tables.table(p + "/FIELD", ack=False) as t:
        phase_dir = np.asarray(t.getcol("PHASE_DIR"))[0, 0]
        name = str(t.getcol("NAME")[0])
    return {
        "n_rows": nrows,
        "chan_freq": chan,
        "phase_center_ra_deg": math.degrees(phase_dir[0]) % 360.0,
        "phase_center_dec_deg": math.degrees(phase_dir[1]),
        "field_name": name,
    }
