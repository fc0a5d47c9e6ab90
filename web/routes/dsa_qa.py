"""Seed 000's QA views: browse the data directories, read FITS and CASA tables, write QA notebooks.

* ``GET /api/qa/directories?path=``: directories and files (name, path, size, modified);
* ``GET /api/qa/fits/{path}``: header, data_shape, wcs (no pixel is read);
* ``GET /api/qa/casa/{path}``: table_type (``B``/``G``/``K`` for calibration tables from their
  ``VisCal``, ``MS`` for a Measurement Set), num_rows, columns with dtype and shape;
* ``POST /api/qa/notebook/generate`` (operator key): a real ``.ipynb`` (nbformat) that loads the
  group's image and the calibration tables that calibrated it (or that it solved) and plots them.

These read files, not actors: the edge reads them directly, always in a thread.

**Confinement.** A path is accepted only when its real path (``os.path.realpath``, every symlink
resolved) lies inside the real path of a data root: the data dir, the MS dir, the image dir and
the calibration-set dir. A ``..`` component is refused before anything is resolved, whatever it
would resolve to; relative paths are taken from the data dir. Anything else is 403 with the
envelope (code ``PATH_NOT_ALLOWED``). A listing leaves out symlinks that lead out.

**Only regular files and directories are opened.** FIFOs, sockets and devices are 422
(``NOT_A_REGULAR_FILE``) before anything opens them, and files are opened ``O_NOFOLLOW |
O_NONBLOCK`` and checked with ``fstat``: a FIFO must never hold a thread of the edge's pool.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import msgspec
import numpy as np
from aiohttp import web

from web.auth import require_key, require_operator
from web.errors import ApiError
from web.routing import json_response, read_json

if TYPE_CHECKING:
    from web.app import Edge


class Escape(Exception):
    """The path leaves the data roots (or cannot be a path at all)."""


def roots_of(settings: Any) -> list[str]:
    roots = [settings.data_dir, settings.ms_dir, settings.image_dir, settings.calset_dir]
    out: list[str] = []
    for r in roots:
        real = os.path.realpath(os.fspath(r))
        if real not in out:
            out.append(real)
    return out


def resolve(settings: Any, raw: str) -> str:
    """The real path of `raw` if it is inside the data roots; raises `Escape` otherwise."""
    if "\x00" in raw:
        raise Escape("the path contains a NUL byte")
    parts = raw.replace("\\", "/").split("/")
    if ".." in parts:
        raise Escape("'..' is not allowed in QA paths")
    base = os.fspath(settings.data_dir)
    candidate = raw if os.path.isabs(raw) else os.path.join(base, raw)
    real = os.path.realpath(candidate)
    for root in roots_of(settings):
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return real
    raise Escape("the path is outside the data roots")


def check_kind(real: str) -> str:
    """``"file"`` or ``"dir"`` for `real` (already resolved, so no link is left in it); raises
    `SpecialFile` for FIFOs, sockets and devices, which are never opened: a FIFO would block the
    reading thread until something wrote to it, and ten such requests would hold the whole pool."""
    st = os.lstat(real)
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    raise SpecialFile("not a regular file or directory (a FIFO, socket or device)")


class SpecialFile(ValueError):
    """A path that is neither a regular file nor a directory."""


def open_regular(real: str) -> int:
    """A descriptor of the regular file `real`: ``O_NOFOLLOW | O_NONBLOCK``, then ``fstat`` on what
    was opened, so a path swapped for a FIFO or a link after `check_kind` is still refused."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpecialFile("a symbolic link appeared at this path") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecialFile("not a regular file")
    os.set_blocking(fd, True)
    return fd


