"""The primary-beam correction of a drift-scan tile is the Airy gain averaged over the drift."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from actors.variability.measure import AiryGain, Pointing, read_pointing
from astro.primary_beam import airy_beam, angular_separation


def _gain_at(ra: float, dec: float, ra0: float, dec0: float, freq: float) -> float:
    sep = angular_separation(math.radians(ra), math.radians(dec), math.radians(ra0), math.radians(dec0))
    return float(airy_beam(sep, freq))


def test_drift_averaged_gain() -> None:
    ra0, dec0, freq, drift = 150.0, 40.0, 1.4e9, 1.3
    beam = AiryGain(ra0, dec0, freq, drift)
    ras = np.array([ra0, ra0 + 0.6, ra0 - 1.0, ra0 + 0.3])
    decs = np.array([dec0, dec0, dec0 + 0.5, dec0 - 0.8])
    got = beam(ras, decs)
    # the time average of the gain while the beam centre moved from ra0 - drift/2 to ra0 + drift/2
    centres = ra0 + drift * (np.linspace(0, 1, 2001) - 0.5)
    for k in range(ras.size):
        want = np.mean([_gain_at(ras[k], decs[k], c, dec0, freq) for c in centres])
        assert got[k] == pytest.approx(want, rel=2e-3)
    # at the phase centre the source was off the beam centre for most of the tile: a few % less
    assert 0.93 < got[0] < 0.99
    # without a drift it is the beam of one pointing, as before
    fixed = AiryGain(ra0, dec0, freq)(ras, decs)
    assert fixed[0] == pytest.approx(1.0) and np.all(fixed != got)


def test_pointing_reads_the_drift(tmp_path: Path) -> None:
    h = fits.Header()
    h["NAXIS"] = 0
    h["CRVAL1"], h["CRVAL2"] = 150.0, 40.0
    path = tmp_path / "a.fits"
    fits.PrimaryHDU(header=h).writeto(path)
    assert read_pointing(path) == Pointing(150.0, 40.0, 1.4e9, 0.0)  # an old image: a fixed pointing
    h["DRIFTRA"] = 1.29
    fits.PrimaryHDU(header=h).writeto(path, overwrite=True)
    p = read_pointing(path)
    assert p.drift_ra_deg == 1.29 and AiryGain.of(p).drift_ra_deg == 1.29
