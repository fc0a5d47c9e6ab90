"""Writing SIGPROC ``.fil`` and FBH5 ``.h5`` filterbank files: the simulator's and the tests' side.

The reader (:mod:`.filterbank`) is what the service runs on untrusted uploads; the writers only
ever see data this project made, so they live apart and the reader stays about reading.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .filterbank import BYTE_KEYS, DOUBLE_KEYS, INT_KEYS, STRING_KEYS, _dtype_for


def _pack_string(s: str) -> bytes:
    b = s.encode("ascii")
    return struct.pack("<i", len(b)) + b


def sigproc_header_bytes(header: Mapping[str, Any]) -> bytes:
    """Serialise a header dict to SIGPROC bytes (keyword types implied by name)."""
    out = [_pack_string("HEADER_START")]
    for key, val in header.items():
        if key in INT_KEYS:
            out += [_pack_string(key), struct.pack("<i", int(val))]
        elif key in DOUBLE_KEYS:
            out += [_pack_string(key), struct.pack("<d", float(val))]
        elif key in STRING_KEYS:
            out += [_pack_string(key), _pack_string(str(val))]
        elif key in BYTE_KEYS:
            out += [_pack_string(key), struct.pack("<B", int(val))]
        else:
            raise ValueError(f"header keyword {key!r} is not a SIGPROC keyword")
    out.append(_pack_string("HEADER_END"))
    return b"".join(out)


def _full_header(header: Mapping[str, Any], nchans: int, nifs: int, nbits: int) -> dict[str, Any]:
    h: dict[str, Any] = {
        "telescope_id": 6,
        "machine_id": 10,
        "data_type": 1,
        "source_name": "SYNTHETIC",
        "barycentric": 0,
        "pulsarcentric": 0,
        "src_raj": 0.0,
        "src_dej": 0.0,
        "az_start": 0.0,
        "za_start": 0.0,
        "tstart": 60000.0,
    }
    h.update(header)
    h.update({"nchans": nchans, "nifs": nifs, "nbits": nbits})
    for k in ("fch1", "foff", "tsamp"):
        if k not in h:
            raise ValueError(f"header needs {k!r}")
    return h


def _as_dtype(data: npt.NDArray[Any], nbits: int) -> npt.NDArray[Any]:
    dt = _dtype_for(nbits, False)
    if dt.kind == "f":
        return np.asarray(data, dtype=dt)
    info = np.iinfo(dt)
    return np.clip(np.rint(data), info.min, info.max).astype(dt)


class FilWriter:
    """Streams a SIGPROC file spectrum by spectrum (the writer used for files too big for memory)."""

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any], nchans: int,
                 nifs: int = 1, nbits: int = 32) -> None:
        self.nbits = nbits
        self.nchans = nchans
        self.nifs = nifs
        self._fh = Path(path).open("wb")
        self._fh.write(sigproc_header_bytes(_full_header(header, nchans, nifs, nbits)))

    def write(self, spectra: npt.NDArray[Any]) -> None:
        """Append spectra shaped (nt, nifs, nchans) or (nt, nchans) for nifs == 1, file channel order."""
        arr = np.asarray(spectra)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.shape[1:] != (self.nifs, self.nchans):
            raise ValueError(f"spectra shape {arr.shape} does not match nifs={self.nifs}, nchans={self.nchans}")
        self._fh.write(np.ascontiguousarray(_as_dtype(arr, self.nbits)).tobytes())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> FilWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_fil(path: str | os.PathLike[str], header: Mapping[str, Any], data: npt.NDArray[Any],
              nbits: int = 32) -> Path:
    """Write ``data`` (ntime, nifs, nchans) or (ntime, nchans), file channel order, as SIGPROC."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    with FilWriter(path, header, nchans=arr.shape[2], nifs=arr.shape[1], nbits=nbits) as w:
        w.write(arr)
    return Path(path)


def write_h5(path: str | os.PathLike[str], header: Mapping[str, Any], data: npt.NDArray[Any],
             nbits: int = 32, compression: str | None = "bitshuffle") -> Path:
    """Write an FBH5 file: dataset ``data`` (ntime, nifs, nchans) with the header as its attributes."""
    import h5py
    import hdf5plugin

    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[:, None, :]
    arr = _as_dtype(arr, nbits)
    h = _full_header(header, arr.shape[2], arr.shape[1], nbits)
    kwargs: dict[str, Any] = {}
    if compression == "bitshuffle":
        kwargs.update(hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))
        kwargs["chunks"] = (1, 1, min(arr.shape[2], 1 << 16))
    with h5py.File(path, "w") as f:
        f.attrs["CLASS"] = "FILTERBANK"
        f.attrs["VERSION"] = "2.0"
        ds = f.create_dataset("data", data=arr, **kwargs)
        ds.attrs["DIMENSION_LABELS"] = np.array(["time", "feed_id", "frequency"], dtype=object)
        for k, v in h.items():
            ds.attrs[k] = v
    return Path(path)