def check_table_tree(real: str, max_entries: int = 10000) -> None:
    """Every entry under a CASA table directory is a regular file or a directory, and no link
    leads anywhere: casacore opens them all by name, so one FIFO inside would block it."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(real):
        for name in dirnames + filenames:
            n += 1
            if n > max_entries:
                raise ValueError(f"more than {max_entries} entries: not a CASA table")
            st = os.lstat(os.path.join(dirpath, name))
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise SpecialFile(f"{name!r} inside the table is not a regular file or directory")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_directory(settings: Any, real: str, max_entries: int = 5000) -> dict[str, Any]:
    roots = roots_of(settings)
    data_dir = os.path.realpath(os.fspath(settings.data_dir))

    def inside(p: str) -> bool:
        return any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots)

    directories: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    with os.scandir(real) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries[:max_entries]:
        path = os.path.join(real, e.name)
        target = os.path.realpath(path)
        if not inside(target):
            continue  # a symlink that leads out is not shown (nor its size or time)
        try:
            st = os.stat(target)
        except OSError:
            continue
        if os.path.isdir(target):
            directories.append({"name": e.name, "path": path})
        else:
            files.append(
                {
                    "name": e.name,
                    "path": path,
                    "size": int(st.st_size),
                    "modified": _iso(st.st_mtime),
                    "url": file_url(path, data_dir),
                }
            )
    return {"path": real, "directories": directories, "files": files}


SERVED_SUFFIXES = (".png", ".fits", ".fit", ".fts")


def file_url(path: str, data_dir: str) -> str | None:
    """Where a browser fetches this file (``GET /api/qa/file/{path}``): PNG and FITS files only.
    Relative to the data dir when under it (no '//' in the URL, which some proxies fold)."""
    if not path.lower().endswith(SERVED_SUFFIXES):
        return None
    base = data_dir.rstrip(os.sep) + os.sep
    rel = path[len(base) :] if path.startswith(base) else path
    return "/api/qa/file/" + quote(rel, safe="/")


def _jsonable(v: Any) -> Any:
    if isinstance(v, bool | int | str) or v is None:
        return v
    if isinstance(v, float):
        return v if np.isfinite(v) else str(v)
    if isinstance(v, np.generic):
        return _jsonable(v.item())
    return str(v)


def fits_info(real: str) -> dict[str, Any]:
    """Primary header, data shape (numpy order) and the WCS of a FITS image (no pixel is read)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    try:
        fh = os.fdopen(open_regular(real), "rb")
    except OSError as exc:
        raise ValueError(f"not a readable file: {exc.strerror}") from None
    try:
        with fh, fits.open(fh, memmap=True, lazy_load_hdus=True) as hdul:
            hdu = hdul[0]
            header = hdu.header
            shape = [int(n) for n in (hdu.shape or ())]
            cards = {}
            for card in header.cards:
                if card.keyword in ("", "COMMENT", "HISTORY"):
                    continue
                cards[card.keyword] = _jsonable(card.value)
            w = WCS(header)
    except OSError as exc:
        raise ValueError(f"not a readable FITS file: {exc}") from None
    wcs: dict[str, Any] = {
        "naxis": int(w.naxis),
        "ctype": list(w.wcs.ctype),
        "cunit": [str(u) for u in w.wcs.cunit],
        "crval": [float(x) for x in w.wcs.crval],
        "crpix": [float(x) for x in w.wcs.crpix],
        "cdelt": [float(x) for x in w.wcs.cdelt],
        "radesys": str(w.wcs.radesys),
        "has_celestial": bool(w.has_celestial),
    }
    if w.has_celestial:
        c = w.celestial
        wcs["projection"] = c.wcs.ctype[0][5:].strip("-") or ""
        ny, nx = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, 1)
        ra, dec = c.wcs_pix2world([[nx / 2.0, ny / 2.0]], 0)[0]
        wcs["center_ra_deg"] = float(ra)
        wcs["center_dec_deg"] = float(dec)
        wcs["pixel_scale_arcsec"] = [float(abs(x) * 3600.0) for x in c.wcs.cdelt]
    return {"path": real, "header": cards, "data_shape": shape, "wcs": wcs}


_VISCAL_TYPES = {"B Jones": "B", "G Jones": "G", "K Jones": "K", "T Jones": "T", "D Jones": "D"}


