"""``run.py users``: operator commands against the running system found through the data dir."""

from __future__ import annotations

import asyncio
import json
import sys

from harness.env import clean_env
from settings import Settings
from tests.conftest import ROOT
from tests.seti.conftest import Stack


async def run_py(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "run.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_users_create_and_set_tier(stack: Stack, settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.nats_url_file.write_text(settings.nats_url)  # what the running all-in-one system writes
    data_dir = str(settings.data_dir)

    code, out, err = await run_py(
        "users",
        "create",
        "--email",
        "Ops@Example.org",
        "--tier",
        "researcher",
        "--role",
        "operator",
        "--data-dir",
        data_dir,
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    created = json.loads(lines[0])
    assert created["user_id"] and created["api_key"].startswith("sk_live_")
    assert created["tier"] == "researcher" and created["role"] == "operator" and created["email"] == "ops@example.org"

    async def usage() -> dict[str, object]:
        r = await stack.call("GET", "/usage", created["api_key"])
        assert r.status == 200, r.body
        return dict(r.body)

    assert (await usage())["tier"] == "researcher"

    # settings flags before the sub-command work as well
    code, out, err = await run_py(
        "--data-dir", data_dir, "users", "set-tier", "--email", "ops@example.org", "--tier", "enterprise"
    )
    assert code == 0, err
    assert json.loads(out)["tier"] == "enterprise"
    body = await usage()
    assert body["tier"] == "enterprise" and body["limit"] == 20000

    # the same email twice, an unknown tier, an unknown user: a clear error and a non-zero exit
    code, _, err = await run_py(
        "users", "create", "--email", "ops@example.org", "--tier", "free", "--data-dir", data_dir
    )
    assert code != 0 and "already exists" in err
    code, _, err = await run_py("users", "create", "--email", "x@example.org", "--tier", "gold", "--data-dir", data_dir)
    assert code != 0 and "gold" in err
    code, _, err = await run_py(
        "users", "set-tier", "--email", "nobody@example.org", "--tier", "free", "--data-dir", data_dir
    )
    assert code != 0 and "no user" in err
