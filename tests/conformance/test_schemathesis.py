"""The OpenAPI document tells the truth: schemathesis, every check, against the real running system.

``run.py`` starts everything (an embedded nats-server, every actor, the edge) on a free port and a
temporary data dir; ``run.py users create`` makes an operator and a researcher; schemathesis reads
``/api/openapi.json`` (both seeds' endpoints) and runs its examples, coverage, fuzzing and stateful
phases with a fixed seed and a bounded number of examples, once with each key. Endpoints that
would revoke the key in use (``DELETE /api-keys/{key_id}``) and that would make the watcher create
directories wherever a fuzzer says (``POST /api/streaming/config``) are left out; everything else,
and everything left out of single checks, is in ``schemathesis.toml`` beside this file.

Zero failures of any check. A failure prints schemathesis's own report (with a ``curl`` to
reproduce). A longer run with random bad files is ``bench/fuzz.py`` (``make fuzz``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.env import clean_env
from tests.conftest import PYTHON, ROOT

HERE = Path(__file__).resolve().parent
SEED = 20261205
EXAMPLES = 4
EXCLUDED = ["--exclude-method", "DELETE", "--exclude-path", "/api/streaming/config"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class System:
    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "run.py", "--data-dir", str(self.data), "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
            stderr=open(self.data.parent / "system.log", "wb"),
        )
        deadline = time.monotonic() + 120
        while not (self.data / "edge.url").exists():
            assert self.proc.poll() is None, (self.data.parent / "system.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the system did not start"
            time.sleep(0.2)

    def user(self, email: str, tier: str, role: str = "user") -> str:
        out = subprocess.run(
            [PYTHON, "run.py", "users", "create", "--data-dir", str(self.data), "--email", email, "--tier", tier,
             "--role", role],
            cwd=ROOT, env=clean_env(), capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        return str(json.loads(out.stdout.decode().strip().splitlines()[-1])["api_key"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("conformance")
    s = System(root / "var", free_port())
    s.start()
    try:
        yield s
    finally:
        s.stop()


def schemathesis(system: System, key: str, report: Path, examples: int = EXAMPLES, seed: int = SEED,
                 extra: list[str] | None = None) -> subprocess.Popen[str]:  # fmt: skip
    exe = shutil.which("schemathesis", path=os.path.dirname(PYTHON)) or "schemathesis"
    cmd = [
        exe, "--config-file", str(HERE / "schemathesis.toml"), "run", f"{system.url}/api/openapi.json",
        "--checks", "all", "--seed", str(seed), "--max-examples", str(examples), "--workers", "1",
        "-H", f"x-api-key: {key}", "--no-color", "--report", "ndjson", "--report-ndjson-path", str(report),
        *EXCLUDED, *(extra or []),
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


@pytest.mark.timeout(600)
def test_every_check_passes_against_the_running_system(system: System, tmp_path: Path) -> None:
    """An operator key and a researcher's key, side by side (each run is one schemathesis process)."""
    keys = {
        "operator": system.user(f"op-{time.time_ns()}@example.org", "enterprise", "operator"),
        "researcher": system.user(f"re-{time.time_ns()}@example.org", "researcher"),
    }
    runs = {who: schemathesis(system, key, tmp_path / f"{who}.ndjson") for who, key in keys.items()}
    for who, run in runs.items():
        out, _ = run.communicate(timeout=540)
        last = out.strip().splitlines()[-1] if out.strip() else ""
        assert run.returncode == 0, f"schemathesis found failures (key: {who}):\n{out[-8000:]}"
        assert " in " in last and "failure" not in last and "error" not in last, out[-3000:]
