"""Browser sessions: ``POST /api/session`` trades an API key for the ``obs_session`` cookie.

* ``POST /api/session`` ``{"api_key"}``: 200 with who the key belongs to, the session's expiry and
  its CSRF token; sets the cookie (HttpOnly, SameSite=Strict, Path=/, Secure when the public URL
  is https, Max-Age the session TTL). A bad key is 403, as with the header.
* ``GET /api/session``: the same body for the current cookie; 401 when there is none or it expired
  (the page shows its sign-in form).
* ``DELETE /api/session``: logout; 204 and the cookie cleared. With a live session it needs the
  CSRF token like any other state-changing request made with the cookie.

The key is read from the body only, never from a URL, and is neither stored nor logged.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import msgspec
from aiohttp import web

from web.auth import Principal, principal_for_key, require_caught_up, session_of
from web.errors import ApiError
from web.routing import json_response, read_json
from web.sessions import COOKIE, CSRF_HEADER, Session

if TYPE_CHECKING:
    from web.app import Edge

TAG = "session"


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True):
    api_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SessionView(msgspec.Struct):
    user_id: str
    email: str
    role: str
    tier: str
    expires_at: str  # ISO 8601 UTC
    csrf_token: str


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _view(session: Session, principal: Principal) -> SessionView:
    return SessionView(
        user_id=principal.user_id,
        email=principal.email,
        role=principal.role,
        tier=principal.tier,
        expires_at=_iso(session.expires_at),
        csrf_token=session.csrf_token,
    )


def register(edge: Edge) -> None:
    api = edge.api
    secure = edge.settings.public_url.lower().startswith("https://")

    @api.route(
        "POST",
        "/api/session",
        request=SessionRequest,
        response=SessionView,
        tag=TAG,
        summary="Sign in: exchange an API key for an HttpOnly session cookie (obs_session) and a CSRF token",
        responses={400: "Missing or malformed body", 403: "Invalid, revoked or expired key", 422: "Invalid field", 503: "The edge is catching up with the event stream"},
    )
    async def create(request: web.Request) -> web.Response:
        body = await read_json(request, SessionRequest)
        require_caught_up(request)
        principal = await principal_for_key(edge.store, body.api_key.strip())
        ttl = edge.settings.session_ttl_s
        token, session = await edge.sessions.create(principal.key_id, principal.user_id, ttl)
        resp = json_response(_view(session, principal), headers={"Cache-Control": "no-store"})
        resp.set_cookie(COOKIE, token, max_age=int(ttl), path="/", httponly=True, samesite="Strict", secure=secure)
        return resp

    @api.route(
        "GET",
        "/api/session",
        response=SessionView,
        tag=TAG,
        summary="The current session (from the cookie)",
        responses={401: "No session, or it expired"},
    )
    async def current(request: web.Request) -> web.Response:
        try:
            found = await session_of(request)
        except ApiError:  # the key behind the session was revoked or expired: signed out all the same
            found = None
        if found is None:
            raise ApiError(401, "not signed in (no session, or it expired)", "NOT_SIGNED_IN")
        return json_response(_view(*found), headers={"Cache-Control": "no-store"})

    @api.route(
        "DELETE",
        "/api/session",
        status=204,
        tag=TAG,
        summary="Sign out: the session is deleted and the cookie cleared (needs X-CSRF-Token)",
        responses={403: "Missing or wrong X-CSRF-Token"},
    )
    async def delete(request: web.Request) -> web.Response:
        token = request.cookies.get(COOKIE, "")
        session = await edge.sessions.get(token) if token else None
        if session is not None:
            # The CSRF check (a cross-site page cannot sign a user out), but not the key's: a session
            # whose key was revoked can still be closed.
            if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), session.csrf_token.encode()):
                raise ApiError(403, f"missing or wrong {CSRF_HEADER} header for this session", "CSRF_FAILED")
            await edge.sessions.delete(token)
        resp = web.Response(status=204)
        resp.del_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="Strict")
        return resp
