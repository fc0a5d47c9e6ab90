from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from actors.watcher.checks import (
    Expectations,
    SubbandFileError,
    check_subband_file,
    parse_filename,
    tile_calibrator,
)
from sim.observation import SimResult


def _copy(src: str, dst_dir: Path, name: str | None = None) -> Path:
    dst = dst_dir / (name or Path(src).name)
    shutil.copy(src, dst)
    return dst


def _reason(path: Path, **kw) -> str:
    with pytest.raises(SubbandFileError) as ei:
        check_subband_file(path, **kw)
    assert isinstance(ei.value, ValueError)
    assert Path(path).name in str(ei.value)
    return ei.value.reason


def test_good_file(group: SimResult) -> None:
    f = group.groups[0].files[3]
    info = check_subband_file(f)
    assert info.subband == 3
    assert info.timestamp == Path(f).name[:19]
    assert info.n_ants == 4 and info.n_freqs == 4 and info.n_times == 24 and info.n_pols == 2
    assert info.n_blts == 24 * 10
    assert info.freqs_descending
    assert info.dec_deg == pytest.approx(54.0)
    assert 60972.5 < info.mid_mjd < 60972.7
    assert check_subband_file(f, Expectations(n_channels=4, n_ants=4)).subband == 3
    assert tile_calibrator(info) is None  # no calibrator transits this tile
    assert tile_calibrator(info, dec_deg=-80.0) is None


def test_calibrator_tile(tmp_path: Path) -> None:
    from sim.observation import simulate

    res = simulate(tmp_path, 1, "2025-10-24T12:00:00", None, calibrator="3C286", n_ants=3, n_channels=2,
                   subbands=[0], noise=False)
    assert tile_calibrator(check_subband_file(res.groups[0].files[0])) == "3C286"


def test_bad_names(tmp_path: Path) -> None:
    for name in ("foo.hdf5", "2025-10-24T14:00:00_sb3.hdf5", "2025-13-24T14:00:00_sb03.hdf5"):
        p = tmp_path / name
        p.write_bytes(b"x")
        assert _reason(p) == "bad_name"
    assert parse_filename("2025-10-24T14:00:00_sb16.hdf5")[2] == 16
    (tmp_path / "2025-10-24T14:00:00_sb16.hdf5").write_bytes(b"x")
    assert _reason(tmp_path / "2025-10-24T14:00:00_sb16.hdf5") == "bad_name"  # only 16 subbands
    assert _reason(tmp_path / "2025-10-24T14:00:00_sb02.hdf5") == "missing"


def test_empty_and_not_hdf5(tmp_path: Path) -> None:
    p = tmp_path / "2025-10-24T14:00:00_sb00.hdf5"
    p.write_bytes(b"")
    assert _reason(p) == "empty"
    p.write_bytes(b"this is a text file, not HDF5\n" * 100)
    assert _reason(p) == "not_hdf5"


def test_half_written_file(group: SimResult, tmp_path: Path) -> None:
    src = Path(group.groups[0].files[0])
    data = src.read_bytes()
    p = tmp_path / src.name
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(SubbandFileError) as ei:
        check_subband_file(p)
    assert ei.value.reason == "incomplete" and ei.value.retryable
    p.write_bytes(data[:200])  # just created, superblock not flushed
    assert _reason(p) in ("incomplete", "not_hdf5")
    p.write_bytes(data)
    assert _reason(p, previous_size=len(data) // 2) == "incomplete"  # size changed since last look
    assert check_subband_file(p, previous_size=len(data)).subband == 0


def test_hdf5_but_not_uvh5(tmp_path: Path, group: SimResult) -> None:
    p = tmp_path / "2025-10-24T14:00:00_sb01.hdf5"
    with h5py.File(p, "w") as fh:
        fh["something"] = np.arange(10)
    assert _reason(p) == "not_uvh5"
    # header but no data
    q = _copy(group.groups[0].files[1], tmp_path, "2025-10-24T14:00:01_sb01.hdf5")
    with h5py.File(q, "a") as fh:
        del fh["Data"]
    assert _reason(q) == "not_uvh5"
    r = _copy(group.groups[0].files[1], tmp_path, "2025-10-24T14:00:02_sb01.hdf5")
    with h5py.File(r, "a") as fh:
        del fh["Header/Nblts"]
    assert _reason(r) == "not_uvh5"


def test_wrong_shape(group: SimResult, tmp_path: Path) -> None:
    f = group.groups[0].files[2]
    assert _reason(Path(f), expect=Expectations(n_channels=48)) == "wrong_shape"
    assert _reason(Path(f), expect=Expectations(n_ants=96)) == "wrong_shape"
    # sb02's data under an sb07 name: frequencies outside the subband
    p = _copy(f, tmp_path, Path(f).name.replace("_sb02", "_sb07"))
    assert _reason(p) == "wrong_shape"
    # data array shape disagreeing with the header
    q = _copy(f, tmp_path)
    with h5py.File(q, "a") as fh:
        vis = fh["Data/visdata"][()]
        del fh["Data/visdata"]
        fh["Data/visdata"] = vis[:, :2]
    assert _reason(q) == "wrong_shape"
