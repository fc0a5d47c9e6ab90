from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time
from casacore import tables
from pyuvdata import UVData

from actors.watcher.convert import ConversionError, convert_group, ms_path_for, read_ms_summary
from astro.coordinates import meridian_ra_deg
from astro.instrument import band_frequencies_hz
from sim.observation import SimResult


@pytest.fixture(scope="module")
def converted(group: SimResult, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ms")
    return convert_group(group.groups[0].files, out), out


def test_ms_structure(converted, group: SimResult) -> None:
    info, out = converted
    g = group.groups[0]
    assert info.path == ms_path_for(out, info.group_id) and info.path.is_dir()
    assert info.n_subbands == 16 and info.flagged_subbands == ()
    assert info.n_rows == 24 * 10 and info.n_channels == 64 and info.n_antennas == 4
    assert info.mid_mjd == pytest.approx(g.mid_mjd, abs=1e-6)
    s = read_ms_summary(info.path)
    assert s["n_rows"] == 240
    freqs = s["chan_freq"]
    assert np.all(np.diff(freqs) > 0) and np.allclose(freqs, band_frequencies_hz(4))
    # phase centre: the meridian at the pointing dec at the tile's middle time
    ra_mid = float(meridian_ra_deg(Time(g.mid_mjd, format="mjd"), 54.0))
    assert s["phase_center_ra_deg"] == pytest.approx(ra_mid, abs=1e-6)
    assert s["phase_center_dec_deg"] == pytest.approx(54.0, abs=1e-9)
    assert s["field_name"] == info.field_name and info.field_name.startswith("J") and info.field_name.endswith("+54")
    for sub in ("ANTENNA", "SPECTRAL_WINDOW", "FIELD", "POLARIZATION", "DATA_DESCRIPTION", "OBSERVATION"):
        with tables.table(f"{info.path}/{sub}", ack=False) as t:
            assert t.nrows() >= 1
    with tables.table(str(info.path), ack=False) as t:
        assert t.getcol("DATA").shape == (240, 64, 2)
        assert not t.getcol("FLAG").any()
        times = np.unique(t.getcol("TIME"))
        assert times.size == 24
    with tables.table(f"{info.path}/POLARIZATION", ack=False) as t:
        assert list(t.getcol("CORR_TYPE")[0]) == [9, 12]  # XX, YY


def test_ms_matches_pyuvdata_phasing(converted, group: SimResult) -> None:
    info, _ = converted
    ms = UVData()
    ms.read(str(info.path))
    ref = UVData()
    ref.read(list(group.groups[0].files), file_type="uvh5")
    ref.reorder_freqs(channel_order="freq")
    ref.phase(ra=math.radians(info.phase_center_ra_deg), dec=math.radians(info.phase_center_dec_deg),
              cat_name=info.field_name)
    ms.reorder_blts(order="time", minor_order="baseline")
    ref.reorder_blts(order="time", minor_order="baseline")
    assert np.allclose(ms.freq_array, ref.freq_array)
    assert np.allclose(ms.uvw_array, ref.uvw_array, atol=1e-6)
    scale = np.abs(ref.data_array).max()
    assert np.abs(ms.data_array - ref.data_array).max() < 1e-5 * scale


def test_idempotent_and_missing(group: SimResult, tmp_path: Path) -> None:
    files = list(group.groups[0].files)
    a = convert_group(files, tmp_path)
    mtime = a.path.stat().st_mtime_ns
    b = convert_group(files, tmp_path)  # redelivered: same path, rewritten
    assert b.path == a.path and sorted(p.name for p in tmp_path.iterdir()) == [a.path.name]
    assert b.path.stat().st_mtime_ns >= mtime
    partial = [f for f in files if "_sb05" not in f and "_sb11" not in f]
    with pytest.raises(ConversionError, match="sb05, sb11"):
        convert_group(partial, tmp_path / "p")
    c = convert_group(partial, tmp_path / "p", missing_ok=True)
    assert c.flagged_subbands == (5, 11) and c.n_subbands == 14 and c.n_channels == 64
    with tables.table(str(c.path), ack=False) as t:
        flags = t.getcol("FLAG")
        freqs = tables.table(f"{c.path}/SPECTRAL_WINDOW", ack=False).getcol("CHAN_FREQ")[0]
    flagged_chans = np.where(flags.all(axis=(0, 2)))[0]
    # ascending band: sb15 is channels 0-3, sb11 channels 16-19, sb05 channels 40-43
    assert list(flagged_chans) == [16, 17, 18, 19, 40, 41, 42, 43]
    assert np.allclose(freqs, band_frequencies_hz(4))
    assert not flags[:, [i for i in range(64) if i not in flagged_chans]].any()


def test_inconsistent_groups_rejected(group: SimResult, tmp_path: Path) -> None:
    files = list(group.groups[0].files)
    with pytest.raises(ConversionError, match="duplicate"):
        convert_group([*files, files[0]], tmp_path)
    with pytest.raises(ConversionError):
        convert_group([], tmp_path)
    bad = tmp_path / Path(files[0]).name
    bad.write_bytes(b"not hdf5" * 100)
    with pytest.raises(ConversionError, match="not an HDF5"):
        convert_group([str(bad), *files[1:]], tmp_path)
