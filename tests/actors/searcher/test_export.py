"""Exports: FITS columns and units, valid PNGs, the seed's CSV header, a parseable turboSETI .dat; the cli."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from actors.searcher.cli import main
from actors.searcher.pipeline import SearchResult, search_file, write_exports
from actors.searcher.synth import Tone, make_filterbank

FCH1 = 1400.0
FOFF = -2.7939677238464355e-06
TSAMP = 18.253611008
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchResult]:
    d = tmp_path_factory.mktemp("exp")
    p = make_filterbank(d / "obs.fil", nchans=1 << 14, ntime=16, fch1=FCH1, foff=FOFF, tsamp=TSAMP,
                        tones=[Tone(FCH1 + FOFF * 3000, 0.6, 25), Tone(FCH1 + FOFF * 11000, -1.1, 18),
                               Tone(FCH1 + FOFF * 7000, 0.0, 30)],
                        source_name="Voyager1_synth", extra_header={"src_raj": 171003.98, "src_dej": 120510.2})
    return p, search_file(p)


def test_write_exports(searched: tuple[Path, SearchResult], tmp_path: Path) -> None:
    src, r = searched
    paths = write_exports(r, src, tmp_path / "out")
    assert set(paths) == {"json", "csv", "catalog_json", "classified", "fits", "waterfall", "waterfall_thumb",
                          "dat"}
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())

    full = json.loads(paths["json"].read_text())
    assert full["raw_hits"] == 3 and len(full["hits"]) == 3
    assert "drift_rate_convention" in full and full["search"]["drift_rate_resolution"] > 0

    rows = list(csv.reader(paths["csv"].read_text().splitlines()))
    assert ",".join(rows[0]).startswith("source_name,frequency_hz,drift_rate,snr,classification,interestingness,")
    assert len(rows) == 4 and rows[1][0] == "Voyager1_synth"

    cat = json.loads(paths["catalog_json"].read_text())
    assert {"frequency_hz", "drift_rate", "snr", "classification", "interestingness"} <= set(cat[0])
    cls = json.loads(paths["classified"].read_text())
    assert all(0.5 <= c["confidence"] <= 1.0 and c["classification"] for c in cls)

    from astropy.io import fits
    from astropy.table import Table

    with fits.open(paths["fits"]) as hdul:
        assert hdul[1].name == "HITS"
        assert hdul[1].header["DRIFTRES"] == pytest.approx(r.drift_rate_resolution)
    t = Table.read(paths["fits"], hdu="HITS")
    for col in ("source_name", "frequency_hz", "drift_rate", "snr", "classification", "interestingness",
                "rfi_source"):
        assert col in t.colnames
    assert str(t["frequency_hz"].unit) == "Hz" and str(t["drift_rate"].unit) == "Hz / s"
    assert len(t) == 3

    import matplotlib.image as mpimg

    for key in ("waterfall", "waterfall_thumb"):
        assert paths[key].read_bytes()[:8] == PNG
        img = mpimg.imread(paths[key])
        assert img.ndim == 3 and img.shape[0] > 50
    assert mpimg.imread(paths["waterfall_thumb"]).shape[1] < mpimg.imread(paths["waterfall"]).shape[1]


def _read_dat_like_turboseti(path: Path) -> dict[str, object]:
    """turbo_seti.find_event.read_dat's parsing, line for line."""
    hits = path.read_text().splitlines(keepends=True)
    out: dict[str, object] = {
        "FileID": hits[1].strip().split(":")[-1].strip(),
        "Source": hits[3].strip().split(":")[-1].strip(),
        "MJD": float(hits[4].strip().split("\t")[0].split(":")[-1].strip()),
        "RA": hits[4].strip().split("\t")[1].split(":")[-1].strip(),
        "DEC": hits[4].strip().split("\t")[2].split(":")[-1].strip(),
        "DELTAT": float(hits[5].strip().split("\t")[0].split(":")[-1].strip()),
        "DELTAF": float(hits[5].strip().split("\t")[1].split(":")[-1].strip()),
        "max_drift_rate": float(hits[5].strip().split("\t")[2].split(":")[-1].strip()),
        "obs_length": float(hits[5].strip().split("\t")[3].split(":")[-1].strip()),
    }
    rows = [re.split(r"\s+", re.sub(r"[\t]", " ", h).strip()) for h in hits[9:]]
    out["rows"] = rows
    return out


