"""The actor runtime's process pool: its workers die with the actor that owns them."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from harness.env import clean_env
from tests.conftest import PYTHON, ROOT

OWNER = r"""
import asyncio, os, sys
from actors import runtime

async def main():
    loop = asyncio.get_running_loop()
    pids = await asyncio.gather(*(loop.run_in_executor(runtime.process_pool(), os.getpid) for _ in range(8)))
    print(" ".join(str(p) for p in sorted(set(pids))), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def test_pool_workers_exit_when_their_actor_is_killed() -> None:
    owner = subprocess.Popen([PYTHON, "-c", OWNER], cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        workers = [int(p) for p in owner.stdout.readline().split()]
        assert workers and owner.pid not in workers
        assert all(psutil.pid_exists(p) for p in workers)
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers):
            assert time.monotonic() < deadline, "pool workers outlived their actor"
            time.sleep(0.2)
    finally:
        if owner.poll() is None:
            owner.kill()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


SPIN = r"""
import asyncio, os
from actors import runtime

async def main():
    loop = asyncio.get_running_loop()
    print(await loop.run_in_executor(runtime.process_pool(), os.getenv, "GOMP_SPINCOUNT"), flush=True)
    runtime.shutdown_pool()

asyncio.run(main())
"""


def test_pool_workers_bound_how_long_openmp_threads_spin() -> None:
    """Two jobs at once put two kernels' threads on the same cores; OpenMP threads spinning for
    libgomp's default made CLEAN's minor cycle ~10x slower beside a second one
    (actors.runtime.GOMP_SPINCOUNT)."""
    env = clean_env()
    env.pop("GOMP_SPINCOUNT", None)
    out = subprocess.run([PYTHON, "-c", SPIN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3000"
    # an operator's own setting wins
    env["GOMP_SPINCOUNT"] = "300000"
    out = subprocess.run([PYTHON, "-c", SPIN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "300000"
