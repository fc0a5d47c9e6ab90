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


def _walk(info: Any, value: Any, path: str) -> Any:
    """Check `value` against the type `info` (``msgspec.inspect``) for what msgspec does not: unknown
    object fields (400 naming them, at any depth) and integral floats where an integer is expected
    (JSON Schema's ``integer`` includes ``3.0``, so the schema allows what the server must take)."""
    import msgspec.inspect as mi

    if isinstance(info, mi.StructType) and isinstance(value, dict):
        known = {f.encode_name: f for f in info.fields}
        unknown = sorted(k for k in value if k not in known)
        if unknown:
            where = f" in '{path}'" if path else ""
            raise ApiError(
                400,
                f"unknown field{'s' if len(unknown) > 1 else ''}{where}: {', '.join(repr(u) for u in unknown)}; "
                f"known fields: {', '.join(known)}",
                "UNKNOWN_FIELD",
                {"field": f"{path}.{unknown[0]}" if path else unknown[0], "unknown": unknown, "allowed": list(known)},
            )
        return {k: _walk(known[k].type, v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType) and isinstance(value, list):
        return [_walk(info.item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(info, mi.IntType) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType) and isinstance(value, dict):
                return _walk(member, value, path)
            if isinstance(member, mi.IntType) and isinstance(value, float) and value.is_integer():
                return int(value)
    if isinstance(info, mi.Metadata):
        return _walk(info.type, value, path)
    return value


def _field_at(type_: Any, path: str) -> tuple[Any, dict[str, Any]]:
    """The type info of the field at `path` (``a.b`` or ``a[0].b``) and the ``Meta(extra=...)`` of
    its annotations: a field may declare there the ``status`` and ``code`` its errors answer with."""
    import msgspec.inspect as mi

    extra: dict[str, Any] = {}
    info: Any = mi.type_info(type_)

    def unwrap(i: Any) -> Any:
        while isinstance(i, mi.Metadata | mi.UnionType | mi.ListType):
            if isinstance(i, mi.Metadata):
                extra.update(i.extra or {})
                i = i.type
            elif isinstance(i, mi.ListType):
                i = i.item_type
            else:
                useful = [t for t in i.types if not isinstance(t, mi.NoneType)]
                if len(useful) != 1:
                    return i
                i = useful[0]
        return i

    for part in filter(None, re.split(r"\.|\[\d+\]", path)):
        info = unwrap(info)
        if not isinstance(info, mi.StructType):
            return None, extra
        extra = {}
        info = next((f.type for f in info.fields if f.encode_name == part), None)
    return unwrap(info), extra


def _value_at(doc: Any, path: str) -> Any:
    for part in filter(None, re.split(r"\.|\[(\d+)\]", path or "")):
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def _validation_error(exc: msgspec.ValidationError, type_: Any, doc: Any, what: str = "") -> ApiError:
    import msgspec.inspect as mi

    text = str(exc)
    missing = _MISSING.search(text)
    if missing:
        path = _FIELD.search(text)
        name = (path.group(1) + "." if path and path.group(1) else "") + missing.group(1)
        return ApiError(400, f"missing required {what or 'field '}'{name}'", "MISSING_FIELD", {"field": name})
    where = _FIELD.search(text)
    name = where.group(1) if where else ""
    reason = text.split(" - at")[0]
    info, extra = _field_at(type_, name) if name else (None, {})
    if isinstance(_value_at(doc, name), str) and not _value_at(doc, name).strip() and isinstance(info, mi.StrType):
        return ApiError(
            400, f"missing required {what or 'field '}'{name}' (it is empty)", "MISSING_FIELD", {"field": name}
        )
    details: dict[str, Any] = {"field": name}
    status, code = int(extra.get("status", 422)), str(extra.get("code", "VALIDATION_ERROR"))
    if isinstance(info, mi.LiteralType | mi.EnumType):
        allowed = list(info.values) if isinstance(info, mi.LiteralType) else [m.value for m in info.cls]
        details["allowed"] = allowed
        reason += f"; allowed: {', '.join(str(a) for a in allowed)}"
        if what:  # an unknown value of a query parameter: the request names something that is not there
            status = int(extra.get("status", 400))
    message = f"invalid value for {what}'{name}': {reason}" if name else text
    if extra.get("hint"):
        message += f" ({extra['hint']})"
    return ApiError(status, message, code, details)


#: whitespace as JSON (RFC 8259) has it. ``bytes.strip()`` also strips ``\x0b`` and ``\x0c``,
#: which are not JSON: a body of them is a malformed document, not a missing one.
JSON_WHITESPACE = b" \t\r\n"


def body_is_empty(raw: bytes) -> bool:
    """Whether a request carries no JSON document at all (nothing, or JSON whitespace only)."""
    return not raw.strip(JSON_WHITESPACE)


def decode_body(raw: bytes, type_: type[T]) -> T:
    """Decode a JSON body: invalid JSON, missing and unknown fields are 400 (naming them), wrong
    types and values 422 naming the field (and, for an enum, the values it allows)."""
    import msgspec.inspect as mi

    if body_is_empty(raw):
        raise ApiError(400, "request body is empty; expected a JSON object", "INVALID_JSON")
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"invalid JSON body: {exc}", "INVALID_JSON") from None
    doc = _walk(mi.type_info(type_), doc, "")
    try:
        return msgspec.convert(doc, type_)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, type_, doc) from None


