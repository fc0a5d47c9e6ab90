"""Operator commands for SETI users, sent to the running quota keeper by request/reply.

    python run.py users create --email E --tier researcher [--role operator] [--key-name N] [--ttl-days 90]
    python run.py users set-tier --email E --tier T

``create`` prints one JSON object with ``user_id`` and the user's first ``api_key`` (shown only
here; only its hash is kept). The system is found like every other operator command: ``--nats-url``,
or the URL the running system wrote under ``--data-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import fields, replace
from typing import Any

import settings as settings_mod
from actors.quota_keeper import commands, keys, tiers
from settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = settings_mod.OneLineParser(prog="run.py users", description=__doc__.split("\n\n")[0])
    settings_flags = settings_mod.OneLineParser(add_help=False)
    settings_mod.add_arguments(settings_flags)
    sub = parser.add_subparsers(dest="verb", required=True, parser_class=settings_mod.OneLineParser)
    p = sub.add_parser("create", parents=[settings_flags], help="create a user and print its first API key")
    p.add_argument("--email", required=True)
    p.add_argument("--tier", required=True, choices=list(tiers.TIERS))
    p.add_argument("--role", default="user", choices=list(tiers.ROLES))
    p.add_argument("--key-name", default="Default")
    p.add_argument("--ttl-days", type=int, default=keys.TTL_DEFAULT_DAYS)
    p = sub.add_parser("set-tier", parents=[settings_flags], help="move a user to another tier")
    p.add_argument("--email", required=True)
    p.add_argument("--tier", required=True, choices=list(tiers.TIERS))
    return parser


def _with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings flags may also follow the verb (``users create ... --data-dir D``)."""
    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = settings_mod._cast_setting(f, value, "the command line")
    return replace(settings, **overrides) if overrides else settings


async def _request(url: str, verb: str, payload: Any, tls_ca: str = "") -> dict[str, Any]:
    from bus.connection import connect
    from bus.request import CommandUnavailable, request

    nc = await connect(url, name="obs-users", tls_ca=tls_ca)
    try:
        reply = await request(nc, commands.subject(verb), payload, timeout=15.0)
    except CommandUnavailable as exc:
        raise SystemExit(f"the quota keeper did not answer ({exc}); is the system running?") from None
    finally:
        await nc.close()
    if not reply.ok:
        raise SystemExit(f"error {reply.status}: {reply.error}")
    return reply.data


def main(argv: list[str], settings: Settings) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _with_flags(settings, args)
    except settings_mod.SettingError as exc:
        print(f"run.py users: configuration error: {exc}", file=sys.stderr)
        return 2
    url = settings.resolved_nats_url()
    if not url:
        print(f"no running system found on {settings.data_dir}: start it, or pass --nats-url", file=sys.stderr)
        return 2
    try:
        if args.verb == "create":
            api_key, key_id = keys.generate()
            cmd = commands.CreateUser(
                email=args.email,
                tier=args.tier,
                role=args.role,
                key_id=key_id,
                key_hash=keys.key_hash(api_key),
                key_name=args.key_name,
                ttl_days=args.ttl_days,
            )
            data = asyncio.run(_request(url, "create_user", cmd, settings.nats_ca_file))
            out = {k: data[k] for k in ("user_id", "email", "tier", "role", "key_id", "expires_at")}
            out["api_key"] = api_key
        else:
            data = asyncio.run(
                _request(url, "set_tier", commands.SetTier(email=args.email, tier=args.tier), settings.nats_ca_file)
            )
            out = {k: data[k] for k in ("user_id", "email", "tier", "role")}
    except SystemExit as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0
