"""ON/OFF cadence events (``run.py events``): turboSETI's filter levels on simulated ABACAD cadences."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from actors.searcher.cadence import EVENTS_CSV_COLUMNS, DatFile, DatHit, find_events, on_mask
from actors.searcher.synth_cadence import OBS_S, Signal, make_cadence
from harness.env import clean_env
from tests.conftest import PYTHON, ROOT

SKY = Signal(1399.99, 0.35, 30.0, files=(0, 2, 4))  # only where the telescope points at the target
RFI = Signal(1399.97, -0.2, 30.0, files=range(6))  # wherever the telescope points
OUT_OF_BAND = Signal(1399.95455, -1.0, 30.0, files=range(6))  # leaves the band during the first ON


async def run_events(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "run.py", "events", *args, cwd=ROOT, env=clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def near(freq_mhz: float, want_mhz: float, hz: float = 10.0) -> bool:
    return abs(freq_mhz - want_mhz) * 1e6 <= hz


@pytest.mark.parametrize("sigma_off", [1.0, 2.5], ids=["same-noise", "noisier-offs"])
async def test_events_keeps_the_sky_signal_and_rejects_rfi(tmp_path: Path, sigma_off: float) -> None:
    files = make_cadence(tmp_path / "cad", [SKY, RFI, OUT_OF_BAND], sigma_off=sigma_off)
    out = tmp_path / "out"
    code, stdout, stderr = await run_events(*map(str, files), "--out", str(out))
    assert code == 0, stderr
    assert "level 3: 1 events" in stdout, stdout
    # the CSV: turboSETI's columns, one row per ON in which the event was followed
    with (out / "events.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["", *EVENTS_CSV_COLUMNS]
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [r["status"] for r in body] == ["on_table_1", "on_table_2", "on_table_3"]
    assert len({r["Hit_ID"] for r in body}) == 1 and body[0]["Hit_ID"].startswith("TARGET_")
    for n, r in enumerate(body):
        t = 2 * n * (OBS_S + 20.0)
        assert near(float(r["Freq"]), SKY.freq_mhz + SKY.drift * t / 1e6, 6.0), r
        assert abs(float(r["DriftRate"]) - SKY.drift) <= 0.011
        assert float(r["delta_t"]) == pytest.approx(t, abs=0.01)
        assert r["RFI_in_range"] == "0"
    # the JSON labels every ON hit in the light of the cadence
    doc = json.loads((out / "events.json").read_text())
    assert doc["counts"]["events"] == 1 and doc["counts"]["candidates"] == 1
    assert doc["events"][0]["classification"] == "CANDIDATE_ET"
    labels = {(h["file"], round(h["frequency_mhz"], 3)): (h["classification"], h["reason"]) for h in doc["hits"]}
    rfi = [v for (f, fr), v in labels.items() if abs(fr - RFI.freq_mhz) < 0.002]
    assert len(rfi) == 3 and all(v == ("RFI_TERRESTRIAL", "in_off") for v in rfi), labels
    gone = [v for (f, fr), v in labels.items() if f == "ON_0.fil" and abs(fr - OUT_OF_BAND.freq_mhz) < 0.001]
    assert gone == [("NARROWBAND_DRIFTING", "not_in_all_ons")], labels
    # one stacked waterfall for the event
    png = out / doc["events"][0]["plot"]
    assert png.read_bytes().startswith(b"\x89PNG")
    # a second run reads the .dat files instead of searching again
    code, _, stderr = await run_events(*map(str, files), "--out", str(out), "--no-plots")
    assert code == 0 and stderr.count("hits from") == 6, stderr


async def test_events_with_a_bad_file_says_which(tmp_path: Path) -> None:
    files = make_cadence(tmp_path / "cad", [SKY], n_files=2, nchans=1 << 12, fch1=1399.995)
    bad = tmp_path / "bad.fil"
    bad.write_bytes(b"junk" * 100)
    code, _, stderr = await run_events(str(files[0]), str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "bad.fil" in stderr, stderr


def _dat(mjd: float, hits: list[tuple[float, float]], obs: float = 292.0) -> DatFile:
    return DatFile(
        file_id="f", source="T", mjd=mjd, ra="0", dec="0", deltat=18.25, deltaf=-2.79, max_drift_rate=4.0,
        obs_length=obs,
        hits=[DatHit(k + 1, dr, 20.0, f, 0, f, f, 0, 1) for k, (f, dr) in enumerate(hits)],
    )


def test_filter_levels_use_turbosetis_tolerances() -> None:
    """Level 2: an OFF hit strictly within max_drift·obs_length of the ON hit rejects it; level 3: the
    next ON must hold a hit strictly within |drift|·2·obs_length of f + drift·Δt, Δt from the MJDs."""
    day = 600.0 / 86400.0
    f0, dr = 1400.0, 0.5
    w2 = 4.0 * 292.0 / 1e6  # level-2 half-width, MHz
    w3 = dr * 2 * 292.0 / 1e6  # level-3 half-width, MHz
    on1 = _dat(60000.0, [(f0, dr), (f0 + 0.01, 0.0), (f0 + 0.02, 1.0)])
    off = _dat(60000.0 + day, [(f0 + 0.02 + 0.99 * w2, 0.0)])  # just inside the second drifting hit's band
    on2 = _dat(60000.0 + 2 * day, [(f0 + dr * 1200 / 1e6 + 0.99 * w3, dr)])  # followed, barely
    off2 = _dat(60000.0 + 3 * day, [(f0 + 0.05, 0.0)])
    on3 = _dat(60000.0 + 4 * day, [(f0 + dr * 2400 / 1e6 - 0.99 * w3, dr)])
    cad = [on1, off, on2, off2, on3]
    mask = on_mask(5)
    o1 = find_events(cad, mask, filter_level=1)
    assert (0, 2) not in o1.level1  # exactly zero drift is dropped at level 1
    o2 = find_events(cad, mask, filter_level=2)
    assert (0, 3) not in o2.level2 and o2.rfi_in_range[(0, 3)] == 1
    o3 = find_events(cad, mask)
    assert o3.events == ["T_0"] and [r.file_index for r in o3.rows] == [0, 2, 4]
    # just outside the follow window: no event
    on3_far = _dat(60000.0 + 4 * day, [(f0 + dr * 2400 / 1e6 - 1.01 * w3, dr)])
    assert find_events([on1, off, on2, off2, on3_far], mask).events == []
    # an OFF hit just outside the level-2 window does not reject
    off_far = _dat(60000.0 + day, [(f0 + 0.02 + 1.01 * w2, 0.0)])
    assert (0, 3) in find_events([on1, off_far, on2, off2, on3], mask, filter_level=2).level2


def test_on_mask() -> None:
    assert on_mask(6) == [True, False] * 3
    assert on_mask(4, first="OFF") == [False, True, False, True]
    assert on_mask(3, pattern=[True, True, False]) == [True, True, False]
    with pytest.raises(ValueError):
        on_mask(2, pattern=[False, False])
