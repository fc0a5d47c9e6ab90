"""Filterbank readers: SIGPROC ``.fil`` and FBH5 ``.h5`` (the writers are in :mod:`.filterbank_writer`).

Conventions
-----------
* Data are shaped ``(ntime, nifs, nchans)`` on disk in both formats.
* The search works on **ascending frequency**.  Files with ``foff < 0`` (the usual case for Breakthrough
  Listen data) are flipped channel-wise as they are read, so every array handed out by
  :func:`iter_coarse_channels` and :func:`read_window` has channel 0 at the lowest frequency and the
  returned frequency axis increases.  :class:`FilterbankInfo` converts between the ascending index
  (``asc``) and the file's own channel order (``file``) for the exports that must speak the file's
  language (turboSETI's ``.dat``).
* One IF is searched (``if_index=0``, as turboSETI does: Stokes I or the first polarisation);
  ``if_index=None`` sums all IFs (total power of an XX/YY pair).
* Memory is bounded: coarse channels are read one at a time with ``os.pread`` (``.fil``) or h5py
  hyperslabs (``.h5``), so RSS grows by one coarse channel, never by the file.

Coarse channels
---------------
:func:`coarse_channel_size` decides how a file is cut: an explicit ``override`` (must divide ``nchans``);
else ``1_048_576`` (Breakthrough Listen high-spectral-resolution products: 2^20 fine channels per
coarse channel) when ``nchans`` is a multiple of it; else the largest power of two ≤ 2^20 that divides
``nchans`` as long as it is at least 1024; else the whole band is one chunk.  The DC bin of an FFT coarse
channel sits at the file-order index ``n // 2`` of each chunk.

Errors
------
Every problem with the input raises :class:`FilterbankError` (a ``ValueError``) with a message that
names it: not a filterbank, truncated, unknown header keyword, ``nchans`` not matching the data size,
NaN/inf values, fewer than 2 time steps, an ``.h5`` without ``data``.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = [
    "FilterbankError",
    "FilterbankInfo",
    "coarse_channel_size",
    "iter_coarse_channels",
    "open_filterbank",
    "read_window",
]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SIGPROC_START = b"HEADER_START"
SIGPROC_END = b"HEADER_END"
BL_COARSE = 1 << 20

# SIGPROC keyword -> type (sigproc's filterbank_header / blimpy's header_keyword_types).
INT_KEYS = frozenset(
    {
        "telescope_id",
        "machine_id",
        "data_type",
        "nchans",
        "nbits",
        "nifs",
        "nbeams",
        "ibeam",
        "barycentric",
        "pulsarcentric",
        "nsamples",
        "nbins",
    }
)
DOUBLE_KEYS = frozenset(
    {
        "fch1",
        "foff",
        "tsamp",
        "tstart",
        "src_raj",
        "src_dej",
        "az_start",
        "za_start",
        "refdm",
        "period",
        "refrf",
    }
)
STRING_KEYS = frozenset({"source_name", "rawdatafile"})
BYTE_KEYS = frozenset({"signed"})
REQUIRED_KEYS = ("nchans", "nbits", "fch1", "foff", "tsamp")

FloatArray = npt.NDArray[np.float32]
F64Array = npt.NDArray[np.float64]


class FilterbankError(ValueError):
    """The input is not a usable filterbank; the message names the problem."""


@dataclass
class FilterbankInfo:
    """What a file holds, parsed and validated; no data is read."""

    path: Path
    fmt: str  # "fil" or "h5"
    header: dict[str, Any]
    nchans: int
    nifs: int
    nbits: int
    ntime: int
    fch1: float  # MHz, frequency of the file's channel 0
    foff: float  # MHz, signed, as in the file
    tsamp: float  # s
    header_size: int = 0  # bytes before the data (.fil)
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype("<f4"))

    @property
    def source_name(self) -> str:
        return str(self.header.get("source_name", "") or self.path.stem)

    @property
    def tstart(self) -> float:
        return float(self.header.get("tstart", 0.0))

    @property
    def df_hz(self) -> float:
        """Channel width in Hz (positive)."""
        return abs(self.foff) * 1e6

    @property
    def descending(self) -> bool:
        return self.foff < 0

    @property
    def f_low_mhz(self) -> float:
        """Centre frequency (MHz) of the lowest channel = ascending channel 0."""
        return self.fch1 if self.foff > 0 else self.fch1 + (self.nchans - 1) * self.foff

    def freq_mhz(self, asc_index: npt.ArrayLike) -> F64Array:
        """Frequency (MHz) of ascending channel index(es)."""
        return self.f_low_mhz + np.asarray(asc_index, dtype=np.float64) * abs(self.foff)

    def to_file_index(self, asc_index: int) -> int:
        """The file's own channel number of an ascending channel index."""
        return self.nchans - 1 - asc_index if self.descending else asc_index

    def to_asc_index(self, file_index: int) -> int:
        return self.nchans - 1 - file_index if self.descending else file_index


