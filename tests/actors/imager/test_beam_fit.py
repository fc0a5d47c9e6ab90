"""The beam fit of a main lobe that is one pixel wide along one axis (a thin beam on coarse cells)."""

from __future__ import annotations

import numpy as np

from actors.imager.clean import FWHM_PER_SIGMA, fit_beam, gaussian_kernel


def test_thin_lobe_gives_a_finite_beam() -> None:
    n = 64
    y, x = np.mgrid[:n, :n] - n // 2
    psf = np.exp(-0.5 * ((x / 0.45) ** 2 + (y / 4.0) ** 2)).astype(np.float32)  # unresolved in x
    cell = 1e-5
    beam = fit_beam(psf, cell)
    assert abs(beam.bmaj / cell / FWHM_PER_SIGMA - 4.0) < 0.5
    assert beam.bmin / cell / FWHM_PER_SIGMA < 1.0
    assert abs(abs(beam.bpa)) < 0.1  # north-south
    assert gaussian_kernel(beam, cell).shape[0] < 64
