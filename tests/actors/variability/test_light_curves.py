"""The variability science end to end on real images: photometry → statistics → ESE flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from actors.variability.ese import EseCandidate, evaluate, step
from actors.variability.photometry import forced_photometry, measure_fits
from actors.variability.stats import SourceStats, update
from tests.actors.variability.synth import make_image, write_fits

RA0, DEC0 = 150.0, 40.0


def pb(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    dx = (np.asarray(ra) - RA0) * np.cos(np.radians(DEC0))
    dy = np.asarray(dec) - DEC0
    return np.exp(-4 * np.log(2) * (dx**2 + dy**2) / 0.5**2)  # a narrow beam so gains vary


def test_only_the_injected_dip_is_flagged(tmp_path):
    template = make_image(shape=(320, 320))
    ys, xs = np.mgrid[30:300:45, 30:300:45]
    ra, dec = (np.asarray(v) for v in template.wcs.pixel_to_world_values(xs.ravel() + 0.3, ys.ravel() - 0.2))
    n_src = ra.size
    rng = np.random.default_rng(2)
    true = rng.uniform(0.02, 0.1, n_src)
    ids = [f"SRC{i:02d}" for i in range(n_src)]
    ese_idx = 7
    n_ep, dip = 24, range(14, 19)
    t0 = datetime(2025, 10, 1, 12, tzinfo=UTC)

    stats = [SourceStats() for _ in range(n_src)]
    cands: list[EseCandidate | None] = [None] * n_src
    opened: list[tuple[int, int]] = []
    for ep in range(n_ep):
        flux = true.copy()
        if ep in dip:
            flux[ese_idx] *= 0.4
        apparent = flux * pb(ra, dec)
        img = make_image(shape=(320, 320), seed=1000 + ep, sources=list(zip(ra, dec, apparent, strict=True)))
        path = write_fits(img, tmp_path / f"epoch{ep:02d}.fits", mjd=60950.5 + ep)
        r = measure_fits(path, ra, dec, beam=pb, min_pb_gain=0.2)
        for i in np.flatnonzero(r.valid):
            det = evaluate(stats[i], float(r.flux_jy[i]), float(r.err_jy[i]))
            up = step(cands[i], det, source_id=ids[i], ra_deg=float(ra[i]), dec_deg=float(dec[i]),
                      at=t0 + timedelta(days=ep))
            cands[i] = up.candidate
            if up.opened:
                opened.append((i, ep))
            stats[i] = update(stats[i], float(r.flux_jy[i]), float(r.err_jy[i]))

    assert opened == [(ese_idx, 14)]
    c = cands[ese_idx]
    assert c is not None and c.last_detection_at == t0 + timedelta(days=18)
    assert abs(c.baseline_flux_jy - true[ese_idx]) < 0.05 * true[ese_idx]
    assert c.peak_flux_jy < 0.6 * true[ese_idx]
    measured = [s for s in stats if s.n_obs]
    assert len(measured) >= n_src - 6  # the corners fall below the primary-beam cut
    quiet = [s.sigma_deviation for i, s in enumerate(stats) if i != ese_idx and s.n_obs]
    assert max(quiet) < 5
    # Constant sources: reduced χ² about 1 (errors calibrated through PB correction too).
    chi2 = np.array([s.chi2_nu for i, s in enumerate(stats) if i != ese_idx and s.n_obs])
    assert 0.7 < np.median(chi2) < 1.4
    # Direct in-memory photometry agrees with the FITS path.
    direct = forced_photometry(img, ra, dec, beam=pb, min_pb_gain=0.2)
    np.testing.assert_allclose(direct.flux_jy[direct.valid], r.flux_jy[r.valid], rtol=1e-4)
