"""The one typed configuration object for every process of the platform.

Precedence, highest first: command-line flag, environment variable, the optional TOML file given by
``--config`` (or ``OBS_CONFIG``), the default below. Every setting is documented in its ``Field``
so that ``python run.py --help`` and ``docs/CONFIG.md`` say the same thing.

Why one object: an actor started alone on another host must see exactly the configuration the
all-in-one process would have given it, so there is no per-module ``os.environ`` lookup anywhere
else in the code base.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from bus.stream import StreamPolicy


def _meta(env: str, flag: str, help: str) -> dict[str, Any]:
    return {"env": env, "flag": flag, "help": help}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_meta("OBS_HOST", "--host", "edge bind address"))
    port: int = field(default=8000, metadata=_meta("OBS_PORT", "--port", "edge HTTP port (0 picks a free one)"))
    metrics_port: int = field(
        default=-1,
        metadata=_meta(
            "OBS_METRICS_PORT",
            "--metrics-port",
            "serve Prometheus /metrics on this port too (-1: off; the edge always serves /metrics)",
        ),
    )
    data_dir: Path = field(
        default=Path("./var"),
        metadata=_meta("OBS_DATA_DIR", "--data-dir", "where NATS storage, projections and outputs live"),
    )
    nats_url: str = field(
        default="",
        metadata=_meta("NATS_URL", "--nats-url", "connect to this NATS server/cluster instead of embedding one"),
    )
    nats_ca_file: str = field(
        default="",
        metadata=_meta(
            "OBS_NATS_CA_FILE", "--nats-ca-file", "PEM file of the CA that signed the NATS servers' TLS certificates"
        ),
    )
    stream_max_age_days: float = field(
        default=90.0,
        metadata=_meta("OBS_STREAM_MAX_AGE_DAYS", "--stream-max-age-days", "event retention in the stream (days)"),
    )
    stream_max_bytes: int = field(
        default=-1,
        metadata=_meta("OBS_STREAM_MAX_BYTES", "--stream-max-bytes", "event retention by size (-1: unlimited)"),
    )
    stream_replicas: int = field(
        default=1,
        metadata=_meta(
            "OBS_STREAM_REPLICAS",
            "--stream-replicas",
            "replicas of the event stream (3 on a 3-node cluster); start-up raises, never lowers",
        ),
    )
    kv_replicas: int = field(
        default=1,
        metadata=_meta(
            "OBS_KV_REPLICAS",
            "--kv-replicas",
            "replicas of the JetStream key-value buckets (leases, quota ledger); start-up raises, never lowers",
        ),
    )
    max_deliveries: int = field(
        default=5,
        metadata=_meta("OBS_MAX_DELIVERIES", "--max-deliveries", "deliveries of one event before dead-lettering"),
    )
    ack_wait_s: float = field(
        # A worker that is alive says so with in_progress every ack_wait/3, however long its job;
        # so ack_wait only bounds how long a *dead* worker's job waits before another takes it.
        default=6.0,
        metadata=_meta(
            "OBS_ACK_WAIT_S",
            "--ack-wait",
            "seconds before a silent worker's event is redelivered (live workers extend it every third)",
        ),
    )
    heartbeat_s: float = field(
        default=5.0, metadata=_meta("OBS_HEARTBEAT_S", "--heartbeat", "actor heartbeat interval (s)")
    )
    lease_ttl_s: float = field(
        # Renewed every third of it; a holder stops working a quarter of it before the server
        # would expire its key, so failover takes at most this plus one standby poll (1 s).
        default=6.0,
        metadata=_meta(
            "OBS_LEASE_TTL_S",
            "--lease-ttl",
            "seconds a single-active role (watcher per directory, alerter) keeps its lease without renewing it",
        ),
    )
    actor_grace_s: float = field(
        default=60.0,
        metadata=_meta(
            "OBS_ACTOR_GRACE_S",
            "--actor-grace",
            "seconds after its last heartbeat that a silent actor instance leaves /api/actors",
        ),
    )
    ready_max_lag: int = field(
        default=100,
        metadata=_meta(
            "OBS_READY_MAX_LAG", "--ready-max-lag", "/ready: most stream events the edge's projection may be behind"
        ),
    )
    ready_roles: str = field(
        default="all",
        metadata=_meta(
            "OBS_READY_ROLES",
            "--ready-roles",
            "/ready: roles that must have a live instance (comma-separated; 'all', or '' for none)",
        ),
    )
    live_interval_s: float = field(
        default=10.0,
        metadata=_meta("OBS_LIVE_INTERVAL_S", "--live-interval", "longest gap between WebSocket/SSE updates (s)"),
    )
    edge_name: str = field(
        default="edge", metadata=_meta("OBS_EDGE_NAME", "--edge-name", "edge instance name (its projection file)")
    )
    incoming_dir: Path | None = field(
        default=None,
        metadata=_meta(
            "OBS_INCOMING_DIR", "--incoming-dir", "DSA-110 subband files arrive here (default DATA/incoming)"
        ),
    )
    output_dir: Path | None = field(
        default=None,
        metadata=_meta("OBS_OUTPUT_DIR", "--output-dir", "Measurement Sets are written here (default DATA/ms)"),
    )
    watch_poll_s: float = field(
        default=5.0,
        metadata=_meta(
            "OBS_WATCH_POLL_S",
            "--watch-poll",
            "watcher: seconds between scans of the incoming directory (inotify wakes it sooner)",
        ),
    )
    watch_batch_size: int = field(
        default=16,
        metadata=_meta("OBS_WATCH_BATCH_SIZE", "--watch-batch-size", "watcher: files checked per scan at most"),
    )
    watch_settle_s: float = field(
        default=10.0,
        metadata=_meta(
            "OBS_WATCH_SETTLE_S",
            "--watch-settle",
            "watcher: a file is complete when its size is stable across two scans, or unmodified this long (s)",
        ),
    )
    incomplete_alert_s: float = field(
        default=120.0,
        metadata=_meta(
            "OBS_INCOMPLETE_ALERT_S",
            "--incomplete-alert",
            "watcher: a file still not a whole UVH5 file this long after it stopped changing raises an alert (s)",
        ),
    )
    group_timeout_s: float = field(
        default=900.0,
        metadata=_meta("OBS_GROUP_TIMEOUT_S", "--group-timeout", "watcher: how long a group may collect subbands (s)"),
    )
    group_timeout_policy: str = field(
        default="fail",
        metadata=_meta(
            "OBS_GROUP_TIMEOUT_POLICY",
            "--group-timeout-policy",
            "watcher: a group timing out 'fail's with an alert, or is converted with its missing subbands "
            "flagged ('process_partial')",
        ),
    )
    late_subband_s: float = field(
        default=3600.0,
        metadata=_meta(
            "OBS_LATE_SUBBAND_S", "--late-subband", "watcher: a subband this long after its group's first is late (s)"
        ),
    )
    slack_webhook_url: str = field(
        default="", metadata=_meta("SLACK_WEBHOOK_URL", "--slack-webhook-url", "Slack incoming webhook for alerts")
    )
    slack_channel: str = field(
        default="#ese-alerts", metadata=_meta("SLACK_CHANNEL", "--slack-channel", "Slack channel named in alerts")
    )
    catalogue: Path | None = field(
        default=None,
        metadata=_meta(
            "OBS_CATALOGUE",
            "--catalogue",
            "reference catalogue (JSON, astro.catalogue) for forced photometry and the calibration model's field "
            "sources (default INCOMING/catalogue.json)",
        ),
    )
    ese_preset: str = field(
        default="moderate",
        metadata=_meta(
            "OBS_ESE_PRESET", "--ese-preset", "ESE detection preset: conservative (6σ), moderate (5σ), sensitive (4σ)"
        ),
    )
    cal_error_frac: float = field(
        default=0.003,
        metadata=_meta(
            "OBS_CAL_ERROR_FRAC",
            "--cal-error-frac",
            "fractional epoch-to-epoch flux-scale error added in quadrature to the thermal error for the "
            "light-curve statistics and the ESE test (measured: actors/variability/errors.py)",
        ),
    )
    alert_summary_s: float = field(
        default=600.0,
        metadata=_meta(
            "OBS_ALERT_SUMMARY_S", "--alert-summary", "seconds after a first rate-limited alert before its summary"
        ),
    )
    alert_stall_factor: float = field(
        default=6.0,
        metadata=_meta(
            "OBS_ALERT_STALL_FACTOR",
            "--alert-stall-factor",
            "an actor silent for this many heartbeat intervals raises a system_error alert",
        ),
    )
    slack_dry_run: bool = field(
        default=False,
        metadata=_meta(
            "OBS_SLACK_DRY_RUN",
            "--slack-dry-run",
            "alerter: log each Slack message that would be sent (and record it as dry_run) instead of sending it",
        ),
    )
    slack_max_attempts: int = field(
        default=5,
        metadata=_meta("OBS_SLACK_MAX_ATTEMPTS", "--slack-max-attempts", "webhook POSTs per delivery round"),
    )
    slack_retry_base_s: float = field(
        default=1.0,
        metadata=_meta(
            "OBS_SLACK_RETRY_BASE_S", "--slack-retry-base", "first backoff delay between webhook attempts (s)"
        ),
    )
    signing_secret: str = field(
        default="",
        metadata=_meta(
            "OBS_SIGNING_SECRET",
            "--signing-secret",
            "HMAC secret for upload/download URLs (default: generated, kept in DATA)",
        ),
    )
    s3_bucket: str = field(
        default="",
        metadata=_meta(
            "OBS_S3_BUCKET", "--s3-bucket", "SETI object storage in this S3 bucket (default: a directory in DATA)"
        ),
    )
    s3_endpoint: str = field(
        default="",
        metadata=_meta(
            "OBS_S3_ENDPOINT",
            "--s3-endpoint",
            "S3 endpoint URL (default: AWS, or AWS_ENDPOINT_URL_S3); credentials come from the AWS_* variables",
        ),
    )
    s3_region: str = field(
        default="", metadata=_meta("OBS_S3_REGION", "--s3-region", "S3 region (default: AWS_DEFAULT_REGION)")
    )
    # -- object storage backend and its start-up check (issue 13 item 3) --------------------------
    storage: str = field(
        default="",
        metadata=_meta(
            "OBS_STORAGE",
            "--storage",
            "SETI object storage: local (a directory in DATA), nats (JetStream object store, for a cluster) "
            "or s3 (default: s3 when --s3-bucket is set, else local)",
        ),
    )
    object_store_bucket: str = field(
        default="observatory",
        metadata=_meta(
            "OBS_OBJECT_STORE_BUCKET", "--object-store-bucket", "JetStream object-store bucket of --storage nats"
        ),
    )
    object_store_replicas: int = field(
        default=1,
        metadata=_meta(
            "OBS_OBJECT_STORE_REPLICAS",
            "--object-store-replicas",
            "replicas of the --storage nats bucket (3 on a 3-node cluster); start-up raises, never lowers",
        ),
    )
    storage_check: bool = field(
        default=True,
        metadata=_meta(
            "OBS_STORAGE_CHECK",
            "--storage-check",
            "at start, the edge, quota keeper and searcher write/read/delete a probe object and refuse to start "
            "when storage is unreachable",
        ),
    )
    retention_sweep_s: float = field(
        default=3600.0,
        metadata=_meta(
            "OBS_RETENTION_SWEEP_S", "--retention-sweep", "how often the quota keeper removes expired SETI results (s)"
        ),
    )
    public_url: str = field(
        default="",
        metadata=_meta(
            "OBS_PUBLIC_URL", "--public-url", "base URL clients use to reach the edge (default http://HOST:PORT)"
        ),
    )
    read_auth: bool = field(
        default=False,
        metadata=_meta("OBS_READ_AUTH", "--read-auth", "require an API key on dashboard read endpoints too"),
    )
    session_ttl_s: float = field(
        default=43200.0,
        metadata=_meta(
            "OBS_SESSION_TTL_S",
            "--session-ttl",
            "browser sessions (POST /api/session) last this long (s); the cookie's Max-Age",
        ),
    )
    render_cache_mb: float = field(
        default=1024.0,
        metadata=_meta(
            "OBS_RENDER_CACHE_MB",
            "--render-cache-mb",
            "disk kept for the browser's PNG renders of FITS products (DATA/edge/renders); least recently used go first",
        ),
    )
    cors_origins: str = field(
        default="",
        metadata=_meta(
            "OBS_CORS_ORIGINS",
            "--cors-origins",
            "comma-separated origins allowed to call the API from a browser, with credentials (default: none)",
        ),
    )
    cal_max_sep_hours: float = field(
        default=12.0,
        metadata=_meta(
            "OBS_CAL_MAX_SEP_HOURS",
            "--cal-max-sep-hours",
            "calibrator: a group uses the nearest calibration sets observed within this many hours, before or after",
        ),
    )
    cal_validity_hours: float = field(
        default=12.0,
        metadata=_meta(
            "OBS_CAL_VALIDITY_HOURS",
            "--cal-validity-hours",
            "calibrator: a new calibration set is valid this many hours either side of its calibrator observation",
        ),
    )
    image_size: int = field(
        default=4800,
        metadata=_meta("OBS_IMAGE_SIZE", "--image-size", "imager: image size in pixels (square, even)"),
    )
    image_cell_arcsec: float = field(
        default=3.0,
        metadata=_meta("OBS_IMAGE_CELL_ARCSEC", "--image-cell", "imager: pixel size (arcsec)"),
    )
    image_niter: int = field(
        default=20000,
        metadata=_meta("OBS_IMAGE_NITER", "--image-niter", "imager: most CLEAN minor-cycle iterations"),
    )
    image_robust: float = field(
        default=0.0,
        metadata=_meta(
            "OBS_IMAGE_ROBUST", "--image-robust", "imager: Briggs robust parameter (-2 uniform .. 2 natural)"
        ),
    )
    image_max_major: int = field(
        default=3,
        metadata=_meta("OBS_IMAGE_MAX_MAJOR", "--image-max-major", "imager: most CLEAN major cycles"),
    )
    image_peel_field: int = field(
        default=8,
        metadata=_meta(
            "OBS_IMAGE_PEEL_FIELD",
            "--image-peel-field",
            "imager: most field sources found in the data, fitted through the drift beam and subtracted "
            "before CLEAN (0: none)",
        ),
    )
    search_time_limit_s: float = field(
        default=1800.0,
        metadata=_meta(
            "OBS_SEARCH_TIME_LIMIT_S",
            "--search-time-limit",
            "searcher: a job still searching after this many seconds fails with that reason (0: no limit)",
        ),
    )
    # -- fair scheduling of SETI jobs across users (actors/searcher/fair_share.py) --
    fair_share_running: int = field(
        default=1,
        metadata=_meta(
            "OBS_FAIR_SHARE_RUNNING",
            "--fair-share-running",
            "searcher: a user's jobs running at once on all searchers before their next one yields to "
            "other users' waiting jobs (0: stream order)",
        ),
    )
    fair_share_max_deferrals: int = field(
        default=10,
        metadata=_meta(
            "OBS_FAIR_SHARE_MAX_DEFERRALS",
            "--fair-share-max-deferrals",
            "searcher: most times one job yields its turn; then it runs (nothing starves)",
        ),
    )
    fair_share_defer_s: float = field(
        default=1.0,
        metadata=_meta(
            "OBS_FAIR_SHARE_DEFER_S",
            "--fair-share-defer",
            "searcher: seconds a job that yielded its turn waits before it is offered again",
        ),
    )
    log_level: str = field(
        default="info", metadata=_meta("OBS_LOG_LEVEL", "--log-level", "debug, info, warning, error")
    )

    # -- derived locations -------------------------------------------------------------------
    @property
    def nats_store_dir(self) -> Path:
        return self.data_dir / "nats"

    @property
    def nats_url_file(self) -> Path:
        """Where the embedded server's URL is written so operator commands can find it."""
        return self.data_dir / "nats.url"

    @property
    def edge_url_file(self) -> Path:
        return self.data_dir / "edge.url"

    @property
    def projection_db(self) -> Path:
        return self.data_dir / "edge" / f"{self.edge_name}.sqlite"

    @property
    def incoming(self) -> Path:
        return self.incoming_dir or self.data_dir / "incoming"

    @property
    def ms_dir(self) -> Path:
        return self.output_dir or self.data_dir / "ms"

    @property
    def catalogue_path(self) -> Path:
        return self.catalogue or self.incoming / "catalogue.json"

    @property
    def mosaic_dir(self) -> Path:
        return self.data_dir / "mosaics"

    @property
    def calset_dir(self) -> Path:
        """Calibration sets (one directory each: CASA tables and calset.json)."""
        return self.data_dir / "calsets"

    @property
    def image_dir(self) -> Path:
        """FITS images and their PNG thumbnails."""
        return self.data_dir / "images"

    def ready_roles_list(self) -> list[str]:
        """The roles ``/ready`` waits for: ``all`` means every role of ``actors.registry``."""
        if self.ready_roles.strip() == "all":
            from actors.registry import ROLES

            return sorted(ROLES)
        return [r.strip() for r in self.ready_roles.split(",") if r.strip()]

    def stream_policy(self) -> StreamPolicy:
        """What these settings ask of the event stream (``bus.stream.reconcile`` only raises)."""
        from bus.stream import StreamPolicy

        return StreamPolicy(self.stream_max_age_days, self.stream_max_bytes, self.stream_replicas)

    def resolved_nats_url(self) -> str:
        """The server to talk to: explicit URL, else the one a running embedded server wrote."""
        if self.nats_url:
            return self.nats_url
        try:
            return self.nats_url_file.read_text().strip()
        except FileNotFoundError:
            return ""