# --------------------------------------------------------------------------------------------- reading


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise FilterbankError(f"cannot read file {path.name!r}: {exc.strerror}") from exc
    if head.startswith(HDF5_MAGIC):
        return "h5"
    if len(head) >= 16 and head[4:16] == SIGPROC_START and struct.unpack("<i", head[:4])[0] == 12:
        return "fil"
    if len(head) == 0:
        raise FilterbankError("not a filterbank file: the file is empty")
    raise FilterbankError(
        "not a filterbank file: it starts neither with a SIGPROC HEADER_START nor with the HDF5 signature"
    )


def open_filterbank(path: str | os.PathLike[str]) -> FilterbankInfo:
    """Parse and validate the header of a ``.fil`` or ``.h5`` file (format sniffed from its bytes)."""
    p = Path(path)
    fmt = _sniff(p)
    return _open_fil(p) if fmt == "fil" else _open_h5(p)


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    b = fh.read(n)
    if len(b) != n:
        raise FilterbankError(f"truncated file: the header ends in the middle of {what} (no HEADER_END)")
    return b


def _read_string(fh: BinaryIO, what: str) -> str:
    (n,) = struct.unpack("<i", _read_exact(fh, 4, what))
    if n < 1 or n > 4096:
        raise FilterbankError(f"corrupt SIGPROC header: implausible string length {n} while reading {what}")
    raw = _read_exact(fh, n, what)
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FilterbankError(f"corrupt SIGPROC header: {what} is not ASCII text") from exc


def parse_sigproc_header(fh: BinaryIO) -> tuple[dict[str, Any], int]:
    """Read keywords from HEADER_START to HEADER_END; return (header, header size in bytes)."""
    if _read_string(fh, "HEADER_START") != "HEADER_START":
        raise FilterbankError("not a filterbank file: no SIGPROC HEADER_START")
    header: dict[str, Any] = {}
    while True:
        key = _read_string(fh, "a header keyword")
        if key == "HEADER_END":
            break
        if key in INT_KEYS:
            header[key] = struct.unpack("<i", _read_exact(fh, 4, f"the value of {key!r}"))[0]
        elif key in DOUBLE_KEYS:
            header[key] = struct.unpack("<d", _read_exact(fh, 8, f"the value of {key!r}"))[0]
        elif key in STRING_KEYS:
            header[key] = _read_string(fh, f"the value of {key!r}")
        elif key in BYTE_KEYS:
            header[key] = _read_exact(fh, 1, f"the value of {key!r}")[0]
        else:
            raise FilterbankError(f"header keyword {key!r} is not a SIGPROC keyword")
    return header, fh.tell()


def _dtype_for(nbits: int, signed: bool) -> np.dtype[Any]:
    if nbits == 8:
        return np.dtype("i1" if signed else "u1")
    if nbits == 16:
        return np.dtype("<i2" if signed else "<u2")
    if nbits == 32:
        return np.dtype("<f4")
    raise FilterbankError(f"nbits={nbits} is not supported (8, 16 and 32 are)")


def _validate_header(header: Mapping[str, Any], where: str) -> None:
    for key in REQUIRED_KEYS:
        if key not in header:
            raise FilterbankError(f"{where} lacks the required keyword {key!r}")
    if int(header["nchans"]) < 1:
        raise FilterbankError(f"nchans={header['nchans']} in the {where}: must be at least 1")
    if int(header.get("nifs", 1)) < 1:
        raise FilterbankError(f"nifs={header.get('nifs')} in the {where}: must be at least 1")
    for key in ("foff", "tsamp", "fch1"):
        v = float(header[key])
        if not math.isfinite(v):
            raise FilterbankError(f"header keyword {key!r} is {v} (NaN or inf values are not allowed)")
    if float(header["foff"]) == 0.0:
        raise FilterbankError(f"foff=0 in the {where}: the channel width must be non-zero")
    if float(header["tsamp"]) <= 0.0:
        raise FilterbankError(f"tsamp={header['tsamp']} in the {where}: the sampling time must be positive")
    if int(header.get("data_type", 1)) not in (0, 1):
        raise FilterbankError(
            f"not a filterbank: data_type={header['data_type']} (1 is filterbank; 2 is a time series)"
        )