def casa_info(real: str) -> dict[str, Any]:
    """Type, rows and columns (name, dtype, shape in numpy order) of a CASA table."""
    import casacore.tables as ct

    if not os.path.isdir(real) or not os.path.isfile(os.path.join(real, "table.dat")):
        raise ValueError("not a CASA table (no table.dat)")
    check_table_tree(real)
    with ct.table(real, ack=False, readonly=True) as t:
        kw = t.getkeywords()
        info = t.info()
        viscal = str(kw.get("VisCal", "")) if isinstance(kw, dict) else ""
        if viscal:
            ttype = _VISCAL_TYPES.get(viscal, viscal.split()[0])
        elif str(info.get("type", "")).lower().startswith("measurement"):
            ttype = "MS"
        else:
            ttype = str(info.get("type", "")) or "table"
        nrows = int(t.nrows())
        columns = []
        for name in t.colnames():
            desc = t.getcoldesc(name)
            dtype = str(desc.get("valueType", ""))
            ndim = int(desc.get("ndim", 0))
            shape: list[int] = []
            if ndim != 0 or "shape" in desc:
                if "shape" in desc and len(desc["shape"]):
                    shape = [int(n) for n in reversed(list(desc["shape"]))]
                elif nrows and t.iscelldefined(name, 0):
                    shape = [int(n) for n in np.shape(t.getcell(name, 0))]
            columns.append({"name": name, "dtype": dtype, "shape": shape})
    return {"path": real, "table_type": ttype, "num_rows": nrows, "columns": columns}


# -- the QA notebook -----------------------------------------------------------------------------
def group_products(settings: Any, group_id: str) -> tuple[str | None, list[str]]:
    """The group's image (if imaged) and the calibration sets that calibrated it (or it solved)."""
    from astropy.io import fits

    safe = group_id.replace(os.sep, "_")
    image = Path(settings.image_dir) / f"{safe}.fits"
    calsets: list[str] = []
    own = Path(settings.calset_dir) / safe
    if (own / "calset.json").is_file():
        calsets.append(os.fspath(own))
    img: str | None = None
    if image.is_file():
        img = os.fspath(image)
        names = str(fits.getheader(img).get("CALSETS", "") or "")
        for n in filter(None, (x.strip() for x in names.split(","))):
            d = Path(settings.calset_dir) / n
            if (d / "calset.json").is_file() and os.fspath(d) not in calsets:
                calsets.append(os.fspath(d))
    return img, calsets


_IMAGE_CELL = """\
# The restored image, zoomed on the central quarter (the primary beam's core; at least 256 px), north up,
# east left. Stretch: from -3 sigma to the brightest pixel through an asinh whose linear part is ~10 sigma
# wide, so the noise stays dark, faint sources show and nothing saturates.
from astropy.visualization import AsinhStretch, ImageNormalize
from matplotlib.patches import Ellipse

hdr = fits.getheader(IMAGE)
img = np.squeeze(fits.getdata(IMAGE)).astype(np.float32)
ny, nx = img.shape
side = min(ny, nx, max(256, ny // 4))
y0, x0 = (ny - side) // 2, (nx - side) // 2
cut = img[y0 : y0 + side, x0 : x0 + side]
wcs = WCS(hdr).celestial[y0 : y0 + side, x0 : x0 + side]
sigma = float(hdr.get("NOISE") or 1.4826 * np.nanmedian(np.abs(cut - np.nanmedian(cut))))
vmin, vmax = -3 * sigma, max(float(np.nanmax(cut)), 10 * sigma)
norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(a=min(1.0, max(1e-3, 10 * sigma / (vmax - vmin)))))
cell = abs(hdr["CDELT2"])
print(f"image {img.shape}, beam {hdr['BMAJ']*3600:.1f}\\" x {hdr['BMIN']*3600:.1f}\\" PA {hdr['BPA']:.0f} deg")
print(f"noise {sigma*1e3:.3f} mJy/beam (thermal {hdr.get('THNOISE', float('nan'))*1e3:.3f}), "
      f"peak {np.nanmax(img):.3f} Jy/beam, sources > 5 sigma: {hdr.get('NSRC5', '?')}")
fig = plt.figure(figsize=(7.5, 6.5))
ax = fig.add_subplot(projection=wcs)
im = ax.imshow(cut, origin="lower", cmap="inferno", norm=norm, interpolation="nearest")
ax.coords[0].set_axislabel("Right Ascension (J2000)")
ax.coords[1].set_axislabel("Declination (J2000)")
ax.coords[0].set_major_formatter("hh:mm:ss")
ax.coords[1].set_major_formatter("dd:mm")
ax.coords.grid(color="white", alpha=0.25, linestyle=":")
fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Intensity (Jy/beam)")
bmaj, bmin = hdr["BMAJ"] / cell, hdr["BMIN"] / cell
pad = max(bmaj, 3) * 0.8 + 4
ax.add_patch(Ellipse((pad, pad), max(bmin, 3), max(bmaj, 3), angle=hdr["BPA"], fc="none", ec="cyan", lw=1.5))
ax.set_title(f"{GROUP_ID}: central {side * cell:.2f} deg, sigma = {sigma*1e3:.2f} mJy/beam")
plt.show()
"""

