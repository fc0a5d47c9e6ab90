"""API-key authentication for the edge, from its own projection (never by asking an actor).

    principal = await require_key(request)         # any valid key: 403 otherwise
    principal = await require_operator(request)    # a valid key whose user has role "operator"

The ``x-api-key`` header is hashed (SHA-256, see ``actors.quota_keeper.keys``) and looked up in
``seti_keys``. Missing, unknown, expired and revoked keys are all 403, each with its own message
and code. The principal is cached on the request, so calling ``require_key`` twice is free.

A browser presents the ``obs_session`` cookie instead (``web/sessions.py``): every place that takes
the header takes the cookie, with the same roles. The session names the key it was opened with, and
that key's row is checked on every request exactly as for the header. A state-changing request
(anything but GET/HEAD/OPTIONS) made with the cookie must carry ``X-CSRF-Token`` equal to the
session's token, else 403 ``CSRF_FAILED``; requests with the header need no CSRF token, since a
browser never adds that header on its own.

Until the projection has caught up with the stream (a rebuild, a restart) every authenticated
request is 503 ``CATCHING_UP``: a revocation not yet applied must never let a key through.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from aiohttp import web

from actors.quota_keeper import keys
from web.errors import ApiError
from web.projections.store import ProjectionStore
from web.sessions import COOKIE, CSRF_HEADER, Session
from web.state import CAUGHT_UP, SESSIONS, SETTINGS, STORE

HEADER = "x-api-key"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    email: str
    tier: str
    role: str
    key_id: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


_PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("seti.principal", Principal)


def _forbidden(message: str, code: str) -> ApiError:
    return ApiError(403, message, code)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY_SQL = """SELECT k.key_id, k.user_id, k.expires_at, k.revoked_at, u.email, u.tier, u.role
           FROM seti_keys k JOIN seti_users u ON u.user_id = k.user_id WHERE """


async def _principal_of(store: ProjectionStore, where: str, value: str) -> Principal:
    row = await store.fetchone(_KEY_SQL + where, (value,))
    if row is None:
        raise _forbidden("invalid API key", "INVALID_API_KEY")
    if row["revoked_at"] is not None:
        raise _forbidden("this API key has been revoked", "API_KEY_REVOKED")
    if row["expires_at"] <= time.time():
        raise _forbidden("this API key has expired; create a new one", "API_KEY_EXPIRED")
    return Principal(
        user_id=row["user_id"], email=row["email"], tier=row["tier"], role=row["role"], key_id=row["key_id"]
    )


async def principal_for_key(store: ProjectionStore, presented: str) -> Principal:
    """The principal of a raw API key (header or ``POST /api/session``); 403 when it is not valid."""
    if not keys.looks_like_key(presented):
        raise _forbidden("invalid API key", "INVALID_API_KEY")
    return await _principal_of(store, "k.key_hash = ?", keys.key_hash(presented))


async def session_of(request: web.Request) -> tuple[Session, Principal] | None:
    """The request's live session and its principal, or None when there is no valid cookie."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None
    session = await request.app[SESSIONS].get(token)
    if session is None:
        return None
    return session, await _principal_of(request.app[STORE], "k.key_id = ?", session.key_id)


def require_caught_up(request: web.Request) -> None:
    """503 until the projection has caught up: a key revoked in the part of the stream not yet
    applied would still look valid."""
    caught_up = request.app.get(CAUGHT_UP)
    if caught_up is not None and not caught_up.is_set():
        raise ApiError(
            503,
            "the edge is catching up with the event stream; try again in a moment",
            "CATCHING_UP",
            headers={"Retry-After": "1"},
        )


async def require_key(request: web.Request) -> Principal:
    cached = request.get(_PRINCIPAL)
    if isinstance(cached, Principal):
        return cached
    require_caught_up(request)
    presented = request.headers.get(HEADER, "").strip()
    if presented:
        principal = await principal_for_key(request.app[STORE], presented)
    elif request.cookies.get(COOKIE):
        found = await session_of(request)
        if found is None:
            raise _forbidden("the session has expired or was closed: sign in again", "SESSION_EXPIRED")
        session, principal = found
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), session.csrf_token.encode()
        ):
            raise _forbidden(f"missing or wrong {CSRF_HEADER} header for this session", "CSRF_FAILED")
    else:
        raise _forbidden("missing API key: send it in the x-api-key header", "MISSING_API_KEY")
    request[_PRINCIPAL] = principal
    return principal


async def require_operator(request: web.Request) -> Principal:
    """For operator-only control endpoints (role ``operator``, given by ``run.py users create --role``)."""
    principal = await require_key(request)
    if not principal.is_operator:
        raise _forbidden("this endpoint is for operators only", "OPERATOR_ONLY")
    return principal


async def require_reader(request: web.Request) -> Principal | None:
    """For dashboard read endpoints: open unless ``--read-auth`` is set, then any valid key."""
    if request.app[SETTINGS].read_auth:
        return await require_key(request)
    return None
