"""``python run.py search FILE [--max-drift 4] [--min-snr 10] [--out DIR]``: the pipeline without the service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from astropy.io import fits

from actors.searcher.synth import Tone, make_filterbank
from harness.env import clean_env
from tests.conftest import PYTHON, ROOT


async def run_search(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "run.py",
        "search",
        *args,
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_run_py_search_writes_every_export(tmp_path: Path) -> None:
    tone = Tone(1399.95, -1.25, 30.0)
    path = make_filterbank(tmp_path / "obs.fil", nchans=1 << 16, ntime=16, fch1=1400.0, tones=[tone])
    out = tmp_path / "out"
    code, stdout, stderr = await run_search(str(path), "--max-drift", "4", "--min-snr", "10", "--out", str(out))
    assert code == 0, stderr
    assert "raw hits" in stdout and "candidates" in stdout
    names = {p.name for p in out.iterdir()}
    expected = {"results.json", "catalog.json", "classified.json", "catalog.fits", "waterfall.png"}
    assert expected <= names and "waterfall_thumb.png" in names and "obs.dat" in names
    assert any(n.endswith(".csv") for n in names)
    results = json.loads((out / "results.json").read_text())
    res = results["drift_rate_resolution"]
    assert any(
        abs(h["frequency_hz"] - tone.freq_mhz * 1e6) <= 2 * 2.8 and abs(h["drift_rate"] - tone.drift_rate) <= res
        for h in results["top_candidates"]
    ), results["top_candidates"]
    with fits.open(out / "catalog.fits") as hdul:
        assert len(hdul[1].data) == results["raw_hits"]
    assert (out / "waterfall.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "obs.dat").read_text().count("\n") >= results["raw_hits"]


async def test_run_py_search_on_a_bad_file_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fil"
    bad.write_bytes(b"not a filterbank at all" * 10)
    code, _, stderr = await run_search(str(bad), "--out", str(tmp_path / "out"))
    assert code == 2
    assert "not a filterbank" in stderr
