"""The files in deploy/ run as written, for the parts that can run here.

* ``deploy/nats-node.sh`` starts a real three-node cluster on loopback from environment alone,
  with TLS on clients and routes and an auth file, and the platform's ``Bus`` makes an R3 stream
  on it through ``tls://user:password@…`` URLs and ``--nats-ca-file``;
* it refuses a ``max_file_store`` larger than the disk;
* the systemd units pass ``systemd-analyze verify`` (paths pointed at this checkout);
* the compose file parses and starts only roles that exist, each NATS node with every route.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest
import yaml

from actors.registry import ROLES
from bus import StreamPolicy, connect_when_ready
from bus.connection import server_address, tls_context
from bus.server import free_port
from bus.stream import STREAM
from tests.conftest import ROOT

SCRIPT = ROOT / "deploy" / "nats-node.sh"


def _nats_bin() -> str:
    import sys

    return str(Path(sys.executable).parent / "nats-server")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_tls(dir_: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it (PEM files)."""
    dir_.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=obs-test-ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=dir_)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=obs-nats", "-keyout", "key.pem",
             "-out", "req.csr", cwd=dir_)  # fmt: skip
    (dir_ / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "cert.pem", cwd=dir_)  # fmt: skip
    return dir_ / "cert.pem", dir_ / "key.pem", dir_ / "ca.pem"


class ScriptCluster:
    def __init__(self, root: Path, tls: tuple[Path, Path, Path], auth_file: Path) -> None:
        self.client_ports = [free_port() for _ in range(3)]
        cluster_ports = [free_port() for _ in range(3)]
        routes = ",".join(f"127.0.0.1:{p}" for p in cluster_ports)
        cert, key, ca = tls
        self.envs = [
            {
                **os.environ,
                "NATS_SERVER_NAME": f"node{i + 1}",
                "NATS_ROUTES": routes,
                "NATS_HOST": "127.0.0.1",
                "NATS_PORT": str(self.client_ports[i]),
                "NATS_HTTP_PORT": "0",
                "NATS_CLUSTER_PORT": str(cluster_ports[i]),
                "NATS_STORE_DIR": str(root / f"node{i + 1}"),
                "NATS_TLS_CERT": str(cert),
                "NATS_TLS_KEY": str(key),
                "NATS_TLS_CA": str(ca),
                "NATS_AUTH_FILE": str(auth_file),
                "NATS_BIN": _nats_bin(),
            }
            for i in range(3)
        ]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.root = root

    def start(self) -> None:
        for i, env in enumerate(self.envs):
            log = (self.root / f"node{i + 1}.log").open("wb")
            self.procs.append(subprocess.Popen(["bash", str(SCRIPT)], env=env, stdout=log, stderr=log))

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def url(self, user: str, password: str) -> str:
        return ",".join(f"tls://{user}:{password}@127.0.0.1:{p}" for p in self.client_ports)


@pytest.fixture
def script_cluster(tmp_path: Path) -> Iterator[ScriptCluster]:
    tls = make_tls(tmp_path / "tls")
    auth = tmp_path / "auth.conf"
    auth.write_text('authorization {\n  users = [\n    {user: "obs", password: "s3cret-pass"}\n  ]\n}\n')
    c = ScriptCluster(tmp_path, tls, auth)
    c.start()
    yield c
    c.stop()


async def test_nats_node_script_runs_a_tls_cluster_with_auth_that_the_platform_uses(
    script_cluster: ScriptCluster, tmp_path: Path
) -> None:
    ca = str(tmp_path / "tls" / "ca.pem")
    for env in script_cluster.envs:  # every written configuration is one nats-server accepts
        conf = Path(env["NATS_STORE_DIR"]) / "node.conf"
        deadline = time.monotonic() + 10
        while not conf.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        check = subprocess.run([_nats_bin(), "-c", str(conf), "-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        text = conf.read_text()
        assert "max_file_store" in text and "verify: true" in text and "include" in text

    bus = await connect_when_ready(script_cluster.url("obs", "s3cret-pass"), StreamPolicy(replicas=3), 40, tls_ca=ca)
    try:
        info = await bus.js.stream_info(STREAM)
        assert info.config.num_replicas == 3
        assert bus.nc.connected_url is not None and bus.nc.connected_url.scheme == "tls"
        # the address shown in logs and /ready never carries the password of the URL
        assert server_address(bus.nc).startswith("127.0.0.1:") and "s3cret" not in server_address(bus.nc)
    finally:
        await bus.close()

    # a wrong password is refused
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            servers=script_cluster.url("obs", "wrong").split(","),
            tls=tls_context(ca),
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )


def test_nats_node_script_refuses_a_file_store_larger_than_the_disk(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NATS_ROUTES": "127.0.0.1:1",
        "NATS_STORE_DIR": str(tmp_path / "n"),
        "NATS_MAX_FILE_STORE": str(10**18),
        "NATS_BIN": _nats_bin(),
    }
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "bytes free" in out.stderr
    # without the setting, the store is sized to 80 % of what is free
    env.pop("NATS_MAX_FILE_STORE")
    env["NATS_DRY_RUN"] = "1"
    out = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    size = int(next(line.split(":")[1] for line in out.stdout.splitlines() if "max_file_store" in line))
    assert 0 < size <= shutil.disk_usage(tmp_path).free


def test_systemd_units_verify(tmp_path: Path) -> None:
    units = ROOT / "deploy" / "systemd"
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("obs.env", "nats.env"):
        (etc / name).write_text((units / f"{name}.example").read_text())
    for unit in units.iterdir():
        if unit.suffix in (".service", ".target"):
            text = unit.read_text().replace("/opt/obs", str(ROOT)).replace("/etc/obs", str(etc))
            (tmp_path / unit.name).write_text(text)
    names = ["obs-nats.service", "obs-edge.service", "obs.target"] + [f"obs-actor@{r}.service" for r in ROLES]
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr
    for name in ("obs-edge.service", "obs-actor@.service"):
        text = (units / name).read_text()
        assert "After=network-online.target obs-nats.service" in text and "Restart=on-failure" in text


def test_compose_file_runs_every_role_on_three_nodes() -> None:
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    nats = {name: s for name, s in services.items() if name.startswith("nats-")}
    assert len(nats) == 3
    for name, s in nats.items():
        env = s["environment"]
        assert env["NATS_SERVER_NAME"] == name
        assert sorted(env["NATS_ROUTES"].split(",")) == sorted(f"{n}:6222" for n in nats)
    roles = {}
    for name, s in services.items():
        cmd = s.get("command", [])
        if cmd[:3] == ["python", "run.py", "actor"]:
            roles[cmd[3]] = s
        elif name not in nats:
            assert cmd[:3] == ["python", "run.py", "edge"], name
    assert set(roles) == set(ROLES)
    for s in roles.values():
        assert s["environment"]["OBS_STREAM_REPLICAS"] == "3"
        assert set(s["depends_on"]) == set(nats)
