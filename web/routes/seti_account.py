"""The SETI API's account routes (seed 004): this month's usage against the tier, the user's API
keys (create, list, revoke) and error reports about a job.

Reads come from the edge's projection; key creation and revocation are the quota keeper's
decisions (``seti.keeper_command``), so a key revoked through one edge is refused on every edge.
"""

from __future__ import annotations

import functools
import secrets
import time
from typing import TYPE_CHECKING

from aiohttp import web

from actors.quota_keeper import commands, keys
from schemas.seti import ReportSubmitted
from web.auth import require_key
from web.errors import ApiError
from web.projections.seti import month_of
from web.routes.seti import TAG, _keys_allowed, _tier, job_of, keeper_command
from web.routes.seti_bodies import (
    CreateKeyRequest,
    CreateKeyResponse,
    KeyList,
    KeyView,
    ReportRequest,
    ReportResponse,
    RevokeKeyResponse,
    TierDetails,
    UsageResponse,
)
from web.routing import body_is_empty, decode_body, json_response, read_json

if TYPE_CHECKING:
    from web.app import Edge


def register(edge: Edge) -> None:
    api = edge.api
    auth_errors = {403: "Missing, invalid, expired or revoked API key"}
    command = functools.partial(keeper_command, edge)
    owned_job = functools.partial(job_of, edge)

    @api.route(
        "GET",
        "/usage",
        response=UsageResponse,
        tag=TAG,
        auth="key",
        summary="This month's usage (UTC) and the tier's quota",
        responses=auth_errors,
    )
    async def usage(req: web.Request) -> web.Response:
        principal = await require_key(req)
        tier = _tier(principal)
        row = await edge.store.fetchone(
            "SELECT count FROM seti_usage WHERE user_id=? AND month=?", (principal.user_id, month_of(time.time()))
        )
        used = int(row["count"]) if row else 0
        return json_response(
            UsageResponse(
                user_id=principal.user_id,
                tier=tier.name,
                usage_this_month=used,
                limit=tier.files_per_month,
                remaining=max(0, tier.files_per_month - used),
                tier_details=TierDetails(**tier.details()),
            )
        )

    @api.route(
        "POST",
        "/api-keys",
        request=CreateKeyRequest,
        response=CreateKeyResponse,
        status=201,
        tag=TAG,
        auth="key",
        summary="Create an API key (Researcher+); the key is shown only in this response; the body may be left out",
        body_optional=True,
        responses={400: "ttl_days out of 1..365", 403: "Free tier cannot create API keys — upgrade required"},
    )
    async def create_key(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        raw = await req.read()
        body = CreateKeyRequest() if body_is_empty(raw) else decode_body(raw, CreateKeyRequest)
        try:
            keys.check_ttl(body.ttl_days)
        except ValueError as exc:
            raise ApiError(400, str(exc), "INVALID_TTL", {"field": "ttl_days"}) from None
        name = body.name.strip() or "Default"
        api_key, key_id = keys.generate()
        created = await command(
            "create_key",
            commands.CreateKey(
                user_id=principal.user_id,
                key_id=key_id,
                key_hash=keys.key_hash(api_key),
                name=name[:100],
                ttl_days=body.ttl_days,
            ),
        )
        out = CreateKeyResponse(
            key_id=key_id,
            api_key=api_key,
            expires_at=created["expires_at"],
            ttl_days=body.ttl_days,
            warning="Store this key securely. It will not be shown again.",
        )
        return json_response(out, status=201)

    @api.route(
        "GET",
        "/api-keys",
        response=KeyList,
        tag=TAG,
        auth="key",
        summary="Your API keys, masked (Researcher+)",
        responses=auth_errors,
    )
    async def list_keys(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        now = time.time()
        rows = await edge.store.fetchall(
            "SELECT * FROM seti_keys WHERE user_id=? ORDER BY created_at DESC, key_id", (principal.user_id,)
        )
        views = [
            KeyView(
                key_id=r["key_id"],
                name=r["name"],
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                active=r["revoked_at"] is None,
                expired=r["expires_at"] <= now,
            )
            for r in rows
        ]
        return json_response(KeyList(keys=views))

    @api.route(
        "DELETE",
        "/api-keys/{key_id}",
        response=RevokeKeyResponse,
        tag=TAG,
        auth="key",
        summary="Revoke an API key, at once on every edge (Researcher+)",
        responses={403: "Key belongs to a different user", 404: "Key not found"},
    )
    async def revoke_key(req: web.Request) -> web.Response:
        principal = await require_key(req)
        _keys_allowed(principal)
        key_id = req.match_info["key_id"]
        await command("revoke_key", commands.RevokeKey(user_id=principal.user_id, key_id=key_id))
        return json_response(RevokeKeyResponse(message="API key revoked", key_id=key_id))

    # -- reports ----------------------------------------------------------------------------
    @api.route(
        "POST",
        "/reports",
        request=ReportRequest,
        response=ReportResponse,
        status=201,
        tag=TAG,
        auth="key",
        summary="Submit an error report or feedback about one of your jobs",
        responses={400: "Missing job_id or invalid JSON body", 404: "Job not found", **auth_errors},
    )
    async def reports(req: web.Request) -> web.Response:
        principal = await require_key(req)
        body = await read_json(req, ReportRequest)
        await owned_job(principal, body.job_id)
        report_id = "rpt-" + secrets.token_hex(12)
        event = ReportSubmitted(
            report_id=report_id,
            user_id=principal.user_id,
            job_id=body.job_id,
            error_type=body.error_type or "user_report",
            description=body.description[:10000],
            metadata=body.metadata,
            producer="edge",
            correlation_id=body.job_id,
        )
        await edge.bus.publish(event)
        return json_response(ReportResponse(report_id=report_id, message="Report submitted. Thank you."), status=201)
