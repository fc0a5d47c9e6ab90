"""Start-up checks and CLI errors a person can act on: one line (and a hint), naming the flag and
its environment variable, before anything starts. docs/CONFIG.md is `run.py config`, kept current."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import settings as settings_mod
from harness.env import clean_env
from tests.conftest import PYTHON, ROOT


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "run.py", *args], cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )


def one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) <= 2, err  # the error, and at most a hint
    return lines[0]


def test_a_setting_that_does_not_parse_names_its_flag_and_variable(tmp_path: Path) -> None:
    r = run("--data-dir", str(tmp_path / "d"), OBS_PORT="abc")
    assert r.returncode == 2
    assert one_line(r.stderr).startswith("run.py: configuration error: --port / OBS_PORT=abc: not an integer")
    r = run("--data-dir", str(tmp_path / "d"), "--heartbeat", "often")
    assert "--heartbeat / OBS_HEARTBEAT_S=often: not a number (from the command line)" in one_line(r.stderr)
    r = run("--data-dir", str(tmp_path / "d"), OBS_READ_AUTH="maybe")
    assert "--read-auth / OBS_READ_AUTH=maybe: not true or false" in one_line(r.stderr)


def test_a_taken_port_stops_the_start_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        started = time.monotonic()
        r = run("--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and time.monotonic() - started < 20
    line = one_line(r.stderr)
    assert f"--port / OBS_PORT={port}" in line and "already in use" in line
    assert not (tmp_path / "d" / "nats").exists()  # NATS was never started


def test_a_data_dir_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run("--port", "0", "--data-dir", str(blocker / "var"))
    assert r.returncode == 2
    assert f"--data-dir / OBS_DATA_DIR={blocker / 'var'}: not a writable directory" in one_line(r.stderr)


def test_cli_errors_are_one_line_and_a_hint(tmp_path: Path) -> None:
    r = run("users", "create", "--email", "a@example.org", "--tier", "platinum", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert "--tier: invalid choice: 'platinum'" in lines[0] and "'researcher'" in lines[0]
    assert lines[1].startswith("hint: run.py users create --help")
    r = run("simulate", "--start", "yesterday", "--out", str(tmp_path / "sim"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 2, r.stderr
    assert "--start: not an ISO 8601 UTC time: 'yesterday'" in r.stderr
    r = run("actor", "nosuch", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "unknown actor 'nosuch'; choose one of" in one_line(r.stderr)


def test_docs_config_md_is_run_py_config() -> None:
    r = run("config")
    assert r.returncode == 0
    assert r.stdout.strip() == settings_mod.describe().strip()
    assert (ROOT / "docs" / "CONFIG.md").read_text().strip() == r.stdout.strip(), (
        "docs/CONFIG.md is out of date: python run.py config > docs/CONFIG.md"
    )


async def test_closing_a_connection_logs_no_disconnect_warning(nats_server: object, capfd: object) -> None:
    """Every CLI exit closes its connection: that is not a 'nats disconnected' warning."""
    from bus.connection import connect

    nc = await connect(nats_server.url, name="obs-cli")  # type: ignore[attr-defined]
    await nc.close()
    err = capfd.readouterr().err  # type: ignore[attr-defined]
    assert "nats disconnected" not in err or '"level": "warning"' not in err, err


def test_make_install_compiles_every_numba_kernel_module() -> None:
    """`make install` runs `python -m actors.precompile`, and `run.py` asks it whether to say
    "first start: compiling": a kernel module it does not know would compile at the first group,
    unannounced (the first full-size calibrator group of a fresh checkout took 86.6 s, not ~65 s)."""
    from actors import precompile

    root = Path(precompile.__file__).resolve().parents[1]
    with_kernels = {
        str(p.relative_to(root))
        for d in ("actors", "astro", "sim")
        for p in (root / d).rglob("*.py")
        if re.search(r"^@(numba\.|nb\.)?njit\(", p.read_text(), re.M)
    }
    assert with_kernels == set(precompile.KERNEL_MODULES)
    # and the install has run it: every module's kernels are in numba's cache
    assert precompile.kernels_cached()
