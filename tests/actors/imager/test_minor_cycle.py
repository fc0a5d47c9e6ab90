"""The minor cycle runs on every core; its components must be those of one serial Hogbom scan."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from actors.imager.clean import MINOR_CHUNKS, _minor_cycle


def _hogbom(
    ay: npt.NDArray[np.int64],
    ax: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float32],
    psf: npt.NDArray[np.float32],
    gain: float,
    stop: float,
    max_iter: int,
    model: npt.NDArray[np.float32],
) -> int:
    """The textbook loop: the first largest |value| in pixel order, gain x it x PSF subtracted."""
    pc, npsf = psf.shape[0] // 2, psf.shape[0]
    for it in range(max_iter):
        best = int(np.argmax(np.abs(vals)))  # argmax: the first of equal maxima
        if abs(vals[best]) < stop:
            return it
        f = gain * float(vals[best])
        model[ay[best], ax[best]] += f
        dy, dx = ay - ay[best] + pc, ax - ax[best] + pc
        inside = (dy >= 0) & (dy < npsf) & (dx >= 0) & (dx < npsf)
        vals[inside] = (vals[inside] - f * psf[dy[inside], dx[inside]].astype(np.float64)).astype(np.float32)
    return max_iter


def test_the_parallel_minor_cycle_finds_the_serial_components() -> None:
    rng = np.random.default_rng(5)
    npix = 200
    y, x = np.mgrid[-32:32, -32:32]
    psf = (np.exp(-(x**2 + y**2) / 8.0) + 0.1 * np.cos(x / 2.0) * np.exp(-(x**2 + y**2) / 400.0)).astype(np.float32)
    n = 5000
    idx = np.sort(rng.choice(npix * npix, n, replace=False))
    ay, ax = (idx // npix).astype(np.int64), (idx % npix).astype(np.int64)
    vals = rng.normal(0, 1, n).astype(np.float32)
    vals[rng.integers(0, n, 20)] += 30.0
    # equal peaks in different runs of the split: the first in pixel order must win, as in a scan
    size = (n + MINOR_CHUNKS - 1) // MINOR_CHUNKS
    vals[[size // 2, 5 * size + 3, 11 * size + 7]] = np.float32(-80.0), np.float32(80.0), np.float32(80.0)

    ours_vals, ours_model = vals.copy(), np.zeros((npix, npix), np.float32)
    ref_vals, ref_model = vals.copy(), np.zeros((npix, npix), np.float32)
    n_ours = _minor_cycle(ay, ax, ours_vals, psf, 0.1, 2.0, 400, ours_model)
    n_ref = _hogbom(ay, ax, ref_vals, psf, 0.1, 2.0, 400, ref_model)

    assert n_ours == n_ref > 50
    assert np.array_equal(np.nonzero(ours_model), np.nonzero(ref_model))
    np.testing.assert_allclose(ours_model, ref_model, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours_vals, ref_vals, rtol=1e-5, atol=1e-4)
    assert ours_model[ay[size // 2], ax[size // 2]] < 0  # the first of the three equal peaks came first
