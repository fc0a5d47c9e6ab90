"""The QA views of seed 000 over HTTP: directories, FITS and CASA table summaries, the QA notebook
(generated, then executed with nbclient), and paths that try to leave the data roots (403)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import nbformat
from nbclient import NotebookClient

from tests.dsa import imaging_fixtures
from tests.dsa.imaging_fixtures import ImagingStack, Products, install

imaging = imaging_fixtures.imaging
imaging_sim = imaging_fixtures.imaging_sim
products = imaging_fixtures.products


def _forbidden(r: object) -> None:
    assert r.status == 403, (r.status, r.body)  # type: ignore[attr-defined]
    body = r.body  # type: ignore[attr-defined]
    assert body["status"] == "error" and body["code"] == "PATH_NOT_ALLOWED" and body["error"]


async def test_browse_fits_and_casa(imaging: ImagingStack, products: Products, tmp_path: Path) -> None:
    s = imaging.settings
    install(products, s)
    image = s.image_dir / products.image.name
    calset = s.calset_dir / products.calset.name
    ms = s.ms_dir / products.target_ms.name

    r = await imaging.get("/api/qa/directories")
    assert r.status == 200 and r.body["path"] == os.path.realpath(s.data_dir)
    assert {"images", "calsets"} <= {d["name"] for d in r.body["directories"]}
    r = await imaging.get("/api/qa/directories?path=images")
    assert r.status == 200
    files = {f["name"]: f for f in r.body["files"]}
    assert {image.name, image.with_suffix(".png").name} <= set(files)
    f = files[image.name]
    assert f["size"] == image.stat().st_size and f["modified"].endswith("Z") and f["path"] == str(image)
    r = await imaging.get("/api/qa/directories?path=" + quote(str(s.ms_dir)))  # another root, absolute
    assert r.status == 200 and ms.name in {d["name"] for d in r.body["directories"]}

    r = await imaging.get("/api/qa/fits/" + quote(str(image)))
    assert r.status == 200, r.body
    assert r.body["header"]["NAXIS"] == 4 and r.body["header"]["CTYPE1"] == "RA---SIN"
    assert r.body["data_shape"] == [1, 1, 256, 256]
    w = r.body["wcs"]
    assert w["ctype"][:2] == ["RA---SIN", "DEC--SIN"] and w["has_celestial"] and w["projection"] == "SIN"
    assert abs(w["crval"][0] - r.body["header"]["CRVAL1"]) < 1e-9
    r = await imaging.get("/api/qa/fits/images/" + quote(image.name))  # relative to the data dir
    assert r.status == 200

    for table, ttype, col, shape in (
        (calset / "bandpass.B", "B", "CPARAM", [imaging_fixtures.N_CHANNELS * 16, 2]),
        (calset / "gains.G", "G", "CPARAM", [1, 2]),
        (ms, "MS", "DATA", [imaging_fixtures.N_CHANNELS * 16, 2]),
    ):
        r = await imaging.get("/api/qa/casa/" + quote(str(table)))
        assert r.status == 200, r.body
        assert r.body["table_type"] == ttype and r.body["num_rows"] > 0
        cols = {c["name"]: c for c in r.body["columns"]}
        assert cols[col]["dtype"] == "complex" and cols[col]["shape"] == shape, cols[col]
        assert cols["TIME"] == {"name": "TIME", "dtype": "double", "shape": []}

    # errors
    assert (await imaging.get("/api/qa/fits/images/nope.fits")).status == 404
    r = await imaging.get("/api/qa/fits/" + quote(str(calset / "calset.json")))
    assert r.status == 422 and r.body["status"] == "error"
    assert (await imaging.get("/api/qa/casa/" + quote(str(image)))).status == 422

    # escapes: '..', absolute paths outside the roots, symlinks that lead out
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.fits").write_bytes(image.read_bytes())
    os.symlink(outside, s.data_dir / "link_out")
    os.symlink(outside / "secret.fits", s.image_dir / "secret.fits")
    os.symlink(calset, s.data_dir / "link_in")  # a symlink that stays inside is fine
    for path in (
        "..",
        "../..",
        "images/../../outside",
        str(s.data_dir) + "/../outside",
        "/etc",
        str(outside),
        "link_out",
    ):
        _forbidden(await imaging.get("/api/qa/directories?path=" + quote(path)))
    for url in (
        "/api/qa/fits/" + quote("../outside/secret.fits", safe=""),
        "/api/qa/fits/" + quote(str(outside / "secret.fits")),
        "/api/qa/fits/" + quote("/etc/passwd"),
        "/api/qa/fits/link_out/secret.fits",
        "/api/qa/fits/images/secret.fits",
        "/api/qa/casa/" + quote(str(outside)),
        "/api/qa/casa/images%2F..%2F..%2Foutside",
    ):
        _forbidden(await imaging.get(url))
    r = await imaging.get("/api/qa/directories?path=images")
    assert "secret.fits" not in {f["name"] for f in r.body["files"]}  # the listing hides links out
    r = await imaging.get("/api/qa/casa/link_in/bandpass.B")
    assert r.status == 200 and r.body["table_type"] == "B"


async def test_notebook_is_written_and_runs(imaging: ImagingStack, products: Products, tmp_path: Path) -> None:
    s = imaging.settings
    install(products, s)
    op = await imaging.operator()
    group = products.target_ms.stem
    out = s.data_dir / "qa" / "nb" / "qa_notebook.ipynb"
    body = {"group_id": group, "notebook_type": "calibration", "output_path": str(out)}

    assert (await imaging.post("/api/qa/notebook/generate", body)).status == 403
    _forbidden(await imaging.post("/api/qa/notebook/generate", {**body, "output_path": str(tmp_path / "x.ipynb")}, op))
    _forbidden(await imaging.post("/api/qa/notebook/generate", {**body, "output_path": "qa/../../x.ipynb"}, op))
    r = await imaging.post("/api/qa/notebook/generate", {**body, "output_path": "qa/x.txt"}, op)
    assert r.status == 422
    r = await imaging.post("/api/qa/notebook/generate", {**body, "group_id": "2001-01-01T00:00:00"}, op)
    assert r.status == 404 and r.body["status"] == "error"
    assert (await imaging.post("/api/qa/notebook/generate", {**body, "notebook_type": "x"}, op)).status == 422

    r = await imaging.post("/api/qa/notebook/generate", body, op)
    assert r.status == 200, r.body
    assert r.body == {"notebook_path": str(out), "status": "generated"}

    nb = nbformat.read(out, as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    assert str(s.image_dir / products.image.name) in source and "bandpass.B" in source
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(pngs) >= 2  # the calibration set's bandpass/gains and the image
