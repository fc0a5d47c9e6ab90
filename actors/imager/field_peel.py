"""Bright field sources, found in the data: predicted through the drifting beam, fluxes fitted.

Why: DSA-110 drifts, so every source's apparent flux changes over a 5-minute tile as the sky moves
~1.2 deg through the ~3 deg primary beam (and, the beam being chromatic, across the band). CLEAN
models a sky that is constant over the data; a 1 Jy field source near the half-power radius
changes by tens of per cent over the tile, and what CLEAN cannot model stays as sidelobes far
above the thermal noise. At full size (4800 x 3") the image noise was 1.9-2.3x thermal after the
calibrator was peeled (`peel.py`) and the same sky with a time-constant beam reached 1.3x: the
drift of the field sources is the difference. With the eight brightest peeled here: 1.36x
(README, issue 11).

The calibrator's model is known from its calibration set; field sources' are not, and the ESE
science needs every flux to come from this epoch's data, never from a catalogue. So the few
brightest field sources are found and measured here:

* **Found** after the first minor cycle, from the CLEAN components: components are clustered
  around the brightest ones (radius half a beam), and the clusters whose summed flux reaches
  `min_snr` x the noise of the dirty image (and `min_jy`) are taken, the brightest first, at most
  `max_sources`. A source's position is the sub-pixel peak of the dirty image next to its
  cluster (a quadratic through the 3 x 3 pixels around the brightest), not the components'
  centroid, which components CLEAN put on the source's drift residuals can pull. Clusters near a
  source that is already peeled are left to CLEAN.
* **Fitted**: each is predicted with the drift beam (per integration and averaged channel: the
  phase at the block's centre times its bandwidth-smearing factor, so the smearing is the
  data's) in two basis functions, the beam x 1 and the beam x ln(f / f0) (a power-law spectrum, linearised),
  and the amplitudes of all of them are fitted jointly by weighted linear least squares to the
  data minus the rest of the CLEAN model and the peeled calibrator. The components of the
  clusters are removed from the CLEAN model; the fitted sources are subtracted in every later
  major cycle, as the calibrator is, and CLEAN deconvolves the rest.
* **Only with a clean PSF.** The fit sees the sky it does not model (the sources CLEAN has not
  reached yet after one minor cycle) through the PSF's far sidelobes. The full array's are 3 %
  (`clean.psf_sidelobe` beyond a quarter of the PSF, the benchmark's 4800 x 3" image); a
  20-antenna core subarray's are 25 %, and there, with nine 1 Jy sources in the field
  (`tests/actors/imager/test_wide_field.py`), the fitted flux of the brightest came out 18-20 %
  high (spectral index -2.3 for -0.7). So sources are peeled only when the far sidelobes are
  below `max_sidelobe` (15 %); otherwise CLEAN does it all, as before.
* **Restored** as the calibrator is: a restoring-beam Gaussian at the fitted position, with the
  fitted apparent flux averaged with the imaging weights (`peel.imaged_flux`'s definition), so
  photometry at the position returns the flux this epoch's data gave.

Cost: the prediction is a complex multiplication per averaged channel and source (the phase
advances by a constant step from one block's centre to the next across a uniformly spaced band),
done twice (once for the normal equations, once for the fitted model,
in time chunks so that no per-source visibility cube is held), and the normal equations are BLAS
products of a few basis vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
import numpy.typing as npt

from actors.imager.clean import Beam
from actors.imager.peel import KnownSource
from astro.skymodel import PointSource, drift_beam_gains, lm_to_radec, radec_to_lmn

__all__ = ["FieldPeeler", "Geometry", "find_clusters", "predict_basis", "refine_peak"]


@dataclass(frozen=True)
class Geometry:
    """What the prediction needs once the visibility cube is freed: cross-correlation uvw
    [ntime, nbl, 3] (m), the full-resolution band [nchan] (Hz), the integrations' MJDs [ntime],
    the phase centre (rad), the site longitude (deg), the dish diameter (m), and the channel
    averaging of the imaged data."""

    uvw: npt.NDArray[np.float64]
    freq: npt.NDArray[np.float64]
    mjd: npt.NDArray[np.float64]
    phase_dir: tuple[float, float]
    lon_deg: float
    dish_diameter: float
    chan_avg: int

    @property
    def ntime(self) -> int:
        return int(self.uvw.shape[0])

    @property
    def nbl(self) -> int:
        return int(self.uvw.shape[1])

    @property
    def nco(self) -> int:
        return -(-self.freq.size // max(1, self.chan_avg))


@numba.njit(parallel=True, cache=True)
def _basis_kernel(
    uvw: npt.NDArray[np.float64],
    fmid: npt.NDArray[np.float64],
    df: float,
    nper: npt.NDArray[np.int64],
    lmn: npt.NDArray[np.float64],
    amp: npt.NDArray[np.float64],
    src: npt.NDArray[np.int64],
    out: npt.NDArray[np.complex64],
) -> None:  # pragma: no cover - compiled
    ntime, nbl = uvw.shape[0], uvw.shape[1]
    nb = amp.shape[0]
    nco = fmid.shape[0]
    k = -2.0 * np.pi / 299792458.0
    for r in numba.prange(ntime * nbl):
        t = r // nbl
        b = r % nbl
        u, v, w = uvw[t, b, 0], uvw[t, b, 1], uvw[t, b, 2]
        j0 = 0
        while j0 < nb:  # the basis functions of one source share its phase factors
            s = src[j0]
            j1 = j0 + 1
            while j1 < nb and src[j1] == s:
                j1 += 1
            delay = u * lmn[s, 0] + v * lmn[s, 1] + w * (lmn[s, 2] - 1.0)
            x = k * delay * df  # phase step between adjacent channels
            h = 0.5 * x
            sh = np.sin(h)
            # mean of exp(i phase) over a block of n channels, about its centre: sin(n h) / (n sin h)
            full = np.sin(nper[0] * h) / (nper[0] * sh) if abs(sh) > 1e-12 else 1.0
            ph = complex(np.cos(k * delay * fmid[0]), np.sin(k * delay * fmid[0]))
            step = complex(np.cos(x * nper[0]), np.sin(x * nper[0]))  # from one block's centre to the next
            for co in range(nco):
                if nper[co] != nper[0]:  # a short last block: its own centre and smearing
                    sm = np.sin(nper[co] * h) / (nper[co] * sh) if abs(sh) > 1e-12 else 1.0
                    f = complex(np.cos(k * delay * fmid[co]), np.sin(k * delay * fmid[co])) * sm
                else:
                    f = ph * full
                    ph *= step
                for j in range(j0, j1):
                    out[j, r, co] = np.complex64(amp[j, t, co] * f)
            j0 = j1


def block_mean(a: npt.NDArray[np.float64], avg: int) -> npt.NDArray[np.float64]:
    """Mean over blocks of `avg` along the last axis (the last block may be shorter)."""
    n = a.shape[-1]
    nco = -(-n // avg)
    if n % avg == 0:
        return np.asarray(a.reshape(*a.shape[:-1], nco, avg).mean(axis=-1), np.float64)
    return np.stack([a[..., c * avg : (c + 1) * avg].mean(axis=-1) for c in range(nco)], axis=-1)


def predict_basis(
    geom: Geometry,
    lmn: npt.NDArray[np.float64],
    amp: npt.NDArray[np.float64],
    src: npt.NDArray[np.int64],
    t0: int = 0,
    t1: int | None = None,
    out: npt.NDArray[np.complex64] | None = None,
) -> npt.NDArray[np.complex64]:
    """Basis visibilities [nbasis, (t1 - t0) * nbl, nco] of integrations t0..t1: basis j is the
    point source `src[j]` (direction cosines `lmn[src[j]]`) with apparent amplitude `amp[j]`
    [ntime, nco] (averaged over each block of `geom.chan_avg` channels), averaged over the block's
    channels as the data are.

    Within a block the amplitude is taken as constant (the beam and a power law change by < 0.1 %
    over a few MHz) and the channels as uniformly spaced, so the average of the phase factors is
    the phase at the block's centre times the bandwidth-smearing factor sin(n x / 2) / (n sin(x / 2)):
    two complex multiplications per block instead of `chan_avg` phase evaluations. `out`, if
    large enough, is used as the result's memory.
    """
    t1 = geom.ntime if t1 is None else t1
    f = np.asarray(geom.freq, np.float64)
    avg = max(1, int(geom.chan_avg))
    df = float(f[1] - f[0]) if f.size > 1 else 0.0
    if f.size > 1 and not np.allclose(np.diff(f), df, rtol=1e-6, atol=1.0):
        raise ValueError("field peeling needs uniformly spaced channels")
    fmid = block_mean(f, avg)
    nper = np.array([min(f.size, (c + 1) * avg) - c * avg for c in range(fmid.size)], np.int64)
    shape = (amp.shape[0], (t1 - t0) * geom.nbl, geom.nco)
    if out is None or out.size < np.prod(shape):
        out = np.empty(shape, np.complex64)
    else:  # a buffer reused from chunk to chunk: no fresh pages to fault in for every chunk
        out = out.reshape(-1)[: int(np.prod(shape))].reshape(shape)
    _basis_kernel(
        np.ascontiguousarray(geom.uvw[t0:t1]),
        fmid,
        df,
        nper,
        np.ascontiguousarray(lmn, np.float64),
        np.ascontiguousarray(amp[:, t0:t1], np.float64),
        np.ascontiguousarray(src, np.int64),
        out,
    )
    return out


@dataclass(frozen=True)
class Cluster:
    """CLEAN components around one source: summed flux (Jy) and flux-weighted centroid (pixels)."""

    flux: float
    x: float
    y: float


def find_clusters(
    model: npt.NDArray[np.floating],
    radius_px: float,
    min_flux: float,
    max_clusters: int,
    avoid: Sequence[tuple[float, float]] = (),
    avoid_px: float = 0.0,
) -> list[Cluster]:
    """The brightest clusters of CLEAN components: greedily, the brightest remaining component and
    every component within `radius_px` of it; kept when their summed flux reaches `min_flux` and
    the centroid is more than `avoid_px` from every (x, y) of `avoid`. At most `max_clusters`."""
    ys, xs = np.nonzero(model)
    if ys.size == 0 or max_clusters <= 0:
        return []
    vals = model[ys, xs].astype(np.float64)
    order = np.argsort(-vals)
    used = np.zeros(ys.size, bool)
    out: list[Cluster] = []
    r2 = radius_px * radius_px
    for i in order:
        if used[i] or vals[i] <= 0:
            continue
        near = ((ys - ys[i]) ** 2 + (xs - xs[i]) ** 2 <= r2) & ~used
        used |= near
        f = float(vals[near].sum())
        if f < min_flux:
            if vals[i] * np.pi * (radius_px + 1.0) ** 2 < min_flux:  # no later cluster can reach it
                break
            continue
        pos = np.clip(vals[near], 0.0, None)
        x = float((pos * xs[near]).sum() / pos.sum())
        y = float((pos * ys[near]).sum() / pos.sum())
        if any((x - ax) ** 2 + (y - ay) ** 2 < avoid_px**2 for ax, ay in avoid):
            continue
        out.append(Cluster(f, x, y))
        if len(out) >= max_clusters:
            break
    return out


def refine_peak(image: npt.NDArray[np.floating], x: float, y: float, search: int) -> tuple[float, float]:
    """Sub-pixel position of the brightest pixel of `image` within `search` pixels of (x, y): the
    vertex of a 2-D quadratic fitted to its 3 x 3 neighbourhood. A bright source dominates the
    dirty image near it; the components' centroid (`find_clusters`) can be pulled by the
    components CLEAN put on its drift-beam residuals. Falls back to (x, y) at an edge or when the
    quadratic has no maximum within a pixel."""
    ny, nx = image.shape
    xi, yi = round(x), round(y)
    y0, y1, x0, x1 = (
        max(1, yi - search),
        min(ny - 1, yi + search + 1),
        max(1, xi - search),
        min(nx - 1, xi + search + 1),
    )
    if y0 >= y1 or x0 >= x1:
        return x, y
    sub = np.asarray(image[y0:y1, x0:x1], np.float64)
    j = np.unravel_index(int(np.argmax(sub)), sub.shape)
    py, px = y0 + int(j[0]), x0 + int(j[1])
    win = np.asarray(image[py - 1 : py + 2, px - 1 : px + 2], np.float64)
    if win.shape != (3, 3):
        return x, y
    dy, dx = np.mgrid[-1:2, -1:2]
    design = np.stack([np.ones(9), dx.ravel(), dy.ravel(), dx.ravel() ** 2, (dx * dy).ravel(), dy.ravel() ** 2], 1)
    c = np.linalg.lstsq(design, win.ravel(), rcond=None)[0]
    hess = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if np.linalg.det(hess) <= 0 or hess[0, 0] >= 0:
        return x, y
    ox, oy = np.linalg.solve(hess, -c[1:3])
    if abs(ox) > 1 or abs(oy) > 1:
        return x, y
    return px + float(ox), py + float(oy)


@dataclass
class FieldPeeler:
    """The cotton_schwab hook (see the module docstring): `select` after the first minor cycle,
    `fit` once the rest of the model's visibilities are known. `known` holds the result."""

    geom: Geometry
    npix: int
    cell_rad: float
    max_sources: int = 8
    min_snr: float = 20.0
    min_jy: float = 0.0
    min_beam: float = 0.05
    max_sidelobe: float = 0.15
    spectral: bool = True
    avoid_radec: Sequence[tuple[float, float]] = ()  # (ra, dec) deg of sources peeled already
    chunk: int = 2  # integrations per prediction chunk
    n_fits: int = 0
    known: list[KnownSource] = field(default_factory=list)
    coefficients: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    _sources: list[PointSource] = field(default_factory=list)
    _beam: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0, 0)))
    _normal: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    _selected: bool = False
    _radius: float = 0.0

    def _pixels(self) -> list[tuple[float, float]]:
        return [self._pixel(s.ra_deg, s.dec_deg) for s in self._sources]

    def _clear(self, model: npt.NDArray[np.float32], centres: Sequence[tuple[float, float]]) -> None:
        """Zero the components within the cluster radius of each (x, y)."""
        r = self._radius
        yy, xx = np.ogrid[: self.npix, : self.npix]
        for x, y in centres:
            y0, y1 = max(0, int(y - r) - 1), min(self.npix, int(y + r) + 2)
            x0, x1 = max(0, int(x - r) - 1), min(self.npix, int(x + r) + 2)
            if y0 < y1 and x0 < x1:
                sub = (yy[y0:y1] - y) ** 2 + (xx[:, x0:x1] - x) ** 2 <= (r + 1.0) ** 2
                model[y0:y1, x0:x1][sub] = 0.0

    def _pixel(self, ra_deg: float, dec_deg: float) -> tuple[float, float]:
        lmn = radec_to_lmn(np.deg2rad(ra_deg), np.deg2rad(dec_deg), *self.geom.phase_dir)
        return self.npix / 2 - float(lmn[0]) / self.cell_rad, self.npix / 2 + float(lmn[1]) / self.cell_rad

    def select(
        self, model: npt.NDArray[np.float32], dirty: npt.NDArray[np.float32], noise: float, beam: Beam, sidelobe: float
    ) -> bool:
        """Find the brightest component clusters in `model` (Jy/pixel), take them out of it
        (in place) and remember them as sources to fit, at the peak of the `dirty` image nearest
        each cluster (`refine_peak`). True if any was found; False also when the band is not
        uniformly spaced (the prediction needs it; CLEAN then does it all).
        Only once (the first call): what the fit gets wrong is left to CLEAN in the later cycles.
        Not at all when the PSF's far `sidelobe` exceeds `max_sidelobe` (see the module docstring)."""
        if self._selected:
            return False
        self._selected = True
        if sidelobe > self.max_sidelobe:
            return False
        f = self.geom.freq
        if f.size > 1 and not np.allclose(np.diff(f), f[1] - f[0], rtol=1e-6, atol=1.0):
            return False
        bmaj_px = beam.bmaj / self.cell_rad
        radius = max(2.0, 0.5 * bmaj_px)
        avoid = [self._pixel(ra, dec) for ra, dec in self.avoid_radec]
        clusters = find_clusters(
            model, radius, max(self.min_jy, self.min_snr * noise), self.max_sources * 2, avoid, 2.0 * bmaj_px
        )
        if not clusters:
            return False
        ra0, dec0 = self.geom.phase_dir
        cands = []
        for k, c in enumerate(clusters):
            x, y = refine_peak(dirty, c.x, c.y, max(1, int(np.ceil(0.25 * beam.bmin / self.cell_rad))))
            ra, dec = lm_to_radec(-(x - self.npix / 2) * self.cell_rad, (y - self.npix / 2) * self.cell_rad, ra0, dec0)
            cands.append(
                PointSource(f"F{k + 1}", float(np.rad2deg(ra)), float(np.rad2deg(dec)), c.flux, 0.0, float(np.mean(f)))
            )
        g = self.geom
        beams = drift_beam_gains(cands, g.mjd, g.freq, g.phase_dir[1], g.lon_deg, g.dish_diameter)
        keep = [k for k in range(len(cands)) if float(np.mean(beams[k])) >= self.min_beam][: self.max_sources]
        if not keep:
            return False
        self._sources = [
            PointSource(
                f"F{i + 1}",
                *[getattr(cands[k], a) for a in ("ra_deg", "dec_deg", "flux_jy", "spectral_index", "ref_freq_hz")],
            )
            for i, k in enumerate(keep)
        ]
        self._beam = beams[keep]
        self._radius = radius
        self._clear(model, [(clusters[k].x, clusters[k].y) for k in keep])
        return True

    def _amplitudes(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Basis amplitudes [nbasis, ntime, nco] (block means) and their sources: the beam, and
        (spectral) the beam x ln(f / f0), f0 the band's mean."""
        f = self.geom.freq
        x = np.log(f / float(np.mean(f)))
        avg = max(1, self.geom.chan_avg)
        amps, src = [], []
        for k in range(len(self._sources)):
            amps.append(block_mean(self._beam[k], avg))
            src.append(k)
            if self.spectral:
                amps.append(block_mean(self._beam[k] * x[None, :], avg))
                src.append(k)
        return np.stack(amps), np.array(src, np.int64)

    def fit(self, target: npt.NDArray[np.complex64], wgt: npt.NDArray[np.floating]) -> npt.NDArray[np.complex64]:
        """Fit the selected sources' amplitudes to `target` [nrow, nco] (the data minus every
        model, these sources' current one included) with weights `wgt`, by linear least squares;
        add the solution to the amplitudes and return the visibilities of that change.

        The normal matrix depends only on the positions, the beam and the weights: it is made in
        the first fit and kept, so a later call (a refit) costs one prediction for the right-hand
        side and one for the change."""
        g = self.geom
        amp, src = self._amplitudes()
        lmn = radec_to_lmn(
            np.deg2rad([s.ra_deg for s in self._sources]), np.deg2rad([s.dec_deg for s in self._sources]), *g.phase_dir
        )
        nb = amp.shape[0]
        first = self._normal.shape != (nb, nb)
        normal = np.zeros((nb, nb))
        rhs = np.zeros(nb)
        rows = g.nbl
        buf = np.empty((nb, self.chunk * rows, g.nco), np.complex64)
        wbuf = np.empty(2 * buf.size, np.float32)
        for t0 in range(0, g.ntime, self.chunk):
            t1 = min(g.ntime, t0 + self.chunk)
            # Re(conj(a) b) = a.re b.re + a.im b.im: real products of the interleaved float32 views
            basis = predict_basis(g, lmn, amp, src, t0, t1, buf).reshape(nb, -1).view(np.float32)
            w2 = np.repeat(np.asarray(wgt[t0 * rows : t1 * rows], np.float32).reshape(-1), 2)
            bw = wbuf[: basis.size].reshape(basis.shape)
            np.multiply(basis, w2[None, :], out=bw)
            if first:
                normal += bw @ basis.T
            rhs += bw @ np.ascontiguousarray(target[t0 * rows : t1 * rows]).reshape(-1).view(np.float32)
            del basis, bw, w2
        del wbuf
        if first:
            self._normal = normal
        normal = self._normal
        # a basis with no support (a source in a fully flagged corner) is left at zero
        diag = np.diag(normal).copy()
        ok = diag > 1e-12 * max(float(diag.max()), 1e-300)
        delta = np.zeros(nb)
        delta[ok] = np.linalg.solve(normal[np.ix_(ok, ok)], rhs[ok])
        self.coefficients = delta if first else self.coefficients + delta
        self.n_fits += 1
        # the change of the model: one amplitude per source (its basis functions share the phases)
        nsrc = len(self._sources)
        amp_delta = np.zeros((nsrc, *amp.shape[1:]))
        for j in range(nb):
            amp_delta[src[j]] += delta[j] * amp[j]
        out = np.empty((g.ntime * rows, g.nco), np.complex64)
        for t0 in range(0, g.ntime, self.chunk):
            t1 = min(g.ntime, t0 + self.chunk)
            pred = predict_basis(g, lmn, amp_delta, np.arange(nsrc), t0, t1, buf)
            np.sum(pred, axis=0, out=out[t0 * rows : t1 * rows])
            del pred
        del buf
        self.known = self._restore_list(amp, src, self.coefficients, wgt)
        return out

    def _restore_list(
        self,
        amp: npt.NDArray[np.float64],
        src: npt.NDArray[np.int64],
        coef: npt.NDArray[np.float64],
        wgt: npt.NDArray[np.floating],
    ) -> list[KnownSource]:
        """Each source with its fitted apparent flux (amp [nbasis, ntime, nco] x coefficients)
        averaged with the imaging weights `wgt` [ntime * nbl, nco], as `peel.imaged_flux`."""
        g = self.geom
        w = np.asarray(wgt, np.float64).reshape(g.ntime, g.nbl, g.nco).sum(axis=1)  # [ntime, nco]
        sw = float(w.sum())
        f0 = float(np.mean(g.freq))
        out = []
        for k, s in enumerate(self._sources):
            js = np.nonzero(src == k)[0]
            app = np.tensordot(coef[js], amp[js], axes=(0, 0))  # [ntime, nco]
            flux = float((w * app).sum() / sw) if sw > 0 else float(app.mean())
            a = float(coef[js[0]])
            alpha = float(coef[js[1]]) / a if js.size > 1 and a != 0 else 0.0
            out.append(KnownSource(PointSource(s.name, s.ra_deg, s.dec_deg, a, alpha, f0), flux))
        return out
