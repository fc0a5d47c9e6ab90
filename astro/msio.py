"""Measurement Set input/output for calibration and imaging, with python-casacore.

The science code works on a regular *visibility cube* rather than on MS rows:

    vis[ntime, nbl, nchan, npol]   complex64
    flags[ntime, nbl, nchan, npol] bool
    weight[ntime, nbl, npol]       float32   (the MS WEIGHT column)
    uvw[ntime, nbl, 3]             float64   metres, the MS UVW column as written

`nbl` runs over every (ANTENNA1, ANTENNA2) pair present in the MS, autocorrelations included (they
are ignored by the solvers and the imager).  DSA-110 data are regular (every baseline at every
integration), so when the MS rows are already sorted by time then baseline the cube is a free
reshape of the columns; otherwise rows are scattered into the cube and missing cells are flagged.

Several spectral windows (data description ids) that share the same rows pattern are joined along
the channel axis, in ascending frequency.

Sign convention assumed everywhere in the calibrator and the imager:

    V_ij(u, v, w) = g_i conj(g_j) sum_k S_k exp(-2 pi i (u l_k + v m_k + w (n_k - 1)))

with (u, v, w) = `VisData.uvw` in wavelengths, l towards east (increasing RA), m towards north.

`VisData.uvw` is the *negated* MS UVW column. A Measurement Set as CASA (and pyuvdata, which the
watcher's converter uses: ``pyuvdata_flip_conj``) writes it has V = sum S exp(+2 pi i UVW.lmn):
pyuvdata's own convention (uvw = ant2 - ant1, V ~ exp(+2 pi i uvw.s)) with the data conjugated
and UVW negated. Negating UVW once, here at the border (and again in `write_ms`), keeps the
data (and so the gain convention V = g_i conj(g_j) M of CASA's tables) untouched. Checked end to
end against the simulator in ``tests/actors/imager/test_conventions_sim.py``; before this the
sky came out mirrored through the phase centre.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

try:  # python-casacore is a hard dependency of the project but keep import errors readable
    import casacore.tables as ct
except ImportError as exc:  # pragma: no cover
    raise ImportError("python-casacore is required for Measurement Set access") from exc

SECONDS_PER_DAY = 86400.0

# casacore Stokes enum values for the correlation types we understand
CORR_NAMES = {5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}
PARALLEL_HANDS = {5, 8, 9, 12}


#: the name CASA's Observatories table (casadata geodetic/Observatories) knows for the Owens Valley
#: Radio Observatory, where the DSA-110 stands. CASA finds an array's position only by looking
#: OBSERVATION.TELESCOPE_NAME up in that table: with 'DSA-110' verbose listobs raised "Telescope
#: DSA-110 is not recognized by CASA" and tclean fell back to the first antenna's position. The
#: antenna positions stay absolute ITRF; this name gives CASA the observatory frame only.
CASA_OBSERVATORY = "OVRO_MMA"
#: the instrument's own name, kept where a reader needs it: the OBSERVATION table's INSTRUMENT
#: keyword and PROJECT column (read back by `read_ms`, written to FITS TELESCOP/INSTRUME)
INSTRUMENT = "DSA-110"


def name_observatory(ms_or_table: str | os.PathLike[str], instrument: str = INSTRUMENT) -> None:
    """Make the OBSERVATION subtable of an MS (or calibration table) name an observatory CASA knows.

    Every row's TELESCOPE_NAME becomes `CASA_OBSERVATORY`, PROJECT the instrument, and the table
    gets the keyword INSTRUMENT = `instrument`.
    """
    with ct.table(os.path.join(os.fspath(ms_or_table), "OBSERVATION"), readonly=False, ack=False) as ot:
        n = ot.nrows()
        if n:
            ot.putcol("TELESCOPE_NAME", [CASA_OBSERVATORY] * n)
            ot.putcol("PROJECT", [instrument] * n)
        ot.putkeyword("INSTRUMENT", instrument)


def instrument_name(ms_or_table: str | os.PathLike[str]) -> str:
    """The instrument that took an MS: OBSERVATION's INSTRUMENT keyword, else its TELESCOPE_NAME."""
    path = os.path.join(os.fspath(ms_or_table), "OBSERVATION")
    if not os.path.isdir(path):
        return INSTRUMENT
    with ct.table(path, ack=False) as ot:
        if "INSTRUMENT" in ot.keywordnames():
            return str(ot.getkeyword("INSTRUMENT"))
        return str(ot.getcell("TELESCOPE_NAME", 0)) if ot.nrows() else INSTRUMENT


