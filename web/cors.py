"""Cross-origin access for browsers on other origins (``--cors-origins``; none by default).

aiohttp-cors (aio-libs, the maintainers of aiohttp) does the protocol: it answers preflight
``OPTIONS`` requests for every route (allowed methods and requested headers, ``Max-Age``), adds
``Access-Control-Allow-Origin`` and ``-Allow-Credentials`` to actual responses for listed origins
only, and leaves requests from other origins without those headers, so the browser refuses them.
Hand-written CORS tends to get the preflight or ``Vary: Origin`` wrong; this is why a library.

Credentials are allowed, so a page on a listed origin may use the session cookie; that cookie is
SameSite=Strict, so such a page must be same-site (another port or subdomain), and its
state-changing requests still need the CSRF token.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

EXPOSED = ("Content-Disposition", "Retry-After", "ETag", "Last-Modified")


def origins_of(setting: str) -> list[str]:
    return [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]


def enable(app: web.Application, origins: list[str]) -> None:
    """Give every route registered so far CORS for `origins` (call after all routes are added)."""
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True, expose_headers=EXPOSED, allow_headers="*", allow_methods="*", max_age=600
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        if route.method != "OPTIONS":
            cors.add(route)