_CASTS: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": None, "Path": Path, "Path | None": Path}
_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false"}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class SettingError(ValueError):
    """One setting that does not parse; the message is one line naming its flag and variable."""


def _cast(type_name: str, raw: Any) -> Any:
    if type_name == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in _TRUE + _FALSE:
            raise ValueError(f"{raw!r} is not true or false")
        return text in _TRUE
    caster = _CASTS[type_name]
    return caster(raw)


def _cast_setting(f: Any, raw: Any, source: str) -> Any:
    type_name = str(f.type)
    try:
        return _cast(type_name, raw)
    except (ValueError, TypeError):
        m = f.metadata
        kind = _KINDS.get(type_name, type_name)
        raise SettingError(f"{m['flag']} / {m['env']}={raw}: not {kind} (from {source}); {m['help']}") from None


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and a hint, never the whole usage: the
    mistake is what a person needs to see (``--tier: invalid choice: 'platinum' (choose from ...)``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nhint: {self.prog} --help shows every option\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting. Defaults stay None so that 'not given' is distinguishable."""
    parser.add_argument("--config", default=None, help="optional TOML file of settings (env OBS_CONFIG)")
    for f in fields(Settings):
        meta = f.metadata
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f"{meta['help']} (env {meta['env']})"}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        parser.add_argument(meta["flag"], **kwargs)


def load(args: argparse.Namespace | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    config_path = getattr(args, "config", None) or env.get("OBS_CONFIG")
    if config_path:
        with open(config_path, "rb") as fh:
            file_values = tomllib.load(fh)
        unknown = set(file_values) - {f.name for f in fields(Settings)}
        if unknown:
            raise ValueError(f"unknown settings in {config_path}: {', '.join(sorted(unknown))}")
        values.update(file_values)
    sources = dict.fromkeys(values, f"the config file {config_path}")
    for f in fields(Settings):
        if f.metadata["env"] in env and env[f.metadata["env"]] != "":
            values[f.name] = env[f.metadata["env"]]
            sources[f.name] = "the environment"
        if args is not None and getattr(args, f.name, None) is not None:
            values[f.name] = getattr(args, f.name)
            sources[f.name] = "the command line"
    by_name = {f.name: f for f in fields(Settings)}
    typed = {name: _cast_setting(by_name[name], v, sources[name]) for name, v in values.items()}
    return Settings(**typed)


def describe() -> str:
    """Markdown table of every setting: ``run.py config``, and docs/CONFIG.md is exactly its output
    (``python run.py config > docs/CONFIG.md``; a test keeps the two the same)."""
    rows = [
        "# Configuration",
        "",
        "Generated by `python run.py config > docs/CONFIG.md`; do not edit by hand.",
        "Precedence, highest first: command-line flag, environment variable, the TOML file given by",
        "`--config` (or `OBS_CONFIG`), the default. A value that does not parse stops the start with one",
        "line naming the flag and its variable (`--port / OBS_PORT=abc: not an integer`).",
        "",
        "| flag | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for f in fields(Settings):
        m = f.metadata
        rows.append(f"| `{m['flag']}` | `{m['env']}` | `{f.default}` | {m['help']} |")
    return "\n".join(rows)
