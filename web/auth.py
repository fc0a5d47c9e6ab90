"""API-key authentication for the edge, from its own projection (never by asking an actor).

    principal = await require_key(request)         # any valid key: 403 otherwise
    principal = await require_operator(request)    # a valid key whose user has role "operator"

The ``x-api-key`` header is hashed (SHA-256, see ``actors.quota_keeper.keys``) and looked up in
``seti_keys``. Missing, unknown, expired and revoked keys are all 403, each with its own message
and code. The principal is cached on the request, so calling ``require_key`` twice is free.
Until the projection has caught up with the stream (a rebuild, a restart) every authenticated
request is 503 ``CATCHING_UP``: a revocation not yet applied must never let a key through.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from actors.quota_keeper import keys
from web.errors import ApiError

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


async def require_key(request: web.Request) -> Principal:
    cached = request.get(_PRINCIPAL)
    if isinstance(cached, Principal):
        return cached
    from web.app import EDGE

    edge = request.app[EDGE]
    if not edge.caught_up.is_set():
        # a key revoked in the part of the stream not yet applied would still look valid
        raise ApiError(
            503,
            "the edge is catching up with the event stream; try again in a moment",
            "CATCHING_UP",
            headers={"Retry-After": "1"},
        )
    presented = request.headers.get(HEADER, "").strip()
    if not presented:
        raise _forbidden("missing API key: send it in the x-api-key header", "MISSING_API_KEY")
    if not keys.looks_like_key(presented):
        raise _forbidden("invalid API key", "INVALID_API_KEY")
    row = await edge.store.fetchone(
        """SELECT k.key_id, k.user_id, k.expires_at, k.revoked_at, u.email, u.tier, u.role
           FROM seti_keys k JOIN seti_users u ON u.user_id = k.user_id WHERE k.key_hash = ?""",
        (keys.key_hash(presented),),
    )
    if row is None:
        raise _forbidden("invalid API key", "INVALID_API_KEY")
    if row["revoked_at"] is not None:
        raise _forbidden("this API key has been revoked", "API_KEY_REVOKED")
    if row["expires_at"] <= time.time():
        raise _forbidden("this API key has expired; create a new one", "API_KEY_EXPIRED")
    principal = Principal(
        user_id=row["user_id"], email=row["email"], tier=row["tier"], role=row["role"], key_id=row["key_id"]
    )
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
    from web.app import EDGE

    if request.app[EDGE].settings.read_auth:
        return await require_key(request)
    return None
