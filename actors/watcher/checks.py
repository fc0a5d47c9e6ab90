"""Cheap checks of one incoming DSA-110 subband file, before it is grouped.

A file is accepted only if it is complete, non-empty, HDF5, a readable UVH5 file (header and
data datasets) and of the expected shape. Only the header and one row of the data are read, with
h5py; never the visibilities. Every rejection is a :class:`SubbandFileError` (a ``ValueError``)
with a ``reason`` code and a message that names the problem, which the actor turns into an alert
event without losing the file (a half-written file is simply checked again later).

Reason codes: ``bad_name``, ``missing``, ``empty``, ``incomplete`` (still being written or
truncated), ``not_hdf5``, ``not_uvh5``, ``wrong_shape``.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from astro.instrument import (
    N_INTEGRATIONS,
    N_SUBBANDS,
    subband_edges_hz,
)

FILENAME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(\d{2})\.hdf5$")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_REQUIRED_HEADER = ("Nblts", "Nfreqs", "Npols", "Ntimes", "Nbls", "freq_array", "time_array", "polarization_array")
_REQUIRED_DATA = ("visdata", "flags", "nsamples")


class SubbandFileError(ValueError):
    """A subband file that cannot (yet) be accepted. ``reason`` is a short code."""

    def __init__(self, path: Path | str, reason: str, message: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {message}")

    @property
    def retryable(self) -> bool:
        """True when the file may become valid later (still being written)."""
        return self.reason == "incomplete"


@dataclass(frozen=True)
class Expectations:
    """What a subband file must look like; ``None`` accepts any value."""

    n_subbands: int = N_SUBBANDS
    n_channels: int | None = None
    n_times: int | None = N_INTEGRATIONS
    n_ants: int | None = None
    n_pols: int | None = 2
    check_frequencies: bool = True


@dataclass(frozen=True)
class SubbandInfo:
    """What the header of a good subband file says."""

    path: Path
    timestamp: str  # from the file name, 'YYYY-MM-DDTHH:MM:SS' (UTC)
    unix_time: float  # the same, seconds since the epoch
    subband: int
    size_bytes: int
    n_ants: int
    n_bls: int
    n_blts: int
    n_freqs: int
    n_times: int
    n_pols: int
    freq_min_hz: float
    freq_max_hz: float
    freqs_descending: bool
    start_jd: float
    end_jd: float
    dec_deg: float | None  # pointing declination from the header, if recorded
    telescope: str

    @property
    def mid_mjd(self) -> float:
        return 0.5 * (self.start_jd + self.end_jd) - 2_400_000.5


def parse_filename(path: Path | str) -> tuple[str, float, int]:
    """(timestamp, unix seconds, subband) from ``YYYY-MM-DDTHH:MM:SS_sbNN.hdf5``."""
    name = Path(path).name
    m = FILENAME_RE.match(name)
    if not m:
        raise SubbandFileError(path, "bad_name", "name is not YYYY-MM-DDTHH:MM:SS_sbNN.hdf5")
    ts, sb = m.group(1), int(m.group(2))
    try:
        unix = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise SubbandFileError(path, "bad_name", f"timestamp {ts!r} is not a valid date/time") from exc
    return ts, unix, sb


def _open_regular(path: Path) -> int:
    """A descriptor of `path` if it is a regular file: never through a symlink (``O_NOFOLLOW``) and
    never blocking on a FIFO (``O_NONBLOCK``, then ``fstat`` on what was opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SubbandFileError(path, "not_regular", "a symbolic link: the watcher reads only regular files") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SubbandFileError(path, "not_regular", "not a regular file (a FIFO, socket or device)")
    return fd


def _has_hdf5_signature(path: Path) -> bool:
    with os.fdopen(_open_regular(path), "rb") as fh:
        for off in (0, 512, 1024, 2048):
            fh.seek(off)
            if fh.read(8) == HDF5_SIGNATURE:
                return True
    return False


def check_subband_file(
    path: Path | str,
    expect: Expectations | None = None,
    *,
    settle_s: float = 0.0,
    previous_size: int | None = None,
) -> SubbandInfo:
    """Check one subband file and return its header summary, or raise :class:`SubbandFileError`.

    ``previous_size``: the size seen at an earlier look; a different size now means the file is
    still being written. ``settle_s`` > 0: look twice, that far apart (for callers without an
    earlier look). Both raise reason ``incomplete``, which is retryable.
    """
    p = Path(path)
    exp = expect or Expectations()
    ts, unix, sb = parse_filename(p)
    if not 0 <= sb < exp.n_subbands:
        raise SubbandFileError(p, "bad_name", f"subband {sb} outside 0..{exp.n_subbands - 1}")
    try:
        st = os.lstat(p)
    except FileNotFoundError as exc:
        raise SubbandFileError(p, "missing", "file vanished before it could be checked") from exc
    if stat.S_ISLNK(st.st_mode):
        raise SubbandFileError(p, "not_regular", "a symbolic link: the watcher reads only regular files")
    if not stat.S_ISREG(st.st_mode):
        raise SubbandFileError(p, "not_regular", "not a regular file (a FIFO, socket, device or directory)")
    if st.st_size == 0:
        raise SubbandFileError(p, "empty", "file is empty (0 bytes)")
    if previous_size is not None and previous_size != st.st_size:
        raise SubbandFileError(
            p, "incomplete", f"still being written (size changed from {previous_size} to {st.st_size} bytes)"
        )
    if settle_s > 0:
        time.sleep(settle_s)
        st2 = os.lstat(p)
        if (st2.st_size, st2.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            raise SubbandFileError(
                p, "incomplete", f"still being written (size {st.st_size} -> {st2.st_size} in {settle_s} s)"
            )
    if not _has_hdf5_signature(p):
        if st.st_size < 512:
            # a writer may have created the file and not yet flushed the superblock
            raise SubbandFileError(p, "incomplete", f"only {st.st_size} bytes and no HDF5 superblock yet")
        raise SubbandFileError(p, "not_hdf5", "not an HDF5 file (no HDF5 signature)")
    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        msg = str(exc)
        if "truncated" in msg or "eof" in msg.lower() or "signature" in msg or "lock" in msg.lower():
            raise SubbandFileError(p, "incomplete", f"HDF5 file is truncated or still being written ({msg})") from exc
        raise SubbandFileError(p, "incomplete", f"HDF5 file cannot be opened ({msg})") from exc
    with fh:
        return _check_uvh5(fh, p, ts, unix, sb, st.st_size, exp)


def _check_uvh5(
    fh: h5py.File, p: Path, ts: str, unix: float, sb: int, size: int, exp: Expectations
) -> SubbandInfo:
    if "Header" not in fh or not isinstance(fh["Header"], h5py.Group):
        raise SubbandFileError(p, "not_uvh5", "HDF5 file has no 'Header' group: not a UVH5 file")
    hdr = fh["Header"]
    missing = [k for k in _REQUIRED_HEADER if k not in hdr]
    if missing:
        raise SubbandFileError(p, "not_uvh5", f"UVH5 header lacks {', '.join(missing)}")
    if "Data" not in fh or not isinstance(fh["Data"], h5py.Group):
        raise SubbandFileError(p, "not_uvh5", "UVH5 file has no 'Data' group (header only)")
    data = fh["Data"]
    missing = [k for k in _REQUIRED_DATA if k not in data]
    if missing:
        raise SubbandFileError(p, "not_uvh5", f"UVH5 data lacks {', '.join(missing)}")
    try:
        nblts = int(hdr["Nblts"][()])
        nfreqs = int(hdr["Nfreqs"][()])
        npols = int(hdr["Npols"][()])
        ntimes = int(hdr["Ntimes"][()])
        nbls = int(hdr["Nbls"][()])
        nants = int(hdr["Nants_data"][()]) if "Nants_data" in hdr else -1
        freqs = np.asarray(hdr["freq_array"][()], dtype=float).ravel()
        times = np.asarray(hdr["time_array"][()], dtype=float)
        telescope = hdr["telescope_name"][()] if "telescope_name" in hdr else b""
        telescope = telescope.decode() if isinstance(telescope, bytes) else str(telescope)
        dec = None
        if "extra_keywords" in hdr and "phase_center_dec" in hdr["extra_keywords"]:
            dec = math.degrees(float(hdr["extra_keywords"]["phase_center_dec"][()]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SubbandFileError(p, "incomplete", f"UVH5 header unreadable ({exc})") from exc
    vis = data["visdata"]
    if not isinstance(vis, h5py.Dataset):
        raise SubbandFileError(p, "not_uvh5", "Data/visdata is not a dataset")
    shape = (nblts, nfreqs, npols)
    for name in _REQUIRED_DATA:
        ds = data[name]
        if not isinstance(ds, h5py.Dataset) or tuple(ds.shape) != shape:
            got = getattr(ds, "shape", None)
            raise SubbandFileError(p, "wrong_shape", f"Data/{name} has shape {got}, header says {shape}")
    if freqs.size != nfreqs or times.size != nblts:
        raise SubbandFileError(p, "wrong_shape", "freq_array/time_array lengths disagree with the header")
    _check_storage(vis, p, size)
    # Read the last row: a truncated file fails here, at the cost of one row.
    try:
        vis[nblts - 1 : nblts]
    except (OSError, ValueError, TypeError) as exc:
        raise SubbandFileError(p, "incomplete", f"visibility data unreadable, file truncated? ({exc})") from exc
    # Expectations
    problems = []
    if exp.n_channels is not None and nfreqs != exp.n_channels:
        problems.append(f"{nfreqs} channels, expected {exp.n_channels}")
    if exp.n_times is not None and ntimes != exp.n_times:
        problems.append(f"{ntimes} integrations, expected {exp.n_times}")
    if exp.n_ants is not None and nants != exp.n_ants:
        problems.append(f"{nants} antennas, expected {exp.n_ants}")
    if exp.n_pols is not None and npols != exp.n_pols:
        problems.append(f"{npols} polarisations, expected {exp.n_pols}")
    if nbls * ntimes != nblts:
        problems.append(f"Nblts {nblts} != Nbls {nbls} x Ntimes {ntimes}")
    if exp.check_frequencies and exp.n_subbands == N_SUBBANDS:
        lo, hi = subband_edges_hz(sb)
        if freqs.min() < lo - 1.0 or freqs.max() > hi + 1.0:
            problems.append(
                f"frequencies {freqs.min() / 1e6:.3f}-{freqs.max() / 1e6:.3f} MHz are outside subband "
                f"sb{sb:02d} ({lo / 1e6:.3f}-{hi / 1e6:.3f} MHz)"
            )
    if problems:
        raise SubbandFileError(p, "wrong_shape", "; ".join(problems))
    return SubbandInfo(
        path=p,
        timestamp=ts,
        unix_time=unix,
        subband=sb,
        size_bytes=size,
        n_ants=nants,
        n_bls=nbls,
        n_blts=nblts,
        n_freqs=nfreqs,
        n_times=ntimes,
        n_pols=npols,
        freq_min_hz=float(freqs.min()),
        freq_max_hz=float(freqs.max()),
        freqs_descending=bool(nfreqs > 1 and freqs[0] > freqs[-1]),
        start_jd=float(times.min()),
        end_jd=float(times.max()),
        dec_deg=dec,
        telescope=telescope,
    )


def _check_storage(ds: h5py.Dataset, p: Path, size: int) -> None:
    """Data allocated beyond the end of the file means the file is incomplete."""
    try:
        off = ds.id.get_offset()
        if off is not None:  # contiguous layout
            if off + ds.id.get_storage_size() > size:
                raise SubbandFileError(p, "incomplete", "visibility data extend past the end of the file")
            return
        if ds.compression is None:
            need = int(np.prod(ds.shape)) * ds.dtype.itemsize
            if ds.id.get_storage_size() < need:
                raise SubbandFileError(p, "incomplete", "visibility data are not fully written yet")
    except SubbandFileError:
        raise
    except (OSError, ValueError, TypeError, AttributeError):
        return


def tile_calibrator(info: SubbandInfo, dec_deg: float | None = None) -> str | None:
    """Name of the calibrator transiting this file's tile (for ``has_calibrator``), or None.

    The tile's meridian RA range comes from the file's first and last integration; the strip's
    declination from the header (or ``dec_deg``). Costs one small astropy transformation.
    """
    from astropy.time import Time

    from astro.calibrators import calibrator_in_tile
    from astro.coordinates import meridian_ra_deg

    dec = dec_deg if dec_deg is not None else info.dec_deg
    if dec is None:
        return None
    ra = meridian_ra_deg(Time([info.start_jd, info.end_jd], format="jd"), dec)
    cal = calibrator_in_tile((float(ra[0]), float(ra[1])), dec)
    return cal.name if cal else None


def file_settled(path: Path | str, min_age_s: float, now: float | None = None) -> bool:
    """True when the file has not been modified for ``min_age_s`` seconds (a cheap pre-check)."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return False
    return ((now if now is not None else time.time()) - mtime) >= min_age_s