class MeasurementSetError(ValueError):
    """The Measurement Set cannot be read as the science code needs it."""


@dataclass
class VisData:
    """A regular visibility cube read from (or to be written to) a Measurement Set."""

    vis: npt.NDArray[np.complex64]  # [ntime, nbl, nchan, npol]
    flags: npt.NDArray[np.bool_]  # [ntime, nbl, nchan, npol]
    weight: npt.NDArray[np.float32]  # [ntime, nbl, npol]
    uvw: npt.NDArray[np.float64]  # [ntime, nbl, 3] metres
    ant1: npt.NDArray[np.int32]  # [nbl]
    ant2: npt.NDArray[np.int32]  # [nbl]
    time: npt.NDArray[np.float64]  # [ntime] MJD seconds (UTC), the MS TIME column
    freq: npt.NDArray[np.float64]  # [nchan] Hz, ascending
    corr_types: list[int]  # casacore Stokes enum per pol, e.g. [9, 12] for XX, YY
    phase_dir: tuple[float, float]  # (ra, dec) radians, J2000
    antenna_names: list[str]
    antenna_positions: npt.NDArray[np.float64]  # [nant, 3] ITRF metres
    interval: float = 0.0  # integration time, s
    dish_diameter: float = 4.65
    field_name: str = ""
    telescope: str = "DSA-110"
    chan_width: float = 0.0  # Hz
    # row maps for writing a column back: per data description id, the MS row of each cube cell
    # (-1 where absent) and the cube channel index of each of that spw's channels
    row_maps: list[npt.NDArray[np.int64]] = field(default_factory=list, repr=False)
    chan_maps: list[npt.NDArray[np.int64]] = field(default_factory=list, repr=False)
    #: how the FLAG column was RFI-flagged (the MS keyword RFI_FLAGGED), "" if it was not
    rfi_flagged: str = ""

    @property
    def ntime(self) -> int:
        return int(self.vis.shape[0])

    @property
    def nbl(self) -> int:
        return int(self.vis.shape[1])

    @property
    def nchan(self) -> int:
        return int(self.vis.shape[2])

    @property
    def npol(self) -> int:
        return int(self.vis.shape[3])

    @property
    def nant(self) -> int:
        return len(self.antenna_names)

    @property
    def mjd(self) -> npt.NDArray[np.float64]:
        return self.time / SECONDS_PER_DAY

    @property
    def cross(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.ant1 != self.ant2)

    def parallel_hand_indices(self) -> list[int]:
        idx = [i for i, c in enumerate(self.corr_types) if c in PARALLEL_HANDS]
        if not idx:
            raise MeasurementSetError(
                f"no parallel-hand correlations among {[CORR_NAMES.get(c, c) for c in self.corr_types]}"
            )
        return idx


def _subtable(ms: str, name: str) -> ct.table:
    path = os.path.join(ms, name)
    if not os.path.isdir(path):
        raise MeasurementSetError(f"Measurement Set {ms!r} has no {name} subtable")
    return ct.table(path, ack=False)


