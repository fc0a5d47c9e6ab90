"""Configuration precedence and secret redaction in logs."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import structlog

import logs
import run
import settings as settings_mod


def test_flag_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    conf = tmp_path / "obs.toml"
    conf.write_text('port = 9001\nhost = "0.0.0.0"\nslack_channel = "#file"\n')
    args = run.build_parser().parse_args(["--config", str(conf), "--port", "9003"])
    s = settings_mod.load(args, env={"OBS_PORT": "9002", "OBS_HOST": "10.0.0.1", "NATS_URL": "nats://x:1"})
    assert s.port == 9003 and s.host == "10.0.0.1" and s.slack_channel == "#file" and s.nats_url == "nats://x:1"
    assert s.data_dir == Path("./var")


def test_flags_work_before_and_after_the_subcommand() -> None:
    for argv in (["--data-dir", "/d", "actor", "watcher"], ["actor", "watcher", "--data-dir", "/d"]):
        s = settings_mod.load(run.build_parser().parse_args(argv), env={})
        assert s.data_dir == Path("/d")


def test_unknown_setting_in_file_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text("prot = 1\n")
    try:
        settings_mod.load(run.build_parser().parse_args(["--config", str(conf)]), env={})
    except ValueError as exc:
        assert "prot" in str(exc)
    else:
        raise AssertionError("expected an error")


def test_every_setting_is_documented() -> None:
    table = settings_mod.describe()
    for name in ("--nats-url", "NATS_URL", "SLACK_WEBHOOK_URL", "--data-dir"):
        assert name in table


def test_secrets_never_reach_the_log() -> None:
    buf = io.StringIO()
    with redirect_stderr(buf):
        logs.configure("info", json=True)
        log = logs.get("t")
        log.info("created key", api_key="sk_live_abcdefghijklmnopqrstuvwxyz012345", user="u1")
        log.info("upload", url="http://h/upload/k?expires=1&sig=deadbeefcafe", note="sk_live_ZZZZsecretsecret")
        log.info(
            "slack", webhook="https://hooks.slack.com/services/T/B/X", target="https://hooks.slack.com/services/T/B/X"
        )
    structlog.reset_defaults()
    logs.configure("warning", json=True)
    text = buf.getvalue()
    assert "abcdefghijklmnop" not in text and "deadbeefcafe" not in text and "secretsecret" not in text
    assert "services/T/B/X" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["api_key"] == "***" and lines[0]["user"] == "u1"
    assert lines[1]["url"].endswith("sig=***") and lines[1]["note"].startswith("sk_live_ZZZZ")


def test_tool_subcommands_get_their_own_help_and_settings_flags(capsys: object) -> None:
    import pytest

    with pytest.raises(SystemExit) as stop:
        run.main(["simulate", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "usage: run.py simulate" in out and "--with-calibrator" in out


def test_no_prefix_matching_of_settings_flags() -> None:
    """``simulate --out DIR`` must reach the simulator, not be read as ``--output-dir``."""
    known, rest = run._settings_parent().parse_known_args(["--out", "/x", "--data-dir", "/d"])
    assert rest == ["--out", "/x"] and known.data_dir == "/d"
