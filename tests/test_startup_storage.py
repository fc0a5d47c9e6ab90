"""A role that cannot reach object storage refuses to start (issue 13): ``run.py`` as a subprocess,
one line naming the setting, a non-zero exit, and nothing consumed; a role that can logs the
storage id every role of the cluster shares."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from bus.server import EmbeddedServer, free_port
from harness.env import clean_env
from tests.conftest import PYTHON, ROOT


def run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "run.py", *args], cwd=ROOT, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )


def error_lines(err: str) -> list[str]:
    """stderr without the JSON log records: what a person reads."""
    return [line for line in err.strip().splitlines() if line.strip() and not line.lstrip().startswith("{")]


def test_a_searcher_that_cannot_reach_s3_refuses_to_start(tmp_path: Path, nats_server: EmbeddedServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = run(
        "actor", "searcher", "--nats-url", nats_server.url, "--data-dir", str(tmp_path / "d"),
        "--storage", "s3", "--s3-bucket", "uploads", "--s3-endpoint", dead,
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        AWS_MAX_ATTEMPTS="1",
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("run.py: cannot start: --storage s3 (s3 bucket 'uploads' at " + dead), lines[0]
    assert "--s3-bucket / --s3-endpoint" in lines[0] and "unreachable or not writable" in lines[0]
    assert "actor started" not in r.stderr  # refused before consuming


def test_an_unknown_backend_is_one_line(tmp_path: Path, nats_server: EmbeddedServer) -> None:
    r = run("edge", "--nats-url", nats_server.url, "--data-dir", str(tmp_path / "d"), "--port", "0", OBS_STORAGE="ftp")
    assert r.returncode == 2
    assert error_lines(r.stderr) == ["run.py: cannot start: --storage / OBS_STORAGE=ftp: choose one of local, nats, s3"]


def test_roles_share_one_storage_id_and_a_searcher_alone_on_a_fresh_local_dir_is_warned(
    tmp_path: Path, nats_server: EmbeddedServer
) -> None:
    """Started with ``--storage nats`` on different data dirs, every role finds the same storage id
    in the bucket. The searcher started alone on a local data dir no edge has used: a one-line
    warning naming the setting, and it writes no id there (so its jobs are retried, not failed)."""
    common = ["--nats-url", nats_server.url, "--port", "0"]
    seen: list[str] = []
    for role, data_dir, storage in (("quota_keeper", "a", "nats"), ("searcher", "b", "nats")):
        proc = subprocess.Popen(
            [PYTHON, "run.py", "actor", role, *common, "--data-dir", str(tmp_path / data_dir), "--storage", storage],
            cwd=ROOT, env=clean_env(), stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # until the role has checked its storage (no fixed wait)
                if '"storage checked"' in line:
                    seen.append(json.loads(line)["storage_id"])
                    break
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert len(seen) == 2 and seen[0] == seen[1], seen

    proc = subprocess.Popen(
        [PYTHON, "run.py", "actor", "searcher", *common, "--data-dir", str(tmp_path / "c")],
        cwd=ROOT, env=clean_env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        warning = next(line for line in proc.stderr if line.startswith("run.py: warning:"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "holds no storage id" in warning and "--data-dir / OBS_DATA_DIR" in warning
    assert "--storage nats or --storage s3" in warning
    assert not (tmp_path / "c" / "objects" / "sys" / "storage-id").exists()