def _open_fil(path: Path) -> FilterbankInfo:
    size = path.stat().st_size
    with path.open("rb") as fh:
        header, hsize = parse_sigproc_header(fh)
    _validate_header(header, "SIGPROC header")
    nchans = int(header["nchans"])
    nifs = int(header.get("nifs", 1))
    nbits = int(header["nbits"])
    dtype = _dtype_for(nbits, bool(header.get("signed", 0)))
    spectrum_bytes = nchans * nifs * dtype.itemsize
    data_bytes = size - hsize
    ntime, rem = divmod(data_bytes, spectrum_bytes)
    declared = header.get("nsamples")
    if declared is not None and int(declared) > 0 and ntime < int(declared):
        raise FilterbankError(
            f"truncated file: the header declares nsamples={declared} but the data holds {ntime} "
            f"whole spectra ({data_bytes} bytes)"
        )
    if rem:
        if ntime < 1:
            raise FilterbankError(
                f"nchans={nchans} does not match the data size: {data_bytes} bytes of data is less than "
                f"one spectrum of nchans×nifs×{dtype.itemsize} = {spectrum_bytes} bytes"
            )
        raise FilterbankError(
            f"truncated file: {data_bytes} bytes of data is not a whole number of spectra "
            f"({spectrum_bytes} bytes each for nchans={nchans}, nifs={nifs}, nbits={nbits}); the last "
            f"spectrum stops after {rem} bytes (or nchans does not match the data size)"
        )
    if ntime < 2:
        raise FilterbankError(f"fewer than 2 time steps: the file holds {ntime} spectrum(s)")
    return FilterbankInfo(
        path=path,
        fmt="fil",
        header=header,
        nchans=nchans,
        nifs=nifs,
        nbits=nbits,
        ntime=int(ntime),
        fch1=float(header["fch1"]),
        foff=float(header["foff"]),
        tsamp=float(header["tsamp"]),
        header_size=hsize,
        dtype=dtype,
    )


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v.item()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _open_h5(path: Path) -> FilterbankInfo:
    import h5py
    import hdf5plugin  # noqa: F401  (registers bitshuffle)

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FilterbankError(f"truncated or corrupt HDF5 file: {exc}") from exc
    # A corrupt file opens and then fails on its objects with h5py's KeyError, RuntimeError or
    # OSError: bad input (the job fails at once), not a service error to retry.
    with f:
        try:
            if "data" not in f:
                raise FilterbankError("an .h5 without 'data': no FBH5 'data' dataset in the file")
            ds = f["data"]
            if not isinstance(ds, h5py.Dataset):
                raise FilterbankError("an .h5 without 'data': 'data' is a group, not a dataset")
            header = {str(k): _attr_value(v) for k, v in ds.attrs.items() if k != "DIMENSION_LABELS"}
            shape = ds.shape
            dt = ds.dtype
        except (KeyError, RuntimeError, OSError) as exc:
            raise FilterbankError(f"truncated or corrupt HDF5 file: {exc}") from exc
    if len(shape) != 3:
        raise FilterbankError(f"FBH5 'data' must be 3-D (ntime, nifs, nchans), it is {len(shape)}-D {shape}")
    header.setdefault("nifs", shape[1])
    header.setdefault("nbits", dt.itemsize * 8)
    unknown = sorted(set(header) - INT_KEYS - DOUBLE_KEYS - STRING_KEYS - BYTE_KEYS)
    # FBH5 writers add bookkeeping attributes; only data-describing ones matter here.
    header = {k: v for k, v in header.items() if k not in unknown}
    _validate_header(header, "FBH5 'data' attributes")
    nchans = int(header["nchans"])
    if nchans != shape[2]:
        raise FilterbankError(
            f"nchans={nchans} does not match the data size: the 'data' dataset has {shape[2]} channels"
        )
    if int(header["nifs"]) != shape[1]:
        raise FilterbankError(f"nifs={header['nifs']} does not match the 'data' dataset ({shape[1]} IFs)")
    if shape[0] < 2:
        raise FilterbankError(f"fewer than 2 time steps: the 'data' dataset holds {shape[0]} spectrum(s)")
    if dt.kind not in "fiu":
        raise FilterbankError(f"FBH5 'data' has an unsupported dtype {dt}")
    return FilterbankInfo(
        path=path,
        fmt="h5",
        header=header,
        nchans=nchans,
        nifs=int(shape[1]),
        nbits=dt.itemsize * 8,
        ntime=int(shape[0]),
        fch1=float(header["fch1"]),
        foff=float(header["foff"]),
        tsamp=float(header["tsamp"]),
        dtype=dt,
    )


def decoded_bytes(info: FilterbankInfo) -> int:
    """The size of the data once decoded, from the header or dataset shape alone (nothing is read)."""
    return int(info.ntime) * int(info.nifs) * int(info.nchans) * int(info.dtype.itemsize)