def read_query(request: web.Request, type_: type[T]) -> T:
    """The query string as the Struct `type_` declares it (the same Struct the OpenAPI parameters
    come from): strings converted to the declared types, an empty value is a value (``limit=`` is
    422, not the default), unknown values of an enum are 422 listing the allowed ones."""
    values: dict[str, Any] = {}
    for key in request.query:
        got = request.query.getall(key)
        values[key] = got[-1]
    names = {f.encode_name for f in msgspec.inspect.type_info(type_).fields}  # type: ignore[attr-defined]
    values = {k: v for k, v in values.items() if k in names}  # other parameters are ignored, as HTTP does
    try:
        return msgspec.convert(values, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, type_, values, "query parameter ") from None


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


#: the largest row id SQLite stores (a larger ``{id:\d+}`` is a 404, never an overflow)
MAX_ROW_ID = 2**63 - 1


def path_id(request: web.Request, name: str) -> int:
    r"""An ``{name:\d+}`` path parameter as a row id; 404 when it is past any row SQLite can hold."""
    value = int(request.match_info[name])
    if value > MAX_ROW_ID:
        raise ApiError(404, f"no {name.removesuffix('_id')} {value}", "NOT_FOUND")
    return value


def _path_schema(pattern: str) -> dict[str, Any]:
    """A path parameter's schema: ``{id:\\d+}`` is an integer (a client may send only digits)."""
    if pattern == r"\d+":
        return {"type": "integer", "minimum": 0, "maximum": MAX_ROW_ID}
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
    #: a non-JSON success body (image/png, application/fits, text/html): documented as binary
    content_type: str = ""
    #: a Struct read with `read_query` (preferred: its fields, types and limits become the
    #: parameters), or (name, JSON type, required) tuples for a handler that reads them itself
    query: Any = field(default_factory=list)
    #: JSON Schemas of path parameters that are not any string (a pattern, an enum)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: whether the JSON body may be left out (its Struct's defaults then apply)
    body_optional: bool = False
    #: other media types the success response may have besides its JSON body (the SETI download
    #: answers ``format=csv`` inline as ``text/csv``): each documented as a text body
    also_content: tuple[str, ...] = ()


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
            app.router.add_route(r.method, self._shadowed(r.path), r.handler)

    def _shadowed(self, path: str) -> str:
        """`path` with each plain ``{name}`` segment kept from matching a literal sibling route:
        with ``POST /api/sources/search`` and ``GET /api/sources/{source_id}``, a ``GET`` of
        ``/api/sources/search`` is a 405 (``Allow: POST``) as the OpenAPI document says, not a
        lookup of a source named "search"."""
        segs = path.split("/")
        out = list(segs)
        for i, seg in enumerate(segs):
            m = re.fullmatch(r"{(\w+)}", seg)
            if not m:
                continue
            literals = set()
            for other in self.routes:
                o = other.path.split("/")
                if len(o) == len(segs) and o[:i] == segs[:i] and "{" not in o[i]:
                    literals.add(re.escape(o[i]))
            if literals:
                alternatives = "|".join(sorted(literals))
                out[i] = "{" + m.group(1) + ":(?!(?:" + alternatives + ")$)[^{}/]+}"
        return "/".join(out)

    def openapi(self) -> dict[str, Any]:
        """OpenAPI 3.1 from the routes. Besides each route's own responses, every status the
        framework itself can answer is declared, so the document is true for every route:

        * a JSON body: 400 (bad JSON, a missing or unknown field), 413 (too large), 422 (a bad value);
        * query parameters: 422 (a value of the wrong type, out of range or not allowed);
        * an API key: 403 (missing, invalid, expired, revoked, not an operator), 503 (catching up);
        * path parameters: 404.

        Request Structs are closed (``additionalProperties: false``): `decode_body` refuses
        unknown fields at any depth.
        """
        query_types = [r.query for r in self.routes if isinstance(r.query, type)]
        responses_of = [t for r in self.routes for t in (r.response if isinstance(r.response, tuple) else (r.response,))]
        types = {t for t in [*(r.request for r in self.routes), *responses_of] if t is not None} | set(query_types)
        ordered = sorted(types, key=repr)
        (schemas, components) = msgspec.json.schema_components(ordered, ref_template="#/components/schemas/{name}")
        by_type = dict(zip(ordered, schemas, strict=True))
        request_names = self._struct_names([r.request for r in self.routes if r.request is not None])
        for name in request_names:
            comp = components.get(name)
            if comp is not None and comp.get("type") == "object":
                comp["additionalProperties"] = False
        paths: dict[str, dict[str, Any]] = {}
        for r in self.routes:
            op: dict[str, Any] = {"summary": r.summary or r.handler.__doc__ or "", "tags": [r.tag] if r.tag else []}
            path_names = re.findall(r"{(\w+)(?::[^}]*)?}", r.path)
            params = [
                {"name": n, "in": "path", "required": True, "schema": r.params.get(n) or _path_schema(pattern)}
                for n, pattern in re.findall(r"{(\w+)(?::([^}]*))?}", r.path)
            ]
            params += self._query_params(r, by_type, components)
            if params:
                op["parameters"] = params
            if r.auth:
                op["security"] = [{"apiKey": []}]
            if r.request is not None:
                op["requestBody"] = {
                    "required": not r.body_optional,
                    "content": {"application/json": {"schema": by_type[r.request]}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if isinstance(r.response, tuple):  # one of several bodies (untagged Structs cannot be a Union)
                ok["content"] = {"application/json": {"schema": {"anyOf": [by_type[t] for t in r.response]}}}
            elif r.response is not None:
                ok["content"] = {"application/json": {"schema": by_type[r.response]}}
            elif r.content_type:
                ok["content"] = {r.content_type: {"schema": {"type": "string", "format": "binary"}}}
            for media in r.also_content:
                ok.setdefault("content", {})[media] = {"schema": {"type": "string"}}
            responses: dict[str, Any] = {str(r.status): ok}
            implied: dict[int, str] = {400: "Malformed HTTP request (a request line or header over 8 KB)"}
            if r.request is not None:
                implied |= {400: "Invalid JSON, or a missing or unknown field", 413: "Body too large",
                            422: "A field has an invalid value"}
            if r.query:
                implied[422] = "A query parameter has an invalid value"
            if r.auth:
                implied |= {403: "Missing, invalid, expired or revoked API key" + (
                    ", or not an operator" if r.auth == "operator" else ""),
                    503: "The edge is catching up with the event stream; retry"}
            if path_names:
                implied[404] = "Not found"
            for code, desc in sorted({**implied, **r.responses}.items()):
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

    @staticmethod
    def _struct_names(types: list[Any]) -> set[str]:
        """Component names of the request Structs and every Struct nested in them."""
        import msgspec.inspect as mi

        names: set[str] = set()

        def visit(info: Any) -> None:
            if isinstance(info, mi.StructType):
                if info.cls.__name__ in names:
                    return
                names.add(info.cls.__name__)
                for f in info.fields:
                    visit(f.type)
            elif isinstance(info, mi.Metadata):
                visit(info.type)
            elif isinstance(info, mi.UnionType):
                for t in info.types:
                    visit(t)
            elif isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
                visit(info.item_type)
            elif isinstance(info, mi.DictType):
                visit(info.value_type)

        for t in types:
            visit(mi.type_info(t))
        return names

    @staticmethod
    def _query_params(r: Route, by_type: dict[Any, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
        if not isinstance(r.query, type):
            return [{"name": n, "in": "query", "required": req, "schema": {"type": t}} for n, t, req in r.query]
        ref = by_type[r.query]
        schema = components[ref["$ref"].rsplit("/", 1)[-1]] if "$ref" in ref else ref
        required = set(schema.get("required", []))
        return [
            {"name": n, "in": "query", "required": n in required, "schema": s}
            for n, s in schema.get("properties", {}).items()
        ]
