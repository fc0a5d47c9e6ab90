"""The ingest chain and the calibration/imaging science agree on conventions, end to end.

Simulator (UVH5, pyuvdata's convention) -> ``actors.watcher.convert`` (MS, CASA's convention as
pyuvdata writes it) -> ``astro.msio.read_ms`` -> the model of ``astro.skymodel``
that StEFCal solves against. Noise-free, gain-free data of a calibrator-only sky must equal the
model visibilities (sign of the phase, UVW orientation, phase centre, frequency order, the drift
primary beam and the calibrator's flux from ``astro.calibrators``) — for a group where the
calibrator is at the phase centre and for the next one, where it is 1.1 deg off and mirrored
positions or a misplaced beam would show at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time

from actors.watcher.convert import convert_group
from astro.calibrators import get_calibrator
from astro.catalogue import Catalogue
from astro.coordinates import tile_phase_center
from astro.msio import CASA_OBSERVATORY, read_ms
from astro.skymodel import PointSource, drift_beam_gains, itrf_to_geodetic, source_model_vis
from sim.observation import simulate


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("conv")
    res = simulate(
        out / "raw",
        2,
        "2025-10-24T00:00:00",
        None,
        n_ants=10,
        n_channels=2,
        seed=3,
        calibrator="3C286",
        noise=False,
        gains=False,
        jitter_s=3,
        catalogue=Catalogue(()),
        run_check=False,
    )
    return [convert_group(g.files, out / "ms").path for g in res.groups]


def _model(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = read_ms(path)
    c = get_calibrator("3C286")
    src = PointSource(c.name, c.ra_deg, c.dec_deg, c.flux_jy, c.spectral_index)
    _, lon, _ = itrf_to_geodetic(d.antenna_positions)
    beam = drift_beam_gains([src], d.mjd, d.freq, d.phase_dir[1], lon, d.dish_diameter)
    m = source_model_vis(d.uvw, d.freq, [src], d.phase_dir, beam)[..., 0]
    cross = d.ant1 != d.ant2
    return d.vis[..., 0][:, cross], m[:, cross], d.freq


@pytest.mark.parametrize("k", [0, 1])
def test_data_equal_model(groups: list[Path], k: int) -> None:
    vis, model, _ = _model(groups[k])
    # complex gain of the data against the model: 1 when sign, geometry, beam and flux agree
    ratio = np.vdot(model, vis) / np.vdot(model, model)
    assert abs(ratio - 1) < 0.01, ratio
    resid = np.linalg.norm(vis - model) / np.linalg.norm(model)
    assert resid < 0.02, resid
    mirrored = np.vdot(np.conj(model), vis) / np.vdot(model, model)
    if k == 1:  # off centre, a mirrored sky would not fit at all
        assert abs(mirrored) < 0.2


def test_ms_layout(groups: list[Path]) -> None:
    d = read_ms(groups[0])
    assert np.all(np.diff(d.freq) > 0)
    ra, dec = tile_phase_center(Time(float(np.mean(d.mjd)), format="mjd"), get_calibrator("3C286").dec_deg)
    assert np.rad2deg(d.phase_dir[0]) == pytest.approx(ra, abs=1e-4)
    assert np.rad2deg(d.phase_dir[1]) == pytest.approx(dec, abs=1e-6)


def test_converted_ms_names_an_observatory_casa_knows(groups: list[Path]) -> None:
    """Issue 11: CASA looks OBSERVATION.TELESCOPE_NAME up in its Observatories table (python-casacore
    ships the same table); 'DSA-110' is not in it. The instrument's name stays readable."""
    import casacore.tables as ct
    from casacore.measures import measures

    with ct.table(str(groups[0] / "OBSERVATION"), ack=False) as ot:
        name = str(ot.getcell("TELESCOPE_NAME", 0))
        assert ot.getkeyword("INSTRUMENT") == "DSA-110"
    assert name == CASA_OBSERVATORY
    assert name in measures().get_observatories()
    assert read_ms(groups[0]).telescope == "DSA-110"