_CAL_CELL = """\
# Bandpass (amplitude and phase against frequency) and gains (against time), one colour per antenna
# (legend at the right); solid: first polarisation, dashed: second. Gains are dimensionless (the
# per-antenna ratio of the observed to the model voltage); B and G together calibrate the amplitude.
def antenna_names(path, n):
    sub = os.path.join(path, "ANTENNA")
    if casatables.tableexists(sub):
        with casatables.table(sub, ack=False) as at:
            names = [str(x) for x in at.getcol("NAME")]
        if names:
            return names
    return [f"ant{i}" for i in range(n)]

for cs in CALSETS:
    manifest = json.loads(open(os.path.join(cs, "calset.json")).read())
    print(os.path.basename(cs), "calibrator", manifest["calibrator"]["name"], "antennas solved", manifest["num_targets"])
    bpath = os.path.join(cs, "bandpass.B")
    with casatables.table(bpath, ack=False) as tb:
        bp = tb.getcol("CPARAM")  # [rows (one per antenna), nchan, npol]
        bpf = tb.getcol("FLAG")
        bant = tb.getcol("ANTENNA1")
    with casatables.table(os.path.join(bpath, "SPECTRAL_WINDOW"), ack=False) as sw:
        freq = sw.getcell("CHAN_FREQ", 0) / 1e6
    with casatables.table(os.path.join(cs, "gains.G"), ack=False) as tg:
        g = tg.getcol("CPARAM")[:, 0, :]
        gt = tg.getcol("TIME")
        ga = tg.getcol("ANTENNA1")
    names = antenna_names(bpath, int(max(bant.max(), ga.max())) + 1)
    colours = plt.get_cmap("turbo")(np.linspace(0, 1, max(len(np.unique(bant)), 1)))
    colour_of = {a: colours[i] for i, a in enumerate(np.unique(bant))}
    bpm = np.ma.masked_array(bp, bpf)
    fig, axes = plt.subplots(2, 2, figsize=(12, 6.5), sharex="col", layout="constrained")
    styles = ["-", "--"]
    for row, a in enumerate(bant):
        for p in range(bp.shape[2]):
            label = names[a] if p == 0 else None
            axes[0, 0].plot(freq, np.abs(bpm[row, :, p]), styles[p % 2], color=colour_of[a], lw=0.7, label=label)
            axes[1, 0].plot(freq, np.degrees(np.angle(bpm[row, :, p])), ".", color=colour_of[a], ms=1)
    tmin = (gt - gt.min()) / 60.0
    for a in np.unique(ga):
        sel = ga == a
        c = colour_of.get(a, "grey")
        axes[0, 1].plot(tmin[sel], np.abs(g[sel, 0]), "-", color=c, lw=0.7)
        axes[1, 1].plot(tmin[sel], np.degrees(np.angle(g[sel, 0])), "-", color=c, lw=0.7)
    axes[0, 0].set_ylabel("|B| (bandpass amplitude, dimensionless)")
    axes[1, 0].set_ylabel("arg B (deg)")
    axes[1, 0].set_xlabel("Frequency (MHz)")
    axes[0, 1].set_ylabel("|G| (gain amplitude, dimensionless)")
    axes[1, 1].set_ylabel("arg G (deg)")
    axes[1, 1].set_xlabel("Time since first solution (min)")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    n_ant = len(colour_of)
    fig.legend(title="antenna", loc="outside right upper", fontsize=6, ncol=max(1, (n_ant + 31) // 32))
    fig.suptitle(f"{os.path.basename(cs)}: calibrator {manifest['calibrator']['name']}")
    plt.show()
"""