def test_dat_parses_like_turboseti(searched: tuple[Path, SearchResult], tmp_path: Path) -> None:
    src, r = searched
    paths = write_exports(r, src, tmp_path)
    assert paths["dat"].name == "obs.dat"
    d = _read_dat_like_turboseti(paths["dat"])
    assert d["Source"] == "Voyager1_synth" and d["FileID"] == "obs.h5"
    assert d["RA"] == "17h10m3.9800s"
    assert d["DELTAF"] == pytest.approx(FOFF * 1e6, abs=1e-6)
    assert d["max_drift_rate"] == pytest.approx(4.0)
    rows = d["rows"]
    assert isinstance(rows, list) and len(rows) == 3
    for row in rows:
        assert len(row) == 12
        drift, snr, freq, idx = float(row[1]), float(row[2]), float(row[3]), int(row[5])
        assert snr >= 10.0
        # Index is the file's channel order, frequency that channel's
        assert freq == pytest.approx(FCH1 + idx * FOFF, abs=1e-6)
        assert any(abs(h.drift_rate - drift) < 1e-5 for h in r.hits)


def test_no_hits_overview_waterfall(tmp_path: Path) -> None:
    p = make_filterbank(tmp_path / "quiet.h5", nchans=8192, ntime=8, seed=1)
    r = search_file(p)
    assert r.hits == []
    paths = write_exports(r, p, tmp_path / "o")
    assert paths["waterfall"].read_bytes()[:8] == PNG
    assert "00000" not in paths["dat"].read_text().splitlines()[-1]


def test_cli_writes_exports(searched: tuple[Path, SearchResult], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = searched
    out = tmp_path / "cli"
    assert main([str(src), "--max-drift", "2", "--min-snr", "12", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "raw hits" in text and "DRIFTING_UNCONFIRMED" in text
    for name in ("results.json", "signals.csv", "catalog.json", "classified.json", "catalog.fits",
                 "waterfall.png", "waterfall_thumb.png", "obs.dat"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["search"]["max_drift"] == 2.0


def test_cli_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.fil"
    bad.write_bytes(b"not a filterbank at all" * 3)
    assert main([str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "not a filterbank" in capsys.readouterr().err
    good = make_filterbank(tmp_path / "g.fil", nchans=1024, ntime=4)
    assert main([str(good), "--max-drift", "60", "--quiet"]) == 2


def test_waterfalls_of_many_spectra_are_averaged_in_time(tmp_path: Path) -> None:
    """A file of 4096 spectra: its waterfall is drawn from at most MAX_PLOT_ROWS time blocks (their
    means, their true time edges); one quad per spectrum took ~1 GB and minutes for one export."""
    import tracemalloc

    import numpy as np

    from actors.searcher.export import MAX_PLOT_ROWS, _time_blocks, write_waterfalls
    from actors.searcher.filterbank import open_filterbank

    data = np.arange(1000 * 3, dtype=np.float32).reshape(1000, 3)
    blocks, edges = _time_blocks(data, 2.0, max_rows=300)  # blocks of 4 spectra, the last of 0
    assert blocks.shape == (250, 3) and edges[0] == 0.0 and edges[-1] == 2000.0 and len(edges) == 251
    np.testing.assert_allclose(blocks[0], data[:4].mean(axis=0))
    odd, odd_edges = _time_blocks(data[:999], 2.0, max_rows=300)  # the last block has 3 spectra
    np.testing.assert_allclose(odd[-1], data[996:999].mean(axis=0))
    assert odd_edges[-1] == 1998.0

    src = make_filterbank(tmp_path / "tall.fil", nchans=2048, ntime=4096)
    # no hits: the band overview of all 4096 spectra is drawn (the search itself is not the subject
    # here, and a de-Doppler search of 4096 spectra takes a minute: a short file's result stands in)
    result = search_file(make_filterbank(tmp_path / "short.fil", nchans=2048, ntime=16))
    assert not result.top_candidates(4)
    tracemalloc.start()
    write_waterfalls(result, open_filterbank(src), tmp_path / "w.png", tmp_path / "t.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (tmp_path / "w.png").stat().st_size > 0 and (tmp_path / "t.png").stat().st_size > 0
    assert MAX_PLOT_ROWS <= 512
    assert peak < 250e6, f"{peak / 1e6:.0f} MB"
