"""Readers and writers: every format, nbits, foff sign and nifs; every bad-file case names its problem."""

from __future__ import annotations

import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from actors.searcher.filterbank import (
    FilterbankError,
    coarse_channel_size,
    iter_coarse_channels,
    open_filterbank,
    read_window,
)
from actors.searcher.filterbank_writer import sigproc_header_bytes, write_fil, write_h5

HDR = {"fch1": 1400.0, "foff": -0.001, "tsamp": 1.0, "source_name": "T", "tstart": 60000.5,
       "src_raj": 123456.7, "src_dej": -123456.7, "refdm": 0.0, "period": 0.0, "rawdatafile": "x.raw"}


def _data(ntime: int, nifs: int, nchans: int, nbits: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    hi = {8: 200, 16: 60000, 32: 1000}[nbits]
    d = rng.integers(0, hi, size=(ntime, nifs, nchans)).astype(np.float32)
    if nbits == 32:
        d += 0.25
    return d


def _write(fmt: str, path: Path, header: dict, data: np.ndarray, nbits: int) -> Path:
    return write_fil(path, header, data, nbits) if fmt == "fil" else write_h5(path, header, data, nbits)


@pytest.mark.parametrize("fmt", ["fil", "h5"])
@pytest.mark.parametrize("nbits", [8, 16, 32])
@pytest.mark.parametrize("foff", [-0.001, 0.001])
@pytest.mark.parametrize("nifs", [1, 2])
def test_roundtrip_ascending(tmp_path: Path, fmt: str, nbits: int, foff: float, nifs: int) -> None:
    data = _data(5, nifs, 4096, nbits)
    p = _write(fmt, tmp_path / f"x.{fmt}", {**HDR, "foff": foff}, data, nbits)
    info = open_filterbank(p)
    assert (info.fmt, info.nbits, info.nifs, info.ntime, info.nchans) == (fmt, nbits, nifs, 5, 4096)
    assert info.header["source_name"] == "T"
    assert info.header["src_raj"] == pytest.approx(123456.7)
    asc = data if foff > 0 else data[:, :, ::-1]
    chunks = list(iter_coarse_channels(info, coarse_size=1024, if_index=0))
    assert [k for k, _, _ in chunks] == [0, 1, 2, 3]
    got = np.concatenate([c for _, _, c in chunks], axis=1)
    np.testing.assert_array_equal(got, asc[:, 0, :])
    freqs = np.concatenate([f for _, f, _ in chunks])
    assert np.all(np.diff(freqs) > 0)
    assert freqs[0] == pytest.approx(min(1400.0, 1400.0 + 4095 * foff))
    if nifs == 2:
        summed = np.concatenate([c for _, _, c in iter_coarse_channels(info, 1024, if_index=None)], axis=1)
        np.testing.assert_array_equal(summed, asc.sum(axis=1))
    np.testing.assert_array_equal(read_window(info, 100, 200), asc[:, 0, 100:200])
    # ascending index <-> file index
    assert info.to_asc_index(info.to_file_index(17)) == 17


def test_coarse_channel_rule() -> None:
    assert coarse_channel_size(1 << 24) == 1 << 20
    assert coarse_channel_size(1 << 20) == 1 << 20
    assert coarse_channel_size(64 * 3 * 1024) == 65536
    assert coarse_channel_size(1000) == 1000
    assert coarse_channel_size(4096, override=512) == 512
    with pytest.raises(ValueError, match="does not divide"):
        coarse_channel_size(4096, override=1000)


def _good_fil(tmp_path: Path, ntime: int = 4, nchans: int = 256) -> Path:
    return write_fil(tmp_path / "g.fil", HDR, _data(ntime, 1, nchans, 32), 32)


def test_truncated_data(tmp_path: Path) -> None:
    p = _good_fil(tmp_path)
    b = p.read_bytes()
    p.write_bytes(b[:-37])
    with pytest.raises(FilterbankError, match="truncated file"):
        open_filterbank(p)


def test_truncated_header(tmp_path: Path) -> None:
    p = _good_fil(tmp_path)
    hb = sigproc_header_bytes({**HDR, "nchans": 256, "nbits": 32, "nifs": 1})
    p.write_bytes(hb[: len(hb) - 20])
    with pytest.raises(FilterbankError, match="truncated file"):
        open_filterbank(p)


def test_unknown_keyword(tmp_path: Path) -> None:
    hb = sigproc_header_bytes({**HDR, "nchans": 8, "nbits": 32})
    bad = hb.replace(b"\x0a\x00\x00\x00HEADER_END", struct.pack("<i", 3) + b"foo" + struct.pack("<i", 1)
                     + b"\x0a\x00\x00\x00HEADER_END")
    p = tmp_path / "u.fil"
    p.write_bytes(bad + np.zeros((4, 8), np.float32).tobytes())
    with pytest.raises(FilterbankError, match="header keyword 'foo' is not a SIGPROC keyword"):
        open_filterbank(p)


def test_nchans_mismatch_fil(tmp_path: Path) -> None:
    hb = sigproc_header_bytes({**HDR, "nchans": 100000, "nbits": 32, "nifs": 1})
    p = tmp_path / "n.fil"
    p.write_bytes(hb + np.ones((4, 256), np.float32).tobytes())
    with pytest.raises(FilterbankError, match="nchans=100000 does not match the data size"):
        open_filterbank(p)


def test_nchans_mismatch_h5(tmp_path: Path) -> None:
    p = write_h5(tmp_path / "n.h5", HDR, _data(4, 1, 256, 32))
    with h5py.File(p, "a") as f:
        f["data"].attrs["nchans"] = 300
    with pytest.raises(FilterbankError, match="nchans=300 does not match the data size"):
        open_filterbank(p)


@pytest.mark.parametrize("fmt", ["fil", "h5"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path: Path, fmt: str, bad: float) -> None:
    d = _data(4, 1, 256, 32)
    d[2, 0, 77] = bad
    p = _write(fmt, tmp_path / f"n.{fmt}", {**HDR, "foff": 0.001}, d, 32)
    info = open_filterbank(p)
    with pytest.raises(FilterbankError, match=r"NaN or inf values \(first at time step 2, file channel 77\)"):
        list(iter_coarse_channels(info))


@pytest.mark.parametrize("fmt", ["fil", "h5"])
def test_one_time_step(tmp_path: Path, fmt: str) -> None:
    p = _write(fmt, tmp_path / f"o.{fmt}", HDR, _data(1, 1, 256, 32), 32)
    with pytest.raises(FilterbankError, match="fewer than 2 time steps"):
        open_filterbank(p)


def test_h5_without_data(tmp_path: Path) -> None:
    p = tmp_path / "e.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("other", data=np.zeros(3))
    with pytest.raises(FilterbankError, match=r"an \.h5 without 'data'"):
        open_filterbank(p)


def test_h5_truncated(tmp_path: Path) -> None:
    p = write_h5(tmp_path / "t.h5", HDR, _data(8, 1, 4096, 32))
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    with pytest.raises(FilterbankError, match="truncated"):
        info = open_filterbank(p)
        list(iter_coarse_channels(info))


@pytest.mark.parametrize("content", [b"hello, world\n" * 10, b"", b"\x00" * 100, b"SIMPLE  =  T" * 100])
def test_not_a_filterbank(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.fil"
    p.write_bytes(content)
    with pytest.raises(FilterbankError, match="not a filterbank"):
        open_filterbank(p)


def test_missing_required_keyword(tmp_path: Path) -> None:
    hdr = {k: v for k, v in HDR.items() if k != "tsamp"}
    p = tmp_path / "m.fil"
    p.write_bytes(sigproc_header_bytes({**hdr, "nchans": 8, "nbits": 32}) + bytes(4 * 8 * 4))
    with pytest.raises(FilterbankError, match="lacks the required keyword 'tsamp'"):
        open_filterbank(p)


def test_unsupported_nbits(tmp_path: Path) -> None:
    p = tmp_path / "b.fil"
    p.write_bytes(sigproc_header_bytes({**HDR, "nchans": 8, "nbits": 4}) + bytes(64))
    with pytest.raises(FilterbankError, match="nbits=4 is not supported"):
        open_filterbank(p)


def test_error_is_value_error() -> None:
    assert issubclass(FilterbankError, ValueError)