def read_ms(path: str | os.PathLike[str], datacolumn: str = "DATA") -> VisData:
    """Read a Measurement Set into a `VisData` cube (see the module docstring for the layout)."""
    ms = os.fspath(path)
    if not os.path.isdir(ms):
        raise MeasurementSetError(f"{ms!r} is not a Measurement Set directory")
    with ct.table(ms, ack=False) as t:
        if datacolumn not in t.colnames():
            raise MeasurementSetError(f"Measurement Set {ms!r} has no {datacolumn} column")
        nrow = t.nrows()
        if nrow == 0:
            raise MeasurementSetError(f"Measurement Set {ms!r} has no rows")
        time = t.getcol("TIME")
        a1 = t.getcol("ANTENNA1").astype(np.int32)
        a2 = t.getcol("ANTENNA2").astype(np.int32)
        ddid = t.getcol("DATA_DESC_ID").astype(np.int64)
        uvw_rows = t.getcol("UVW")
        flag_row = t.getcol("FLAG_ROW") if "FLAG_ROW" in t.colnames() else np.zeros(nrow, bool)
        wt_rows = t.getcol("WEIGHT") if "WEIGHT" in t.colnames() else None
        interval = float(np.median(t.getcol("INTERVAL"))) if "INTERVAL" in t.colnames() else 0.0
        rfi_flagged = str(t.getkeyword(RFI_KEYWORD)) if RFI_KEYWORD in t.keywordnames() else ""

        with _subtable(ms, "DATA_DESCRIPTION") as dd:
            dd_spw = dd.getcol("SPECTRAL_WINDOW_ID")
            dd_pol = dd.getcol("POLARIZATION_ID")
        with _subtable(ms, "SPECTRAL_WINDOW") as sw:
            spw_freqs = [np.asarray(sw.getcell("CHAN_FREQ", i), float) for i in range(sw.nrows())]
            spw_width = [np.asarray(sw.getcell("CHAN_WIDTH", i), float) for i in range(sw.nrows())]
        with _subtable(ms, "POLARIZATION") as pt:
            pol_types = [list(map(int, pt.getcell("CORR_TYPE", i))) for i in range(pt.nrows())]
        with _subtable(ms, "FIELD") as ft:
            pdir = ft.getcol("PHASE_DIR")
            field_name = str(ft.getcol("NAME")[0]) if ft.nrows() else ""
        with _subtable(ms, "ANTENNA") as at:
            ant_names = [str(n) for n in at.getcol("NAME")]
            ant_pos = np.asarray(at.getcol("POSITION"), float)
            dish = float(np.median(at.getcol("DISH_DIAMETER"))) if at.nrows() else 4.65
        telescope = instrument_name(ms) or INSTRUMENT

        dd_ids = np.unique(ddid)
        corr = pol_types[int(dd_pol[dd_ids[0]])]
        for d in dd_ids:
            if pol_types[int(dd_pol[d])] != corr:
                raise MeasurementSetError("data descriptions with different correlation types")
        npol = len(corr)

        # regular grid of times and baselines
        tround = np.round(time, 3)
        utimes, t_idx = np.unique(tround, return_inverse=True)
        nant_max = int(max(a1.max(), a2.max())) + 1
        bl_key = a1.astype(np.int64) * nant_max + a2
        ubl, b_idx = np.unique(bl_key, return_inverse=True)
        ntime, nbl = len(utimes), len(ubl)
        ant1 = (ubl // nant_max).astype(np.int32)
        ant2 = (ubl % nant_max).astype(np.int32)
        # time centroid of each integration (exact TIME values)
        tsum = np.bincount(t_idx, weights=time, minlength=ntime)
        tcnt = np.bincount(t_idx, minlength=ntime)
        times = tsum / np.maximum(tcnt, 1)

        # channel layout: spws concatenated in ascending frequency
        spws = [int(dd_spw[d]) for d in dd_ids]
        freqs_all = np.concatenate([spw_freqs[s] for s in spws])
        widths_all = np.concatenate([np.abs(spw_width[s]) for s in spws])
        order = np.argsort(freqs_all, kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        freq = freqs_all[order]
        nchan = freq.size

        vis = np.empty((ntime, nbl, nchan, npol), np.complex64)
        flags = np.ones((ntime, nbl, nchan, npol), bool)
        weight = np.zeros((ntime, nbl, npol), np.float32)
        uvw = np.zeros((ntime, nbl, 3), np.float64)
        row_maps: list[npt.NDArray[np.int64]] = []
        chan_maps: list[npt.NDArray[np.int64]] = []
        c0 = 0
        for d, s in zip(dd_ids, spws, strict=True):
            nch_s = spw_freqs[s].size
            cmap = inv[c0 : c0 + nch_s]
            c0 += nch_s
            rows = np.nonzero(ddid == d)[0]
            rmap = np.full((ntime, nbl), -1, np.int64)
            rmap[t_idx[rows], b_idx[rows]] = rows
            row_maps.append(rmap)
            chan_maps.append(cmap.astype(np.int64))
            contiguous_rows = rows.size == ntime * nbl and np.array_equal(
                rmap.ravel(), np.arange(rows[0], rows[0] + rows.size)
            )
            contiguous_chans = np.array_equal(cmap, np.arange(cmap[0], cmap[0] + nch_s))
            if contiguous_rows and contiguous_chans and len(dd_ids) == 1:
                # fast path: read straight into the cube
                t.getcolnp(datacolumn, vis.reshape(ntime * nbl, nchan, npol), int(rows[0]), int(rows.size))
                t.getcolnp("FLAG", flags.reshape(ntime * nbl, nchan, npol), int(rows[0]), int(rows.size))
            else:
                data = t.getcol(datacolumn).astype(np.complex64)[rows]
                fl = t.getcol("FLAG")[rows]
                ti, bi = t_idx[rows], b_idx[rows]
                for k, c in enumerate(cmap):
                    vis[ti, bi, c, :] = data[:, k, :]
                    flags[ti, bi, c, :] = fl[:, k, :]
            ti, bi = t_idx[rows], b_idx[rows]
            uvw[ti, bi] = -uvw_rows[rows]  # see the module docstring
            if wt_rows is not None:
                weight[ti, bi] = wt_rows[rows]
            else:
                weight[ti, bi] = 1.0
            fr = np.nonzero(flag_row[rows])[0]
            if fr.size:
                flags[ti[fr], bi[fr]] = True
        # cells with no row at all stay flagged; zero their data
        missing = np.all(np.stack([r < 0 for r in row_maps]), axis=0)
        if missing.any():
            vis[missing] = 0
            flags[missing] = True

    return VisData(
        vis=vis,
        flags=flags,
        weight=weight,
        uvw=uvw,
        ant1=ant1,
        ant2=ant2,
        time=times,
        freq=freq,
        corr_types=list(corr),
        phase_dir=(float(pdir[0, 0, 0]), float(pdir[0, 0, 1])),
        antenna_names=ant_names,
        antenna_positions=ant_pos,
        interval=interval,
        dish_diameter=dish,
        field_name=field_name,
        telescope=telescope,
        chan_width=float(np.median(widths_all)) if widths_all.size else 0.0,
        row_maps=row_maps,
        chan_maps=chan_maps,
        rfi_flagged=rfi_flagged,
    )


RFI_KEYWORD = "RFI_FLAGGED"


def _row_block(
    cube: npt.NDArray[Any], rmap: npt.NDArray[np.int64], cmap: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """(MS rows ascending, the cube's cells for them [nrow, nchan_spw, npol]) of one spectral window.

    A converted MS is already in cube order with every cell present: then the block is a view of
    the cube (copying 0.2-1.4 GB three times took ~2 s at full size)."""
    flat_rows = rmap.ravel()
    cells = cube.reshape(flat_rows.size, cube.shape[2], cube.shape[3])
    in_order = bool(np.all(flat_rows >= 0)) and bool(np.all(np.diff(flat_rows) == 1))
    identity = cmap.size == cube.shape[2] and bool(np.all(cmap == np.arange(cmap.size)))
    if in_order and identity:
        return flat_rows, cells
    idx = np.nonzero(flat_rows >= 0)[0]
    idx = idx[np.argsort(flat_rows[idx])]
    block = cells[idx]
    return flat_rows[idx], block if identity else block[:, cmap, :]


def write_flags(path: str | os.PathLike[str], data: VisData, flags: npt.NDArray[np.bool_], how: str) -> None:
    """Write `flags` (shaped like `data.vis`) into the MS's FLAG column and record `how` they were
    made in the keyword RFI_FLAGGED, so the next reader need not flag the group again.

    The keyword is written after the column: a reader that sees it sees the flags."""
    ms = os.fspath(path)
    if flags.shape != data.vis.shape:
        raise MeasurementSetError(f"flags shape {flags.shape} differs from the MS cube {data.vis.shape}")
    with ct.table(ms, readonly=False, ack=False) as t:
        if RFI_KEYWORD in t.keywordnames():
            t.removekeyword(RFI_KEYWORD)
        for rmap, cmap in zip(data.row_maps, data.chan_maps, strict=True):
            rows, fblock = _row_block(flags, rmap, cmap)
            if rows.size and rows[-1] - rows[0] + 1 == rows.size:
                t.putcol("FLAG", np.ascontiguousarray(fblock), int(rows[0]), int(rows.size))
            else:
                for k, r in enumerate(rows):
                    t.putcell("FLAG", int(r), fblock[k])
        t.putkeyword(RFI_KEYWORD, how)
    data.rfi_flagged = how


def write_column(
    path: str | os.PathLike[str],
    data: VisData,
    cube: npt.NDArray[np.complex64],
    column: str = "CORRECTED_DATA",
    write_flags: bool = True,
) -> None:
    """Write a cube shaped like `data.vis` back into the MS as `column` (created if missing)."""
    ms = os.fspath(path)
    if cube.shape != data.vis.shape:
        raise MeasurementSetError(f"cube shape {cube.shape} differs from the MS cube {data.vis.shape}")
    with ct.table(ms, readonly=False, ack=False) as t:
        if column not in t.colnames():
            desc = t.getcoldesc("DATA")
            desc["name"] = column
            desc.pop("comment", None)
            t.addcols(ct.maketabdesc(ct.makecoldesc(column, desc)))
        for rmap, cmap in zip(data.row_maps, data.chan_maps, strict=True):
            rows, block = _row_block(cube, rmap, cmap)
            _, fblock = _row_block(data.flags, rmap, cmap)
            contiguous = rows.size > 0 and rows[-1] - rows[0] + 1 == rows.size
            if contiguous:
                t.putcol(column, np.ascontiguousarray(block), int(rows[0]), int(rows.size))
                if write_flags:
                    t.putcol("FLAG", np.ascontiguousarray(fblock), int(rows[0]), int(rows.size))
            else:
                for k, r in enumerate(rows):
                    t.putcell(column, int(r), block[k])
                    if write_flags:
                        t.putcell("FLAG", int(r), fblock[k])


def write_ms(path: str | os.PathLike[str], data: VisData, tiled: bool = True) -> None:
    """Write a `VisData` cube as a new single-spw, single-field Measurement Set.

    Used by tests and benchmarks (the production MS comes from the watcher's converter).
    """
    ms = os.fspath(path)
    ntime, nbl, nchan, npol = data.vis.shape
    nrow = ntime * nbl
    datadesc = ct.makearrcoldesc(
        "DATA", 0j, shape=[nchan, npol], valuetype="complex", datamanagertype="TiledColumnStMan"
    )
    flagdesc = ct.makearrcoldesc(
        "FLAG", False, shape=[nchan, npol], valuetype="boolean", datamanagertype="TiledColumnStMan"
    )
    td = ct.maketabdesc([datadesc, flagdesc])
    dminfo = None
    if tiled:
        dminfo = {
            "*1": {
                "TYPE": "TiledColumnStMan",
                "NAME": "TiledData",
                "SPEC": {"DEFAULTTILESHAPE": np.array([npol, nchan, max(1, 65536 // (nchan * npol))], np.int32)},
                "COLUMNS": ["DATA"],
            },
            "*2": {
                "TYPE": "TiledColumnStMan",
                "NAME": "TiledFlag",
                "SPEC": {"DEFAULTTILESHAPE": np.array([npol, nchan, max(1, 65536 // (nchan * npol))], np.int32)},
                "COLUMNS": ["FLAG"],
            },
        }
    t = ct.default_ms(ms, td, dminfo) if dminfo else ct.default_ms(ms, td)
    try:
        t.addrows(nrow)
        t.putcol("TIME", np.repeat(data.time, nbl))
        t.putcol("TIME_CENTROID", np.repeat(data.time, nbl))
        t.putcol("ANTENNA1", np.tile(data.ant1, ntime))
        t.putcol("ANTENNA2", np.tile(data.ant2, ntime))
        t.putcol("UVW", -data.uvw.reshape(nrow, 3))  # MS convention: see the module docstring
        t.putcol("INTERVAL", np.full(nrow, data.interval))
        t.putcol("EXPOSURE", np.full(nrow, data.interval))
        t.putcol("WEIGHT", data.weight.reshape(nrow, npol))
        t.putcol("SIGMA", 1.0 / np.sqrt(np.maximum(data.weight.reshape(nrow, npol), 1e-30)))
        chunk = max(1, (256 << 20) // max(1, nchan * npol * 8))
        v = data.vis.reshape(nrow, nchan, npol)
        f = data.flags.reshape(nrow, nchan, npol)
        for r0 in range(0, nrow, chunk):
            r1 = min(nrow, r0 + chunk)
            t.putcol("DATA", np.ascontiguousarray(v[r0:r1], np.complex64), r0, r1 - r0)
            t.putcol("FLAG", np.ascontiguousarray(f[r0:r1]), r0, r1 - r0)
    finally:
        t.close()

    nant = len(data.antenna_names)
    with ct.table(os.path.join(ms, "ANTENNA"), readonly=False, ack=False) as at:
        at.addrows(nant)
        at.putcol("NAME", data.antenna_names)
        at.putcol("STATION", data.antenna_names)
        at.putcol("POSITION", data.antenna_positions)
        at.putcol("DISH_DIAMETER", np.full(nant, data.dish_diameter))
        at.putcol("TYPE", ["GROUND-BASED"] * nant)
        at.putcol("MOUNT", ["ALT-AZ"] * nant)
    with ct.table(os.path.join(ms, "SPECTRAL_WINDOW"), readonly=False, ack=False) as sw:
        sw.addrows(1)
        width = data.chan_width or (float(np.median(np.diff(data.freq))) if nchan > 1 else 1e6)
        sw.putcell("CHAN_FREQ", 0, data.freq)
        sw.putcell("CHAN_WIDTH", 0, np.full(nchan, width))
        sw.putcell("EFFECTIVE_BW", 0, np.full(nchan, width))
        sw.putcell("RESOLUTION", 0, np.full(nchan, width))
        sw.putcell("NUM_CHAN", 0, nchan)
        sw.putcell("REF_FREQUENCY", 0, float(data.freq[0]))
        sw.putcell("TOTAL_BANDWIDTH", 0, width * nchan)
        sw.putcell("NAME", 0, "SPW0")
    with ct.table(os.path.join(ms, "POLARIZATION"), readonly=False, ack=False) as pt:
        pt.addrows(1)
        pt.putcell("CORR_TYPE", 0, np.asarray(data.corr_types, np.int32))
        pt.putcell("NUM_CORR", 0, npol)
        prod = np.zeros((npol, 2), np.int32)
        for k, c in enumerate(data.corr_types):
            name = CORR_NAMES.get(c, "XX")
            prod[k] = ["XYRL".index(name[0]) % 2, "XYRL".index(name[1]) % 2]
        pt.putcell("CORR_PRODUCT", 0, prod)
    with ct.table(os.path.join(ms, "DATA_DESCRIPTION"), readonly=False, ack=False) as dd:
        dd.addrows(1)
        dd.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        dd.putcell("POLARIZATION_ID", 0, 0)
    with ct.table(os.path.join(ms, "FIELD"), readonly=False, ack=False) as ft:
        ft.addrows(1)
        d = np.array([[data.phase_dir[0], data.phase_dir[1]]])
        ft.putcell("PHASE_DIR", 0, d)
        ft.putcell("DELAY_DIR", 0, d)
        ft.putcell("REFERENCE_DIR", 0, d)
        ft.putcell("NAME", 0, data.field_name or "FIELD0")
        ft.putcell("TIME", 0, float(data.time[0]))
    with ct.table(os.path.join(ms, "OBSERVATION"), readonly=False, ack=False) as ot:
        ot.addrows(1)
        ot.putcell("TELESCOPE_NAME", 0, data.telescope)
        ot.putcell("TIME_RANGE", 0, np.array([data.time[0], data.time[-1]]))
        ot.putcell("OBSERVER", 0, "synthetic")
    name_observatory(ms, data.telescope)