def check_decoded_size(info: FilterbankInfo, max_bytes: int) -> None:
    """Refuse a file whose decoded data exceeds `max_bytes` (0: no limit), before any of it is read.

    The tier's limit is checked on the upload's size at admission, but a gzip- or
    bitshuffle-compressed .h5 of a few kB can declare gigabytes (a chunked dataset never written
    decodes to its fill value): it would hold a searcher for minutes and write gigabytes of exports.
    """
    size = decoded_bytes(info)
    if max_bytes > 0 and size > max_bytes:
        mb = 1024 * 1024
        raise FilterbankError(
            f"the data decodes to {size / mb:,.1f} MB ({info.ntime} spectra × {info.nifs} IF × "
            f"{info.nchans} channels × {info.dtype.itemsize} bytes), over the tier's limit of "
            f"{max_bytes / mb:,.0f} MB; the limit applies to the decoded data, not the compressed file"
        )


def coarse_channel_size(nchans: int, override: int | None = None) -> int:
    """Fine channels per coarse channel (see the module docstring for the rule)."""
    if override is not None:
        if override < 1 or nchans % override:
            raise ValueError(f"coarse channel size {override} does not divide nchans={nchans}")
        return override
    if nchans % BL_COARSE == 0:
        return BL_COARSE
    p = BL_COARSE
    while p >= 1024:
        if nchans % p == 0:
            return p
        p //= 2
    return nchans


class _Reader:
    """Reads ascending-frequency windows of one IF (or the IF sum) as float32 (ntime, n)."""

    def __init__(self, info: FilterbankInfo, if_index: int | None) -> None:
        if if_index is not None and not 0 <= if_index < info.nifs:
            raise ValueError(f"if_index={if_index} out of range for nifs={info.nifs}")
        self.info = info
        self.ifs = [if_index] if if_index is not None else list(range(info.nifs))
        self._fd: int | None = None
        self._h5: Any = None
        if info.fmt == "fil":
            self._fd = os.open(info.path, os.O_RDONLY)
        else:
            import h5py
            import hdf5plugin  # noqa: F401

            self._h5 = h5py.File(info.path, "r")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> _Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_file_cols(self, c0: int, c1: int) -> FloatArray:
        """File-order channels [c0, c1) for all times: float32 (ntime, c1 - c0), IFs summed."""
        info = self.info
        n = c1 - c0
        out = np.zeros((info.ntime, n), dtype=np.float32)
        if self._fd is not None:
            isz = info.dtype.itemsize
            row_bytes = info.nchans * isz
            buf = bytearray(n * isz)
            for t in range(info.ntime):
                for ifn in self.ifs:
                    off = info.header_size + (t * info.nifs + ifn) * row_bytes + c0 * isz
                    got = os.preadv(self._fd, [buf], off)
                    if got != len(buf):
                        raise FilterbankError(f"truncated file: short read at time step {t}")
                    out[t] += np.frombuffer(buf, dtype=info.dtype)
        else:
            try:
                ds = self._h5["data"]
                for ifn in self.ifs:
                    out += np.asarray(ds[:, ifn, c0:c1], dtype=np.float32)
            except (KeyError, RuntimeError, OSError) as exc:
                raise FilterbankError(f"truncated or corrupt HDF5 data: {exc}") from exc
        if info.dtype.kind == "f" and not np.isfinite(out).all():
            bad = np.argwhere(~np.isfinite(out))[0]
            raise FilterbankError(
                f"data contains NaN or inf values (first at time step {bad[0]}, file channel {c0 + bad[1]})"
            )
        return out

    def read_asc(self, a0: int, a1: int) -> FloatArray:
        """Ascending channels [a0, a1): float32 (ntime, a1 - a0), lowest frequency first."""
        info = self.info
        a0, a1 = max(0, a0), min(info.nchans, a1)
        if a1 <= a0:
            return np.zeros((info.ntime, 0), dtype=np.float32)
        if not info.descending:
            return self._read_file_cols(a0, a1)
        c0, c1 = info.nchans - a1, info.nchans - a0
        return np.ascontiguousarray(self._read_file_cols(c0, c1)[:, ::-1])


def iter_coarse_channels(
    info: FilterbankInfo, coarse_size: int | None = None, if_index: int | None = 0
) -> Iterator[tuple[int, F64Array, FloatArray]]:
    """Yield ``(k, freq_mhz, data)`` per coarse channel in ascending frequency.

    ``k`` counts coarse channels from the lowest frequency, ``freq_mhz`` is the ascending axis of the
    chunk and ``data`` is float32 ``(ntime, n)``.  Only one chunk is held at a time.
    """
    n = coarse_channel_size(info.nchans, coarse_size)
    with _Reader(info, if_index) as rd:
        for k in range(info.nchans // n):
            data = rd.read_asc(k * n, (k + 1) * n)
            yield k, info.freq_mhz(np.arange(k * n, (k + 1) * n)), data


def read_window(info: FilterbankInfo, a0: int, a1: int, if_index: int | None = 0) -> FloatArray:
    """Ascending channels [a0, a1) (clipped to the band) as float32 (ntime, n)."""
    with _Reader(info, if_index) as rd:
        return rd.read_asc(a0, a1)
