from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from pyuvdata import UVData

from astro import instrument as ins
from astro.catalogue import Catalogue, Source, load_catalogue
from astro.coordinates import meridian_ra_deg
from astro.primary_beam import airy_beam
from sim.cli import main
from sim.gains import load_true_gains
from sim.observation import SimResult, SimulationError, plan_groups, simulate

NAME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})_sb(\d{2})\.hdf5$")


def _read(path: str | Path) -> UVData:
    uv = UVData()
    uv.read(str(path), file_type="uvh5")
    return uv


def test_group_has_16_valid_uvh5_files(tiny_sim: SimResult) -> None:
    (g,) = tiny_sim.groups
    assert len(g.files) == 16
    stamps = []
    for sb, f in enumerate(g.files):
        m = NAME.match(Path(f).name)
        assert m and int(m.group(2)) == sb
        stamps.append(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    spread = (max(stamps) - min(stamps)).total_seconds()
    assert 0 < spread <= 10  # jitter of a few seconds
    nominal = datetime.strptime(g.group_id, "%Y-%m-%dT%H:%M:%S")
    assert all(abs((s - nominal).total_seconds()) <= 5 for s in stamps)
    uvs = [_read(g.files[0]), _read(g.files[15])]
    for uv in uvs:
        assert uv.Ntimes == 24 and uv.Nfreqs == 4 and uv.Npols == 2
        assert uv.Nants_data == 5 and uv.Nbls == 15  # autos included
        assert list(uv.polarization_array) == [-5, -6]  # XX, YY
        assert np.allclose(uv.integration_time, ins.INTEGRATION_TIME_S)
        assert np.all(np.diff(uv.freq_array) < 0)  # descending inside the file
        cat = uv.phase_center_catalog[uv.phase_center_id_array[0]]
        assert cat["cat_type"] == "unprojected"  # drift scan
        assert uv.telescope.name == "DSA-110"
        assert uv.extra_keywords["phase_center_dec"] == pytest.approx(math.radians(54.0))
    assert uvs[0].freq_array.min() > uvs[1].freq_array.max()  # sb00 highest
    lo, hi = ins.subband_edges_hz(0)
    assert lo < uvs[0].freq_array.min() and uvs[0].freq_array.max() < hi
    dt = np.diff(np.unique(uvs[0].time_array)) * 86400
    assert np.allclose(dt, ins.INTEGRATION_TIME_S, atol=1e-3)
    # real station positions: DSA-110 antenna names, longest baseline of the 5 ~ km
    assert all(n.startswith("DSA-") for n in uvs[0].telescope.antenna_names)
    # autos are real and near the SEFD
    a0 = int(uvs[0].ant_1_array[0])
    autos = uvs[0].get_data(a0, a0, "xx")
    assert np.allclose(autos.imag, 0) and 3000 < np.median(autos.real) < 12000


def test_truth_files_beside_the_data(tiny_sim: SimResult) -> None:
    cat = load_catalogue(tiny_sim.catalogue_path)
    assert len(cat) > 100
    g = tiny_sim.groups[0]
    gains = load_true_gains(g.gains_file)
    assert gains.gain.shape == (24, 5, 2) and gains.bandpass.shape == (5, 64, 2)
    assert np.all(np.abs(gains.full()) > 0.3)
    man = json.loads(tiny_sim.manifest_path.read_text())
    assert g.group_id in man["groups"]


def test_deterministic_catalogue_across_runs(tmp_path: Path, tiny_sim: SimResult) -> None:
    plans, _ = plan_groups(1, Time("2025-10-24T14:00:00"), 54.0)
    a = load_catalogue(tiny_sim.catalogue_path)
    res = simulate(tmp_path, 1, "2025-10-24T14:00:00", 54.0, n_ants=3, n_channels=2, seed=7,
                   subbands=[0], noise=False)
    b = load_catalogue(res.catalogue_path)
    assert a == b
    assert plans[0].start.isot.startswith("2025-10-24T14:00:00")


def _point_source_sim(tmp_path: Path, gains: bool) -> tuple[SimResult, Source]:
    t0 = Time("2025-10-24T14:00:00")
    mid = t0 + (ins.TILE_DURATION_S / 2) * u.s
    ra = float(meridian_ra_deg(mid, 54.0))
    src = Source("NVSS J000000.0+000000", ra, 54.0, 10.0, 0.0)
    res = simulate(tmp_path, 1, t0, 54.0, n_ants=6, n_channels=4, seed=11, noise=False, gains=gains,
                   catalogue=Catalogue((src,)), include_calibrators=False, subbands=[3], jitter_s=0)
    return res, src


def test_point_source_at_phase_centre_has_expected_amplitude(tmp_path: Path) -> None:
    res, src = _point_source_sim(tmp_path, gains=True)
    g = res.groups[0]
    uv = _read(g.files[0])
    # remove the true gains: V_true = V / (g1 conj(g2))
    tg = load_true_gains(g.gains_file)
    full = tg.full()  # (Nt, Na, Nf, 2), band ascending
    fidx = np.searchsorted(tg.freqs_hz, uv.freq_array)
    t_idx = np.searchsorted(tg.times_jd, uv.time_array - 1e-9)
    ant_idx = {a: i for i, a in enumerate(tg.antenna_numbers)}
    i1 = np.array([ant_idx[a] for a in uv.ant_1_array])
    i2 = np.array([ant_idx[a] for a in uv.ant_2_array])
    gg = full[t_idx, i1][:, fidx] * np.conj(full[t_idx, i2][:, fidx])
    uv.data_array = uv.data_array / gg
    uv.phase(ra=math.radians(src.ra_deg), dec=math.radians(src.dec_deg), cat_name="src")
    cross = uv.ant_1_array != uv.ant_2_array
    mid_rows = cross & (np.abs(uv.time_array - np.median(np.unique(uv.time_array))) < 8 / 86400)
    d = uv.data_array[mid_rows]
    # at transit the source is at the beam centre: amplitude = S, phase 0
    assert np.allclose(np.abs(d), src.flux_jy, rtol=0.01)
    assert np.degrees(np.abs(np.angle(d))).max() < 1.0
    # earlier, the beam attenuates it as the Airy pattern says
    first = cross & (uv.time_array == uv.time_array.min())
    sep = ins.TILE_DURATION_S / 2 / 86164.1 * 2 * np.pi * np.cos(np.radians(54.0))
    expect = src.flux_jy * airy_beam(sep, uv.freq_array)
    assert np.allclose(np.abs(uv.data_array[first]).mean(axis=(0, 2)), expect, rtol=0.02)


def test_thermal_noise_level(tmp_path: Path) -> None:
    res = simulate(tmp_path, 1, "2025-10-24T14:00:00", 54.0, n_ants=8, n_channels=4, seed=3, gains=False,
                   catalogue=Catalogue(()), include_calibrators=False, subbands=[5])
    uv = _read(res.groups[0].files[0])
    cross = uv.ant_1_array != uv.ant_2_array
    d = uv.data_array[cross]
    sigma = ins.thermal_sigma_jy(ins.channel_width_hz(4), ins.INTEGRATION_TIME_S)
    assert np.std(d.real) == pytest.approx(sigma, rel=0.05)
    assert np.std(d.imag) == pytest.approx(sigma, rel=0.05)
    assert abs(np.mean(d)) < 0.1 * sigma


def test_calibrator_groups_and_cli(tmp_path: Path) -> None:
    rc = main(["--out", str(tmp_path), "--groups", "2", "--start", "2025-10-24T12:00:00", "--calibrator", "3C286",
               "--antennas", "3", "--channels", "2", "--missing", "4,9", "--no-noise"])
    assert rc == 0
    man = json.loads((tmp_path / "simulation.json").read_text())
    groups = sorted(man["groups"].values(), key=lambda g: g["group_id"])
    assert groups[0]["calibrator"] == "3C286" and groups[1]["calibrator"] is None
    assert len(groups[0]["files"]) == 14
    assert not any("_sb04" in f or "_sb09" in f for f in groups[0]["files"])
    assert groups[0]["dec_deg"] == pytest.approx(30.509, abs=1e-3)
    assert main(["--out", str(tmp_path), "--antennas", "3"]) == 2  # no dec
    with pytest.raises(SimulationError):
        simulate(tmp_path, 0, None, 30.0)


def test_ese_injection_over_epochs(tmp_path: Path) -> None:
    res = simulate(tmp_path, 1, "2025-10-24T14:00:00", 54.0, n_ants=3, n_channels=2, seed=7, n_ese=1,
                   epochs=6, subbands=[0], noise=False)
    assert len(res.groups) == 6
    (name,) = res.injected
    src = load_catalogue(res.catalogue_path).by_name()[name]
    from astro.catalogue import flux_at

    f = np.array([float(flux_at(src, g.mid_mjd)) for g in res.groups]) / src.flux_jy
    # epochs 0..5: quiescent, edge brightening, dip, dip, edge brightening, quiescent
    assert f[0] == pytest.approx(1.0, abs=0.02) and f[5] == pytest.approx(1.0, abs=0.02)
    assert f[1] > 1.1 and f[4] > 1.1
    assert f[2] < 0.6 and f[3] < 0.6
