"""A longer property-based run against the real running system: ``python -m bench.fuzz --minutes 30``
(``make fuzz``: 30 minutes of rounds, then every process read again after 5 idle minutes).

Until the time is up it alternates

* a schemathesis round (every check, the suite's config ``tests/conformance/schemathesis.toml``,
  a new seed each round, an operator key and a researcher key in turn), and
* a batch of randomised bad files: truncated, bit-flipped and header-lying ``.fil`` and ``.h5``
  uploaded and analysed through the SETI API (each job must end ``failed`` with a reason, or
  ``complete``; never stuck, never a 5xx), and ``.hdf5`` subband files dropped into the watcher's
  incoming directory (each must be rejected or accepted, and the watcher must stay up);

and reports the cases, the failures (the goal is 0) and the RSS of every process of the system
(run.py, its process-pool workers, nats-server) before and after (the goal: no growth over 10 %).
Results go to ``bench/out/fuzz.json`` and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests

from harness.env import clean_env

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CONFIG = ROOT / "tests" / "conformance" / "schemathesis.toml"
EXCLUDED = ["--exclude-method", "DELETE", "--exclude-path", "/api/streaming/config"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_by_process(root_pid: int) -> dict[str, int]:
    """RSS (bytes) of the system's processes: run.py and every descendant, keyed by name and pid."""
    out: dict[str, int] = {}
    try:
        root = psutil.Process(root_pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                out[f"{_label(p)}:{p.pid}"] = int(p.memory_info().rss)
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return out


def _label(p: psutil.Process) -> str:
    """A process's part in the system: run.py, a process-pool worker, the forkserver, nats-server."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        cmd = ""
    if "forkserver" in cmd:
        # a pool worker is forked by the fork server and keeps its command line
        try:
            parent = " ".join(parent_process.cmdline()) if (parent_process := p.parent()) else ""
        except psutil.Error:
            parent = ""
        return "pool-worker" if "forkserver" in parent else "forkserver"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return "pool-worker"
    return p.name()


#: before the baseline and the final reading: seconds of quiet, then samples this far apart.
#: More than the nats-server's 10 s expiry of a loaded file block's cache: a KV bucket rewritten
#: under load (the quota ledger) holds its last block in a buffer until then
SETTLE_S = 15.0
SAMPLES, SAMPLE_EVERY_S = 5, 2.0


def settled_rss(root_pid: int, settle_s: float = SETTLE_S) -> dict[str, int]:
    """Each process's median RSS over ``SAMPLES`` readings, after ``settle_s`` with no requests.

    One instant's reading of a Go process (the nats-server) swings by several MB with its garbage
    collector's cycle (the heap grows to twice the live data before a collection, and freed pages
    go back to the OS over minutes); a Python process's by what it is doing at that instant. The
    baseline and the final figure are taken the same way, when the system is idle."""
    time.sleep(settle_s)
    readings = []
    for k in range(SAMPLES):
        if k:
            time.sleep(SAMPLE_EVERY_S)
        readings.append(rss_by_process(root_pid))
    keys = set.intersection(*(set(r) for r in readings))
    return {key: int(np.median([r[key] for r in readings])) for key in keys}


def bus_state(data_dir: Path) -> dict[str, int]:
    """What the nats-server holds: the account's streams, consumers and stored bytes, and the
    event stream's messages - so that a growth of its RSS can be set against the data it keeps."""
    import asyncio

    import nats

    async def read() -> dict[str, int]:
        nc = await nats.connect((data_dir / "nats.url").read_text().strip(), connect_timeout=5)
        try:
            js = nc.jetstream()
            info = await js.account_info()
            events = await js.stream_info("EVENTS")
            return {
                "streams": int(info.streams),
                "consumers": int(info.consumers),
                "stored_bytes": int(info.storage),
                "events": int(events.state.messages),
                "event_consumers": int(events.state.consumer_count),
            }
        finally:
            await nc.close()

    try:
        return asyncio.run(read())
    except Exception as exc:  # a reading, not a verdict: the RSS figures stand without it
        return {"error": len(repr(exc))}


