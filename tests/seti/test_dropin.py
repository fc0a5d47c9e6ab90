"""The search command line as a drop-in for turboSETI's: its flags, ``--formats dat``, the .dat's SNR,
``--min-snr`` on that SNR, and one channel convention with the file-order index in every export."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

from astropy.io import fits

from actors.searcher.cadence import read_dat
from actors.searcher.synth import Tone, make_filterbank
from harness.env import clean_env
from tests.conftest import PYTHON, ROOT

FOFF = -2.7939677238464355e-06


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _file(tmp_path: Path) -> Path:
    tones = [Tone(1400.0 + FOFF * (3000 + 7000 * k), d, s) for k, (d, s) in
             enumerate([(0.5, 30.0), (-1.2, 11.0), (2.0, 10.5), (0.1, 25.0)])]
    return make_filterbank(tmp_path / "obs.fil", nchans=1 << 15, ntime=16, fch1=1400.0, foff=FOFF,
                           tsamp=18.253611008, tones=tones, seed=11)


async def test_turboseti_flags_and_dat_only(tmp_path: Path) -> None:
    src = _file(tmp_path)
    out = tmp_path / "ts"
    obs_search = str(Path(PYTHON).parent / "obs-search")  # the installed console script
    code, _, stderr = await _run(obs_search, str(src), "-M", "2", "-s", "10", "-o", str(out), "-n", "4",
                                 "--formats", "dat", "--quiet")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["obs.dat"]  # only what turboSETI writes
    dat = read_dat((out / "obs.dat").read_text())
    assert dat.max_drift_rate == 2.0
    assert {h.coarse_chan for h in dat.hits} <= {0, 1, 2, 3} and len({h.coarse_chan for h in dat.hits}) > 1
    assert all(h.snr >= 10.0 for h in dat.hits)  # the cut is on the SNR the .dat prints
    assert abs(max(abs(h.drift_rate) for h in dat.hits)) <= 2.0
    # a bad -n says why
    code, _, stderr = await _run(PYTHON, "run.py", "search", str(src), "-n", "3", "-o", str(out))
    assert code == 2 and "-n 3" in stderr


async def test_snr_columns_and_channel_convention(tmp_path: Path) -> None:
    src = _file(tmp_path)
    out = tmp_path / "all"
    code, _, stderr = await _run(PYTHON, "run.py", "search", str(src), "--out", str(out), "--quiet",
                                 "--formats", "json,csv,fits,dat")
    assert code == 0, stderr
    doc = json.loads((out / "results.json").read_text())
    hits = doc["hits"]
    assert doc["search"]["min_snr_applies_to"].startswith("snr")
    assert "channel_file" in doc["search"]["channel_convention"]
    dat = read_dat((out / "obs.dat").read_text())
    nchans, n = 1 << 15, 1 << 15
    by_file_channel = {h["channel_file"]: h for h in hits}
    for d in dat.hits:
        h = by_file_channel[d.coarse_chan * n + d.chan_index]  # the .dat Index is the file-order channel
        assert abs(h["snr"] - d.snr) < 1e-3  # the .dat prints turboSETI's SNR, which is "snr" here
        assert h["snr_refined"] >= h["snr"] * 0.95
        assert h["channel_file"] == nchans - 1 - h["channel"]  # descending band: file order reversed
    with (out / "signals.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {int(r["channel_file"]) for r in rows} == set(by_file_channel)
    assert all("snr_refined" in r for r in rows)
    with fits.open(out / "catalog.fits") as hdul:
        t = hdul[1].data
        assert set(t["channel_file"].tolist()) == set(by_file_channel)
        assert hdul[1].header["CHANORD"] == "ascending"
    assert not (out / "waterfall.png").exists()


async def test_min_snr_can_cut_on_the_refined_snr(tmp_path: Path) -> None:
    src = _file(tmp_path)
    a, b = tmp_path / "taylor", tmp_path / "refined"
    for d, extra in ((a, []), (b, ["--snr-cut-on", "refined"])):
        code, _, stderr = await _run(PYTHON, "run.py", "search", str(src), "-o", str(d), "--quiet",
                                     "--formats", "json", "-s", "10.5", *extra)
        assert code == 0, stderr
    ta = json.loads((a / "results.json").read_text())["hits"]
    tb = json.loads((b / "results.json").read_text())["hits"]
    assert all(h["snr"] >= 10.5 for h in ta)
    assert all(h["snr_refined"] >= 10.5 for h in tb)
    assert len(tb) >= len(ta)
