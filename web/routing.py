"""Typed routes: request and response bodies are msgspec Structs, and OpenAPI is generated from them.

A route is declared once, with its types, and that single declaration drives decoding (with a 400
or 422 that names the field), encoding, and the OpenAPI 3.1 document at ``/api/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from web.errors import ApiError

T = TypeVar("T")
RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_enc = msgspec.json.Encoder()
_FIELD = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_enc.encode(obj), status=status, content_type="application/json", headers=headers)


def decode_body(raw: bytes, type_: type[T]) -> T:
    """Decode a JSON body: invalid JSON and missing fields are 400, wrong types 422 naming the field."""
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected a JSON object", "INVALID_JSON")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        missing = _MISSING.search(text)
        if missing:
            path = _FIELD.search(text)
            name = (path.group(1) + "." if path and path.group(1) else "") + missing.group(1)
            raise ApiError(400, f"missing required field '{name}'", "MISSING_FIELD", {"field": name}) from None
        where = _FIELD.search(text)
        name = where.group(1) if where else ""
        raise ApiError(
            422,
            f"invalid value for '{name}': {text.split(' - at')[0]}" if name else text,
            "VALIDATION_ERROR",
            {"field": name},
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"invalid JSON body: {exc}", "INVALID_JSON") from None


async def read_json(request: web.Request, type_: type[T]) -> T:
    return decode_body(await request.read(), type_)


def query_int(request: web.Request, name: str, default: int, *, lo: int = 0, hi: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(422, f"query parameter '{name}' must be an integer", details={"field": name}) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ApiError(422, f"query parameter '{name}' must be {bound}", details={"field": name})
    return value


def query_float(
    request: web.Request, name: str, default: float | None = None, *, required: bool = False
) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, f"missing required query parameter '{name}'", "MISSING_FIELD", {"field": name})
        return default
    try:
        return float(raw)
    except ValueError:
        raise ApiError(422, f"query parameter '{name}' must be a number", details={"field": name}) from None


def _path_schema(pattern: str) -> dict[str, Any]:
    """A path parameter's schema: ``{id:\\d+}`` is an integer (a client may send only digits)."""
    if pattern == r"\d+":
        return {"type": "integer", "minimum": 0}
    return {"type": "string"}


@dataclass
class Route:
    method: str
    path: str
    handler: RouteHandler
    summary: str = ""
    tag: str = ""
    request: Any = None
    response: Any = None
    status: int = 200
    auth: str = ""  # "" | "key" | "operator"
    responses: dict[int, str] = field(default_factory=dict)
    query: list[tuple[str, str, bool]] = field(default_factory=list)
    #: a non-JSON success body (image/png, application/fits, text/html): documented as binary
    content_type: str = ""


class Api:
    def __init__(self, title: str, version: str) -> None:
        self.title = title
        self.version = version
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **info: Any) -> Callable[[RouteHandler], RouteHandler]:
        def register(handler: RouteHandler) -> RouteHandler:
            self.routes.append(Route(method=method, path=path, handler=handler, **info))
            return handler

        return register

    def mount(self, app: web.Application) -> None:
        for r in self.routes:
            app.router.add_route(r.method, r.path, r.handler)

    def openapi(self) -> dict[str, Any]:
        types = {t for r in self.routes for t in (r.request, r.response) if t is not None}
        (schemas, components) = msgspec.json.schema_components(
            sorted(types, key=repr), ref_template="#/components/schemas/{name}"
        )
        by_type = dict(zip(sorted(types, key=repr), schemas, strict=True))
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {"summary": r.summary or r.handler.__doc__ or "", "tags": [r.tag] if r.tag else []}
            params = [
                {"name": n, "in": "path", "required": True, "schema": _path_schema(pattern)}
                for n, pattern in re.findall(r"{(\w+)(?::([^}]*))?}", r.path)
            ]
            params += [{"name": n, "in": "query", "required": req, "schema": {"type": t}} for n, t, req in r.query]
            if params:
                op["parameters"] = params
            if r.auth:
                op["security"] = [{"apiKey": []}]
            if r.request is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": by_type[r.request]}}}
            ok: dict[str, Any] = {"description": "OK"}
            if r.response is not None:
                ok["content"] = {"application/json": {"schema": by_type[r.response]}}
            elif r.content_type:
                ok["content"] = {r.content_type: {"schema": {"type": "string", "format": "binary"}}}
            responses: dict[str, Any] = {str(r.status): ok}
            for code, desc in r.responses.items():
                responses[str(code)] = {
                    "description": desc,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
                }
            op["responses"] = responses
            path = re.sub(r"{(\w+):[^}]*}", r"{\1}", r.path)
            paths.setdefault(path, {})[r.method.lower()] = op
        components["ErrorEnvelope"] = {
            "type": "object",
            "required": ["error", "status", "code"],
            "properties": {
                "error": {"type": "string"},
                "status": {"type": "string", "enum": ["error"]},
                "code": {"type": "string"},
                "details": {"type": "object"},
            },
        }
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            },
        }