def build_notebook(group_id: str, notebook_type: str, image: str | None, calsets: list[str]) -> Any:
    import nbformat
    from nbformat import v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    title = f"# DSA-110 QA: group {group_id} ({notebook_type})\n\nGenerated {datetime.now(UTC).isoformat()[:19]}Z."
    setup = (
        "import json, os\n"
        "import numpy as np\n"
        "import matplotlib\n"
        "import matplotlib.pyplot as plt\n"
        "from astropy.io import fits\n"
        "from astropy.wcs import WCS\n"
        "import casacore.tables as casatables\n\n"
        f"GROUP_ID = {json.dumps(group_id)}\n"
        f"IMAGE = {json.dumps(image)}\n"
        f"CALSETS = {json.dumps(calsets)}\n"
    )
    cells = [v4.new_markdown_cell(title), v4.new_code_cell(setup)]
    image_cells = [v4.new_markdown_cell("## Image"), v4.new_code_cell(_IMAGE_CELL)] if image else []
    cal_cells = [v4.new_markdown_cell("## Calibration"), v4.new_code_cell(_CAL_CELL)] if calsets else []
    cells += (cal_cells + image_cells) if notebook_type == "calibration" else (image_cells + cal_cells)
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def write_notebook(settings: Any, group_id: str, notebook_type: str, real_out: str) -> str:
    """Write the QA notebook of a group at `real_out` (already confined); raises LookupError if the
    group has neither an image nor a calibration set."""
    import nbformat

    image, calsets = group_products(settings, group_id)
    if image is None and not calsets:
        raise LookupError(f"group {group_id!r} has no image and no calibration set yet")
    nb = build_notebook(group_id, notebook_type, image, calsets)
    out = Path(real_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    nbformat.write(nb, os.fspath(tmp))
    os.replace(tmp, out)
    return os.fspath(out)


# -- routes --------------------------------------------------------------------------------------
class DirectoryEntry(msgspec.Struct):
    name: str
    path: str


class FileEntry(msgspec.Struct):
    name: str
    path: str
    size: int
    modified: str
    url: str | None  # GET /api/qa/file/... for PNG and FITS files, else null


class DirectoryResponse(msgspec.Struct):
    path: str
    directories: list[DirectoryEntry]
    files: list[FileEntry]


class FitsResponse(msgspec.Struct):
    path: str
    header: dict[str, Any]
    data_shape: list[int]
    wcs: dict[str, Any]


class CasaColumn(msgspec.Struct):
    name: str
    dtype: str
    shape: list[int]


class CasaResponse(msgspec.Struct):
    path: str
    table_type: str
    num_rows: int
    columns: list[CasaColumn]


class NotebookRequest(msgspec.Struct, forbid_unknown_fields=True):
    #: a group id (a timestamp), never a path: no '/', not '.' or '..'
    group_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1, max_length=128, pattern=r"^(?!\.\.?$)[^/\x00]+$", extra={"hint": "a group id, not a path"}
        ),
    ]
    notebook_type: Literal["calibration", "image"] = "calibration"
    #: where to write it, inside a data root (default: DATA/qa/<group_id>/qa_<type>.ipynb)
    output_path: (
        Annotated[
            str, msgspec.Meta(max_length=4096, pattern=r"^[^\x00]*\.ipynb$", extra={"hint": "it must end in .ipynb"})
        ]
        | None
    ) = None


class NotebookResponse(msgspec.Struct):
    notebook_path: str
    status: str


async def confine(settings: Any, raw: str) -> str:
    """The real path of `raw` inside the data roots, or a 403 envelope."""
    try:
        return await asyncio.to_thread(resolve, settings, raw)
    except Escape as exc:
        raise ApiError(403, f"path not allowed: {exc}", "PATH_NOT_ALLOWED", {"path": raw}) from None


