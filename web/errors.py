"""The error envelope of seed 000, used for every 4xx and 5xx the edge sends.

``{"error": "...", "status": "error", "code": "ERROR_CODE", "details": {...}}``

The middleware turns aiohttp's own HTTP exceptions (unknown route, wrong method, body too large)
into the envelope too, and any other exception into a 500 whose body says nothing about the code:
the traceback goes to the log, never to the client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

import logs
from storage.base import StorageError

log = logs.get("web.errors")

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """Raise anywhere in a handler to answer with the envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "ERROR")
        self.details = details or {}
        self.headers = headers or {}


_enc = msgspec.json.Encoder()


def envelope(
    status: int,
    message: str,
    code: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": message, "status": "error", "code": code or CODES.get(status, "ERROR"), "details": details or {}}
    return web.Response(status=status, body=_enc.encode(body), content_type="application/json", headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return envelope(exc.status, exc.message, exc.code, exc.details, exc.headers)
    except StorageError as exc:  # a key or upload the storage refuses: the caller's error, no traceback
        return envelope(exc.status, exc.message, exc.code or None)
    except web.HTTPRequestEntityTooLarge as exc:
        return envelope(
            413, "request body too large", details={"max_bytes": exc.max_size if hasattr(exc, "max_size") else None}
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {
            404: f"no such endpoint: {request.method} {request.path}; the API is described at /api/docs",
            405: f"method {request.method} not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        details: dict[str, Any] = {"docs": "/api/docs"} if exc.status == 404 else {}
        headers: dict[str, str] = {}
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = sorted(exc.allowed_methods)
            details["allowed"] = allowed
            headers["Allow"] = ", ".join(allowed)  # RFC 9110 §15.5.6: a 405 MUST carry Allow
        return envelope(exc.status, message, details=details, headers=headers)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception:
        log.exception("unhandled error", method=request.method, path=request.path)
        return envelope(500, "internal server error")


# -- errors aiohttp answers before any middleware runs (a header over 8 KB, a malformed line) ------
class _EnvelopeRequestHandler(RequestHandler):
    """aiohttp's parser errors (``LineTooLong`` for a header over 8190 bytes, a bad request line)
    are answered by the protocol handler itself, in plain text; here they get the envelope too."""

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: a response already started cannot be replaced
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:
            log.error("error handling a request", exc_info=exc)
            text = "internal server error"
        else:  # the client's mistake: one line at info, no traceback
            reason = str(getattr(exc, "message", None) or exc or message or "bad request").strip()
            text = f"malformed HTTP request: {reason.splitlines()[0][:300]}"
            log.info("malformed HTTP request", status=status, reason=text[:300])
        resp = envelope(status, text, details={"max_header_bytes": 8190} if "too long" in text.lower() else {})
        resp.force_close()
        return resp


class _EnvelopeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


class EnvelopeAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer even protocol-level errors with the envelope."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _EnvelopeServer
        return server