# -- bad files ----------------------------------------------------------------------------------
def _sigproc(header: dict[str, Any]) -> bytes:
    def s(text: str) -> bytes:
        return struct.pack("<i", len(text)) + text.encode()

    out = s("HEADER_START")
    for k, v in header.items():
        out += s(k) + (
            s(v) if isinstance(v, str) else struct.pack("<d", v) if isinstance(v, float) else struct.pack("<i", v)
        )
    return out + s("HEADER_END")


def good_fil(rng: random.Random, nchans: int = 1024, ntime: int = 16) -> tuple[bytes, dict[str, Any]]:
    header = {"telescope_id": 6, "machine_id": 10, "data_type": 1, "source_name": "FUZZ", "fch1": 1400.0,
              "foff": -0.0029296875, "nchans": nchans, "nbits": 32, "nifs": 1, "tstart": 60000.0, "tsamp": 18.25,
              "src_raj": 1.0, "src_dej": 1.0}  # fmt: skip
    data = np.random.default_rng(rng.randrange(1 << 30)).normal(100, 1, (ntime, nchans)).astype("<f4")
    return _sigproc(header) + data.tobytes(), header


def bad_fil(rng: random.Random) -> bytes:
    raw, header = good_fil(rng)
    kind = rng.choice(["truncate", "bitflip", "lie_nchans", "lie_nbits", "header_only", "garbage"])
    if kind == "truncate":
        return raw[: rng.randrange(1, len(raw))]
    if kind == "bitflip":
        b = bytearray(raw)
        for _ in range(rng.randrange(1, 64)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind in ("lie_nchans", "lie_nbits"):
        lied = dict(header)
        if kind == "lie_nchans":
            lied["nchans"] = rng.choice([0, -1, 3, 1 << 24, 2**31 - 1])
        else:
            lied["nbits"] = rng.choice([0, 3, 7, 64, -8])
        return _sigproc(lied) + raw[len(_sigproc(header)) :]
    if kind == "header_only":
        return _sigproc(header)
    return rng.randbytes(rng.randrange(1, 4096))


def bad_h5(rng: random.Random, tmp: Path) -> bytes:
    import h5py

    path = tmp / f"f{rng.randrange(1 << 30)}.h5"
    kind = rng.choice(["lying_shape", "no_data", "wrong_dims", "truncate", "bitflip"])
    with h5py.File(path, "w") as f:
        if kind == "no_data":
            f.create_dataset("other", data=np.zeros(4))
        elif kind == "wrong_dims":
            f.create_dataset("data", data=np.zeros((4, 4), dtype="<f4"))
        else:
            nchans = 1 << rng.randrange(10, 21)
            ntime = rng.choice([16, 1 << 12, 1 << 20])
            ds = f.create_dataset("data", shape=(ntime, 1, nchans), dtype="<f4", chunks=(1, 1, nchans),
                                  compression="gzip")  # fmt: skip
            for k, v in {"fch1": 1400.0, "foff": -0.0029, "nchans": nchans, "tsamp": 18.25, "tstart": 60000.0,
                         "source_name": "FUZZ", "nifs": 1, "nbits": 32, "telescope_id": 6}.items():  # fmt: skip
                ds.attrs[k] = v
    raw = path.read_bytes()
    if kind == "truncate":
        return raw[: rng.randrange(1, len(raw))]
    if kind == "bitflip":
        b = bytearray(raw)
        for _ in range(rng.randrange(1, 32)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    return raw


def bad_hdf5(rng: random.Random, tmp: Path, good: bytes | None) -> bytes:
    kind = rng.choice(["truncate", "bitflip", "garbage", "hdf5_not_uvh5"])
    if kind == "garbage" or good is None:
        return rng.randbytes(rng.randrange(1, 8192))
    if kind == "truncate":
        return good[: rng.randrange(1, len(good))]
    if kind == "bitflip":
        b = bytearray(good)
        for _ in range(rng.randrange(1, 32)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    import h5py

    p = tmp / "x.hdf5"
    with h5py.File(p, "w") as f:
        f.create_group("Header")
    return p.read_bytes()


# -- schemathesis' verdict ----------------------------------------------------------------------
#: schemathesis' last line: "===== 2 failures, 1 error, 3 warnings in 12.34s =====" (the counts it
#: found; a zero count is left out), or "No issues found in ...", "Warnings fail the run in ...".
_BANNER = re.compile(r"^=+ (?P<body>.+?) in \d+(?:\.\d+)?s =+$", re.MULTILINE)
_COUNT = re.compile(r"(\d+) (failure|error|warning)s?\b")


@dataclass(frozen=True)
class Verdict:
    failures: int
    warnings: int
    text: str


def schemathesis_verdict(stdout: str, returncode: int) -> Verdict:
    """Failures as schemathesis itself counts them (its final banner), not its exit code.

    The exit code is 1 for failures, but also for errors and for warnings a config marks
    ``fail-on``; a warning (an operation that mostly rejected generated data, say) says the
    fuzzing was weaker, not that the server broke a check, so it is counted apart. Errors (the
    server unreachable, a response that is not HTTP) are failures. With no banner at all
    (schemathesis crashed) a non-zero exit is a failure, with the tail of its output.
    """
    banners = list(_BANNER.finditer(stdout))
    if not banners:
        failed = 1 if returncode not in (0,) else 0
        return Verdict(failed, 0, stdout[-3000:] if failed else "")
    body = banners[-1].group("body")
    counts = {"failure": 0, "error": 0, "warning": 0}
    for number, kind in _COUNT.findall(body):
        counts[kind] += int(number)
    failures = counts["failure"] + counts["error"]
    text = ""
    if failures:  # schemathesis' own report: the FAILURES/ERRORS sections up to the summary
        start = min((i for i in (stdout.find("= FAILURES ="), stdout.find("= ERRORS =")) if i >= 0), default=0)
        end = stdout.find("= SUMMARY =")
        text = stdout[max(0, stdout.rfind("\n", 0, start)) : end if end > start else None][-6000:]
    return Verdict(failures, counts["warning"], text)


# -- the run ------------------------------------------------------------------------------------
class Fuzz:
    def __init__(self, minutes: float, seed: int, examples: int) -> None:
        #: minutes of rounds, counted from the baseline: the warm-up round and the idle readings
        #: at the start come on top (an earlier version counted them in, so a 30-minute run
        #: with 5 idle minutes fuzzed for ~25)
        self.minutes = minutes
        self.rng = random.Random(seed)
        self.seed = seed
        self.examples = examples
        self.tmp = Path(tempfile.mkdtemp(prefix="obs-fuzz-"))
        self.data = self.tmp / "var"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cases = {"schemathesis": 0, "bad_files_api": 0, "bad_files_watcher": 0}
        self.failures: list[str] = []
        self.warnings = 0
        self.http = requests.Session()

    def start(self) -> None:
        self.log = open(self.tmp / "system.log", "wb")
        self.proc = subprocess.Popen(
            [PYTHON, "run.py", "--data-dir", str(self.data), "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT, env=clean_env(), stdout=subprocess.DEVNULL, stderr=self.log,
        )  # fmt: skip
        while not (self.data / "edge.url").exists():
            if self.proc.poll() is not None:
                raise SystemExit("the system did not start: " + (self.tmp / "system.log").read_text()[-2000:])
            time.sleep(0.2)
        self.keys = {"operator": self.user("op", "enterprise", "operator"), "user": self.user("u", "enterprise")}

    def user(self, name: str, tier: str, role: str = "user") -> str:
        out = subprocess.run(
            [PYTHON, "run.py", "users", "create", "--data-dir", str(self.data), "--email",
             f"{name}-{time.time_ns()}@example.org", "--tier", tier, "--role", role],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, check=True,
        )  # fmt: skip
        return str(json.loads(out.stdout.strip().splitlines()[-1])["api_key"])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def schemathesis_round(self, n: int) -> None:
        who = "operator" if n % 2 == 0 else "user"
        exe = shutil.which("schemathesis", path=os.path.dirname(PYTHON)) or "schemathesis"
        run = subprocess.run(
            [exe, "--config-file", str(CONFIG), "run", f"{self.url}/api/openapi.json", "--checks", "all",
             "--seed", str(self.seed + n), "--max-examples", str(self.examples), "--workers", "1",
             "-H", f"x-api-key: {self.keys[who]}", "--no-color", *EXCLUDED],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        m = re.search(r"(\d+) generated", run.stdout)
        self.cases["schemathesis"] += int(m.group(1)) if m else 0
        verdict = schemathesis_verdict(run.stdout, run.returncode)
        self.warnings += verdict.warnings
        if verdict.failures:
            self.failures.append(f"schemathesis seed {self.seed + n} ({who}): {verdict.text}")

    def api_file(self, name: str, payload: bytes) -> None:
        h = {"x-api-key": self.keys["user"]}
        r = self.http.post(f"{self.url}/upload-url", json={"filename": name, "file_size": len(payload)}, headers=h,
                           timeout=30)  # fmt: skip
        if r.status_code >= 500:
            self.failures.append(f"upload-url {r.status_code} for {name}")
            return
        if r.status_code != 200:
            return
        body = r.json()
        put = self.http.put(body["upload_url"], data=payload, timeout=60)
        if put.status_code != 200:
            self.failures.append(f"PUT {put.status_code} for {name}")
            return
        a = self.http.post(f"{self.url}/analyze", json={"file_key": body["file_key"]}, headers=h, timeout=30)
        self.cases["bad_files_api"] += 1
        if a.status_code >= 500:
            self.failures.append(f"analyze {a.status_code} for {name}: {a.text[:300]}")
            return
        if a.status_code != 202:
            return
        job = a.json()["job_id"]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            j = self.http.get(f"{self.url}/jobs/{job}", headers=h, timeout=30)
            if j.status_code != 200:
                self.failures.append(f"GET job {j.status_code}")
                return
            st = j.json()
            if st["status"] == "failed":
                if not st.get("error"):
                    self.failures.append(f"job {job} failed without a reason")
                return
            if st["status"] == "complete":
                return
            time.sleep(0.2)
        self.failures.append(f"job {job} ({name}) still {st['status']} after 300 s")

    def watcher_file(self, payload: bytes, k: int) -> None:
        incoming = self.data / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + k * 300))
        path = incoming / f"{stamp}_sb{k % 16:02d}.hdf5"
        path.write_bytes(payload)
        self.cases["bad_files_watcher"] += 1

    def bad_files_round(self, k: int) -> None:
        for i in range(6):
            if self.rng.random() < 0.5:
                self.api_file(f"fuzz{k}_{i}.fil", bad_fil(self.rng))
            else:
                self.api_file(f"fuzz{k}_{i}.h5", bad_h5(self.rng, self.tmp))
        self.watcher_file(bad_hdf5(self.rng, self.tmp, None), k)

    def run(self, idle_minutes: float = 0.0) -> dict[str, Any]:
        """The run; with `idle_minutes`, the baseline and the final figures are read again after
        that long idle. A Go process (the nats-server) frees a buffer it pooled only after two
        garbage collections, which an idle server makes every 2 minutes (its forced GC), and
        returns the pages to the OS after that (the scavenger): 15 s of quiet still counts
        memory it no longer uses."""
        self.start()
        time.sleep(5)  # let the warm-ups settle before the first RSS reading
        at_start = rss_by_process(self.proc.pid)
        started = time.monotonic()
        # The baseline is taken after a first round: its imports, caches, pool workers and the
        # JetStream store's first blocks are warm-up, not growth. It and the final figure are
        # medians over 8 s of an idle system (settled_rss).
        # A good file analysed to the end belongs to the warm-up too: the pool worker's first
        # search and exports import matplotlib and astropy's FITS writer (~50 MB once). Without
        # it, a 30-minute run counted that import, made at its first good file, as growth (+28 %).
        self.schemathesis_round(0)
        self.bad_files_round(0)
        self.api_file("warm-up.fil", good_fil(self.rng)[0])
        before = settled_rss(self.proc.pid)
        before_idle = settled_rss(self.proc.pid, idle_minutes * 60) if idle_minutes > 0 else {}
        by_round = [{k: round(v / 2**20, 1) for k, v in before.items()}]
        bus_by_round = [bus_state(self.data)]
        n = 1
        fuzzing = time.monotonic()
        deadline = fuzzing + self.minutes * 60
        while time.monotonic() < deadline:
            self.schemathesis_round(n)
            if time.monotonic() < deadline:
                self.bad_files_round(n)
            by_round.append({k: round(v / 2**20, 1) for k, v in rss_by_process(self.proc.pid).items()})
            bus_by_round.append(bus_state(self.data))
            n += 1
        fuzzed = time.monotonic() - fuzzing
        health = self.http.get(f"{self.url}/api/health", timeout=10).status_code
        if health != 200:
            self.failures.append(f"/api/health answered {health} at the end")
        actors = self.http.get(f"{self.url}/api/actors", timeout=10)
        after = settled_rss(self.proc.pid)
        after_idle = settled_rss(self.proc.pid, idle_minutes * 60) if idle_minutes > 0 else {}
        self.stop()
        growth = {k: round(after[k] / v - 1.0, 3) for k, v in before.items() if k in after and v}
        growth_idle = {k: round(after_idle[k] / v - 1.0, 3) for k, v in before_idle.items() if k in after_idle and v}
        total_before, total_after = sum(before.values()), sum(after[k] for k in before if k in after)
        return {
            "minutes": round((time.monotonic() - started) / 60, 1),
            #: of which the rounds after the baseline (the --minutes asked for, plus the last round)
            "fuzz_minutes": round(fuzzed / 60, 1),
            "rounds": n,
            "cases": self.cases,
            "failures": len(self.failures),
            "failure_texts": self.failures[:20],
            "schemathesis_warnings": self.warnings,
            "rss_at_start_mb": {k: round(v / 2**20, 1) for k, v in at_start.items()},
            "rss_before_mb": {k: round(v / 2**20, 1) for k, v in before.items()},
            "rss_after_mb": {k: round(v / 2**20, 1) for k, v in after.items()},
            "rss_growth": growth,
            #: the same after `idle_minutes` idle at both ends (empty without): what is kept
            "idle_minutes": idle_minutes,
            "rss_before_idle_mb": {k: round(v / 2**20, 1) for k, v in before_idle.items()},
            "rss_after_idle_mb": {k: round(v / 2**20, 1) for k, v in after_idle.items()},
            "rss_growth_idle": growth_idle,
            #: after the warm-up and after every round: a leak climbs round after round, a
            #: one-off allocation steps once and stays
            "rss_by_round_mb": by_round,
            #: the nats-server's streams, consumers, stored bytes and events after each round
            "bus_by_round": bus_by_round,
            "rss_total_growth": round(total_after / total_before - 1.0, 3) if total_before else None,
            "actors_status": actors.status_code,
            "load_1min": os.getloadavg()[0],
            "seed": self.seed,
        }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--examples", type=int, default=10, help="schemathesis examples per operation per round")
    ap.add_argument(
        "--idle-minutes",
        type=float,
        default=0.0,
        help="also read the RSS after this long idle, at the start and the end (what a Go process keeps)",
    )
    args = ap.parse_args()
    report = Fuzz(args.minutes, args.seed, args.examples).run(args.idle_minutes)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    worst = max(report["rss_growth"].values(), default=0.0)
    print(f"cases {sum(report['cases'].values())}, failures {report['failures']}, worst RSS growth {worst:+.1%}")
    if report["rss_growth_idle"]:
        worst = max(report["rss_growth_idle"].values())
        print(f"worst RSS growth after {args.idle_minutes:g} min idle at both ends {worst:+.1%} (the verdict)")
    return 0 if report["failures"] == 0 and worst <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
