"""The one entry point.

    python run.py [--host 127.0.0.1] [--port 8000] [--data-dir ./var] [--nats-url URL]
        everything: an embedded nats-server (unless --nats-url), every actor, and the edge
    python run.py actor NAME     one actor alone          python run.py edge     the edge alone
    python run.py replay --subject 'dsa.>' [--since ISO | --seq N] [--until ISO] [--follow]
    python run.py users create --email E --tier T [--role operator] | users set-tier --email E --tier T
    python run.py subscribers create NAME   read-only NATS credentials for an event subscriber
    python run.py simulate ...   python run.py search FILE ...   python run.py events ON1 OFF1 ...   python run.py config

Processes started separately against one NATS (same --data-dir, or --nats-url) form one system.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

import logs
import settings as settings_mod
from settings import Settings

log = logs.get("run")
SHUTDOWN_DEADLINE_S = 9.0


def _settings_parent() -> settings_mod.OneLineParser:
    # No prefix matching: a tool's --out must never be taken as an abbreviation of --output-dir.
    parent = settings_mod.OneLineParser(
        prog="run.py", add_help=False, argument_default=argparse.SUPPRESS, allow_abbrev=False
    )
    settings_mod.add_arguments(parent)
    for action in parent._actions:
        action.default = argparse.SUPPRESS
    return parent


def _parse_time(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    common = _settings_parent()
    parser = settings_mod.OneLineParser(
        prog="run.py",
        description=__doc__,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", parser_class=settings_mod.OneLineParser)
    p = sub.add_parser("actor", parents=[common], help="run one actor alone")
    p.add_argument("name")
    sub.add_parser("edge", parents=[common], help="run the edge alone")
    p = sub.add_parser("replay", parents=[common], help="print stored events as JSON lines")
    p.add_argument("--subject", default=">", help="subject filter, e.g. 'dsa.>' (default: everything)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--since", type=_parse_time, help="start at this UTC time (ISO 8601)")
    group.add_argument("--seq", type=int, help="start at this stream sequence")
    p.add_argument("--until", type=_parse_time, help="stop at the first event stored after this time")
    p.add_argument("--follow", action="store_true", help="keep printing new events")
    sub.add_parser("config", parents=[common], help="print every setting as a markdown table")
    p = sub.add_parser("subscribers", parents=[common], help="read-only NATS access for event subscribers")
    p.add_argument("action", choices=["create"])
    p.add_argument("name", help="the subscriber's NATS user (a-z, 0-9, _)")
    for name, helptext in (
        ("users", "manage users and API keys"),
        ("simulate", "write simulated DSA-110 UVH5 files"),
        ("search", "run the de-Doppler search on a local file (turboSETI's -M/-s/-o/-n work too)"),
        ("events", "ON/OFF cadence events from local files, as turboSETI's find_event_pipeline"),
    ):
        sp = sub.add_parser(name, parents=[common], help=helptext, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


# -- start-up checks ---------------------------------------------------------------------------


def preflight(settings: Settings, *, with_edge: bool) -> str | None:
    """What would make the start fail, checked before anything starts (one line, naming the flag
    and its variable), or None. A taken port used to be found after NATS and eight actors were up."""
    import errno
    import os
    import socket
    import tempfile

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        return (
            f"--data-dir / OBS_DATA_DIR={settings.data_dir}: not a writable directory "
            f"({exc.strerror or exc}); choose another"
        )
    if with_edge and settings.port != 0:
        with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as s:
            if os.name == "posix":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                s.bind((settings.host, settings.port))
            except OSError as exc:
                what = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
                return (
                    f"--port / OBS_PORT={settings.port}: {settings.host}:{settings.port} is {what}; "
                    "pick another port (0 picks a free one)"
                )
    return None


def numba_cache_is_cold() -> bool:
    """True when some actor's numba kernels are not compiled and cached yet (``make install`` runs
    ``python -m actors.precompile``, which compiles them all; a bare ``pip install`` does not)."""
    from actors.precompile import kernels_cached

    return not kernels_cached()


# -- running the system ------------------------------------------------------------------------


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")


async def run_system(
    settings: Settings,
    roles: list[str],
    with_edge: bool,
    *,
    embedded: bool = False,
    until: Callable[[], Any] | None = None,
) -> int:
    """Run actors and/or the edge until a signal (or ``until()``) and then shut down within 10 s.

    ``embedded``: start a nats-server for this system unless ``--nats-url`` names one. Processes
    started without it (``actor NAME``, ``edge``) join the server that the all-in-one process, or
    ``--nats-url``, provides.
    """
    from actors import registry
    from actors.runtime import Actor, bounded_openmp_spin, pin_mmap_threshold, shutdown_pool
    from bus import Bus
    from bus.server import EmbeddedServer
    from telemetry import MetricsServer
    from web.app import Edge

    pin_mmap_threshold()  # searches run in this process's threads: keep their arrays off the heap
    bounded_openmp_spin()  # and their kernels' threads must not spin long against the pool's
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server: EmbeddedServer | None = None
    url = settings.nats_url
    if not url and embedded:
        if settings.resolved_nats_url() and await _reachable(settings.resolved_nats_url()):
            print(
                f"a system is already running on {settings.data_dir} ({settings.resolved_nats_url()})", file=sys.stderr
            )
            return 1
        server = EmbeddedServer(settings.nats_store_dir)
        await server.astart()
        url = server.url
        settings.nats_url_file.write_text(url)
    elif not url:
        url = settings.resolved_nats_url()
        if not url:
            print(f"no NATS found: start the system on {settings.data_dir} first, or pass --nats-url", file=sys.stderr)
            return 2
    bus = await Bus.connect(
        url,
        name=f"obs-{'+'.join(roles) or 'edge'}",
        stream=settings.stream_policy(),
        tls_ca=settings.nats_ca_file,
    )
    problem = await _check_storage(settings, roles, with_edge=with_edge, nc=bus.nc)
    if problem:
        await bus.close()
        if server is not None:
            await server.astop()
            with contextlib.suppress(OSError):
                settings.nats_url_file.unlink()
        print(f"run.py: cannot start: {problem}", file=sys.stderr, flush=True)
        return 2
    actors: list[Actor] = []
    edge: Edge | None = None
    metrics_server: MetricsServer | None = None
    started = asyncio.get_running_loop().time()
    if roles and numba_cache_is_cold():
        print(
            "first start: the numba kernels are not compiled yet; the first search and the first DSA-110 group"
            " compile them as they come (1-2 min on 2 cores, once; `python -m actors.precompile` does it ahead)",
            file=sys.stderr,
            flush=True,
        )
    try:
        if settings.metrics_port >= 0:  # an actor process alone has no edge to scrape
            metrics_server = MetricsServer(settings.host, settings.metrics_port)
            print(f"metrics on {await metrics_server.start()}", file=sys.stderr, flush=True)
        for role in roles:
            actor = registry.load(role)(bus, settings)
            await actor.start()
            actors.append(actor)
        if with_edge:
            edge = Edge(settings, bus)
            await edge.start()
            took = asyncio.get_running_loop().time() - started
            print(f"edge listening on {edge.url} (started in {took:.1f} s)", file=sys.stderr, flush=True)
            from web.gc_policy import tune_for_latency

            tune_for_latency()  # everything start-up allocated is long-lived: out of the collector's sight
        await (until() if until else _wait_for_signal())
    finally:

        async def shutdown() -> None:
            if edge is not None:
                await edge.stop()
            await asyncio.gather(*(a.stop(timeout=4.0) for a in actors), return_exceptions=True)
            if metrics_server is not None:
                await metrics_server.stop()
            await bus.close()

        try:
            await asyncio.wait_for(shutdown(), SHUTDOWN_DEADLINE_S - 2)
        except (TimeoutError, Exception) as exc:
            log.warning("shutdown was not clean", error=repr(exc))
        shutdown_pool()
        if server is not None:
            await server.astop()
            with contextlib.suppress(OSError):
                settings.nats_url_file.unlink()
    return 0


async def _check_storage(settings: Settings, roles: list[str], *, with_edge: bool, nc: Any = None) -> str | None:
    """Refuse to start a role that cannot reach object storage (issue 13): one line, or None.

    Run before any actor consumes. The storage id found (or written) is logged, so an operator can
    compare hosts. With the local backend only a process running the edge writes the id; a role
    started alone on a local directory without one is warned that its ``--data-dir`` is not (yet)
    the edge's.
    """
    from storage import backend_name, open_storage
    from storage.check import STORAGE_ROLES, StorageCheckFailed, check_storage

    users = [r for r in roles if r in STORAGE_ROLES] + (["edge"] if with_edge else [])
    if not users or not settings.storage_check:
        return None
    try:
        backend = backend_name(settings)
        storage = open_storage(settings, nc=nc)
    except ValueError as exc:
        return str(exc)
    role = "+".join(users)
    try:
        identity = await check_storage(settings, storage, role=role, create_id=with_edge or backend != "local")
    except StorageCheckFailed as exc:
        return str(exc)
    finally:
        await storage.close()
    if identity.missing:
        print(
            f"run.py: warning: {settings.data_dir / 'objects'} holds no storage id: no edge has used this "
            "--data-dir / OBS_DATA_DIR, so this role cannot see the uploads and retries their jobs until one does; "
            "on a cluster use --storage nats or --storage s3",
            file=sys.stderr,
            flush=True,
        )
    else:
        log.info("storage checked", backend=identity.backend, storage_id=identity.storage_id, role=role)
    return None


async def _reachable(url: str) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url.split(",")[0])
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.hostname, parsed.port or 4222), 1.0)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    from bus import Bus
    from bus.replay import replay

    url = settings.resolved_nats_url()
    if not url:
        print("no running system found: start it, or pass --nats-url / --data-dir", file=sys.stderr)
        return 2
    bus = await Bus.connect(
        url, name="obs-replay", manage_stream=False, tls_ca=settings.nats_ca_file
    )  # reading never edits the stream
    out = sys.stdout
    enc = msgspec.json.Encoder()
    try:
        async for stored in replay(
            bus.js, args.subject, since=args.since, seq=args.seq, until=args.until, follow=args.follow
        ):
            try:
                msgspec.json.decode(stored.data)
                event: Any = msgspec.Raw(stored.data)
            except msgspec.DecodeError:
                event = stored.data.decode("utf-8", "replace")
            line = {
                "seq": stored.seq,
                "subject": stored.subject,
                "stored_at": stored.time.isoformat().replace("+00:00", "Z"),
                "event": event,
            }
            out.write(enc.encode(line).decode() + "\n")
            out.flush()
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        await bus.close()
    return 0


PASSTHROUGH = ("users", "simulate", "search", "events")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASSTHROUGH:
        # These tools have their own options (and their own --help): take the settings flags out
        # and hand them everything else.
        known, rest = _settings_parent().parse_known_args(argv[1:])
        known.command, known.rest = argv[0], rest
        args = known
    else:
        args = build_parser().parse_args(argv)
    try:
        settings = settings_mod.load(args)
    except (ValueError, OSError) as exc:
        print(f"run.py: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    command = args.command
    if command in ("search", "events"):
        # Local tools: neither the bus nor the actors are imported (about a second of fixed cost).
        rest = [a for a in args.rest if a != "--"]
        if command == "search":
            from actors.searcher.cli import main as search_main

            return search_main(rest)
        from actors.searcher.events_cli import main as events_main

        return events_main(rest)
    from actors import registry

    if command in (None, "actor", "edge"):
        problem = preflight(settings, with_edge=command != "actor")
        if problem:
            print(f"run.py: cannot start: {problem}", file=sys.stderr)
            return 2
    if command is None:
        return asyncio.run(run_system(settings, list(registry.ROLES), with_edge=True, embedded=True))
    if command == "actor":
        if args.name not in registry.ROLES:
            print(f"run.py actor: unknown actor {args.name!r}; choose one of {', '.join(registry.ROLES)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        return asyncio.run(run_system(settings, [args.name], with_edge=False))
    if command == "edge":
        return asyncio.run(run_system(settings, [], with_edge=True))
    if command == "replay":
        return asyncio.run(run_replay(settings, args))
    if command == "config":
        print(settings_mod.describe())
        return 0
    if command == "subscribers":
        from bus import subscribers

        try:
            creds = subscribers.new_subscriber(args.name)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(subscribers.instructions(creds, settings.nats_url or settings.resolved_nats_url() or "nats://HOST:4222"))
        return 0
    rest = [a for a in args.rest if a != "--"]
    if command == "users":
        from actors.quota_keeper.cli import main as users_main

        return users_main(rest, settings)
    if command == "simulate":
        from sim.cli import main as simulate_main

        return simulate_main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