def register(edge: Edge) -> None:
    api = edge.api
    settings = edge.settings

    async def read_guard(request: web.Request) -> None:
        if settings.read_auth:
            await require_key(request)

    async def existing(raw: str) -> str:
        real = await confine(settings, raw)
        try:
            await asyncio.to_thread(check_kind, real)
        except (FileNotFoundError, NotADirectoryError):
            raise ApiError(404, f"no such file or directory: {raw!r}", details={"path": raw}) from None
        except SpecialFile as exc:
            raise ApiError(422, f"{raw!r}: {exc}", "NOT_A_REGULAR_FILE", {"path": raw}) from None
        return real

    @api.route(
        "GET",
        "/api/qa/directories",
        response=DirectoryResponse,
        tag="qa",
        summary="Browse the data directories (default: the data dir)",
        query=[("path", "string", False)],
        responses={403: "path outside the data roots", 404: "no such directory", 422: "not a directory"},
    )
    async def directories(request: web.Request) -> web.Response:
        await read_guard(request)
        raw = request.query.get("path") or os.fspath(settings.data_dir)
        real = await existing(raw)
        if not await asyncio.to_thread(os.path.isdir, real):
            raise ApiError(422, f"not a directory: {raw!r}", details={"path": raw})
        return json_response(await asyncio.to_thread(list_directory, settings, real))

    @api.route(
        "GET",
        "/api/qa/fits/{path:.+}",
        response=FitsResponse,
        tag="qa",
        summary="FITS header, data shape and WCS",
        responses={403: "path outside the data roots", 404: "no such file", 422: "not a FITS file"},
    )
    async def fits_view(request: web.Request) -> web.Response:
        await read_guard(request)
        raw = request.match_info["path"]
        real = await existing(raw)
        try:
            return json_response(await asyncio.to_thread(fits_info, real))
        except (ValueError, IsADirectoryError) as exc:
            raise ApiError(422, f"{raw!r}: {exc}", details={"path": raw}) from None

    @api.route(
        "GET",
        "/api/qa/casa/{path:.+}",
        response=CasaResponse,
        tag="qa",
        summary="CASA table (Measurement Set, calibration table): type, rows, columns",
        responses={403: "path outside the data roots", 404: "no such table", 422: "not a CASA table"},
    )
    async def casa_view(request: web.Request) -> web.Response:
        await read_guard(request)
        raw = request.match_info["path"]
        real = await existing(raw)
        try:
            return json_response(await asyncio.to_thread(casa_info, real))
        except (ValueError, RuntimeError) as exc:
            raise ApiError(422, f"{raw!r}: {exc}", details={"path": raw}) from None

    @api.route(
        "POST",
        "/api/qa/notebook/generate",
        request=NotebookRequest,
        response=NotebookResponse,
        tag="qa",
        auth="operator",
        summary="Write a QA notebook (.ipynb) that loads and plots a group's image and calibration tables",
        responses={
            400: "bad JSON or a missing field",
            403: "no operator key, or an output path outside the data roots",
            404: "the group has no image and no calibration set",
            422: "bad notebook_type or output_path",
        },
    )
    async def notebook(request: web.Request) -> web.Response:
        await require_operator(request)
        body = await read_json(request, NotebookRequest)
        if "/" in body.group_id or body.group_id in (".", ".."):
            raise ApiError(422, "group_id must be a group id, not a path", details={"field": "group_id"})
        raw = body.output_path or os.path.join(
            os.fspath(settings.data_dir), "qa", body.group_id, f"qa_{body.notebook_type}.ipynb"
        )
        if not raw.endswith(".ipynb"):
            raise ApiError(422, "output_path must end in .ipynb", details={"field": "output_path"})
        real = await confine(settings, raw)
        if await asyncio.to_thread(os.path.isdir, real):
            raise ApiError(422, "output_path is a directory", details={"field": "output_path"})
        try:
            path = await asyncio.to_thread(write_notebook, settings, body.group_id, body.notebook_type, real)
        except LookupError as exc:
            raise ApiError(404, str(exc).strip("'\""), details={"group_id": body.group_id}) from None
        return json_response(NotebookResponse(notebook_path=path, status="generated"))
