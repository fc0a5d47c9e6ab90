"""The event catalogue: an AsyncAPI 3.0 document generated from the event Structs themselves.

Nothing here is written by hand per event. For every class in ``schemas.events``:

* the channel is its subject (the type tag) and the payload schema is msgspec's JSON Schema of the
  Struct (the same generator as the OpenAPI document), so the catalogue cannot drift from the code;
* the example is built from the class's fields (defaults where it has them, a value of the
  field's type otherwise) and *decoded back through the class*, so it is valid by construction;
* the producers are found in the source: which actor roles declare it in ``publishes`` or build
  it (``actors/<role>/``), whether the edge builds it (``web/``), and whether the bus does
  (``bus/``: dead letters). Read with ``ast``, never imported, so serving the catalogue does not
  load every actor's science stack into the edge.

The document says which subjects are stored in the stream (readable from ``/api/events`` and by
durable consumers) and which are core NATS only (heartbeats).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from schemas.base import Event
from schemas.events import event_types

ROOT = Path(__file__).resolve().parent.parent
_SCHEMA_REF = "#/components/schemas/{name}"


def _any(t: type) -> dict[str, Any]:
    """``object`` (free-form values, e.g. a job's parameters) is any JSON value."""
    if t is object:
        return {"description": "any JSON value"}
    raise NotImplementedError(t)


def _doc(cls: type) -> str:
    text = (cls.__doc__ or "").strip()
    return re.sub(r"[ \t]+", " ", text)


@cache
def producers(root: Path = ROOT) -> dict[str, tuple[str, ...]]:
    """Event class name -> who publishes it, from the source tree (see the module docstring)."""
    names = {cls.__name__ for cls in event_types().values()}
    found: dict[str, set[str]] = {}

    def add(name: str, who: str) -> None:
        if name in names:
            found.setdefault(name, set()).add(who)

    for path in sorted([*root.glob("actors/**/*.py"), *root.glob("web/**/*.py"), *root.glob("bus/**/*.py")]):
        rel = path.relative_to(root).parts
        if rel[0] == "actors":
            if len(rel) == 2 and rel[1] != "runtime.py":
                continue  # shared helpers: the roles that call them declare what they publish
            who = rel[1] if len(rel) > 2 else "every actor"
        elif rel[0] == "web":
            who = "edge"
        else:
            who = "any consumer (bus)"
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and rel[0] == "actors":
                role = next(
                    (
                        s.value.value
                        for s in node.body
                        if isinstance(s, ast.Assign | ast.AnnAssign)
                        and _target(s) == "role"
                        and isinstance(s.value, ast.Constant)
                        and isinstance(s.value.value, str)
                    ),
                    None,
                )
                for s in node.body:
                    if isinstance(s, ast.Assign | ast.AnnAssign) and _target(s) == "publishes" and s.value is not None:
                        for elt in getattr(s.value, "elts", []):
                            if isinstance(elt, ast.Name):
                                add(elt.id, role or who)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.keywords:
                add(node.func.id, who)
    return {name: tuple(sorted(w)) for name, w in found.items()}


def _target(stmt: ast.Assign | ast.AnnAssign) -> str:
    target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
    return target.id if isinstance(target, ast.Name) else ""


def _value_for(name: str, schema: dict[str, Any], components: dict[str, Any]) -> Any:
    """A plausible value for a field of this JSON Schema (named by the field, for readability)."""
    if "$ref" in schema:
        return _value_for(name, components[schema["$ref"].rsplit("/", 1)[-1]], components)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return _value_for(name, options[0], components) if options else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        if schema.get("format") == "date-time" or name.endswith(("_at", "time")):
            return "2026-01-01T12:00:00Z"
        if name.endswith("path") or name == "path":
            return f"/data/{name}.fits"
        if name.endswith("_id") or name == "id":
            return f"{name.removesuffix('_id')}_0001"
        return f"<{name}>"
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_value_for(name.rstrip("s"), schema.get("items", {}), components)]
    if kind == "object":
        return {}
    return None


def example(cls: type[Event], schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """An example payload of ``cls``, decoded back through the class so that it is valid."""
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    raw: dict[str, Any] = {"type": cls.subject()}
    for name, prop in schema.get("properties", {}).items():
        if name == "type":
            continue
        field = fields.get(name)
        if field is not None and field.default is not msgspec.NODEFAULT and name not in ("id", "producer"):
            continue  # defaults stay out of the example, as the encoder writes them anyway
        raw[name] = _value_for(name, prop, components)
    raw["id"] = "0f8fad5bd9cb469fa165706ca2d5d5a1"
    raw["producer"] = (producers().get(cls.__name__) or ("",))[0]
    event = msgspec.convert(raw, cls)
    out = msgspec.to_builtins(event)
    assert isinstance(out, dict)
    return out


def catalogue(
    *, version: str, stream: str, stored_subjects: list[str], title: str = "Observatory platform events"
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of every event the platform publishes.

    ``stream`` and ``stored_subjects`` are the bus's (``bus.stream``), passed in so that schemas
    stay below the bus in the import graph.
    """
    STREAM, SUBJECTS = stream, stored_subjects
    types = sorted(event_types().values(), key=lambda c: c.subject())
    schemas, components = msgspec.json.schema_components(types, ref_template=_SCHEMA_REF, schema_hook=_any)
    by_producer = producers()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls, ref in zip(types, schemas, strict=True):
        name = cls.__name__
        key = cls.subject().replace(".", "_")
        body = components[ref["$ref"].rsplit("/", 1)[-1]]
        version_default = next(f.default for f in msgspec.structs.fields(cls) if f.name == "schema_version")
        made_by = list(by_producer.get(name, ()))
        stored = cls.stored and any(cls.subject().startswith(s.rstrip(">")) for s in SUBJECTS)
        messages[name] = {
            "name": name,
            "title": cls.subject(),
            "summary": (_doc(cls).split("\n")[0] or f"{cls.subject()} event"),
            "description": _doc(cls) or f"The {cls.subject()} event.",
            "contentType": "application/json",
            "payload": ref,
            "examples": [{"name": f"{key}_example", "payload": example(cls, body, components)}],
            "x-schema-version": version_default,
            "x-producers": made_by,
            "x-stored": stored,
        }
        channels[key] = {
            "address": cls.subject(),
            "title": cls.subject(),
            "description": (
                f"Stored in the JetStream stream {STREAM}: readable from GET /api/events and by consumers."
                if stored
                else "Core NATS only (not stored): a live subscription sees it, a replay never does."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"Published by {', '.join(made_by) or 'no producer found in the source'}",
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"}],
            "x-producers": made_by,
        }
        operations[f"receive_{key}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": "What a subscriber receives",
            "messages": [{"$ref": f"#/channels/{key}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Every event of the platform, generated from the msgspec Structs that define them. "
                "An event's type is its NATS subject; each carries schema_version: within a version "
                "fields are only added (with defaults), never removed, renamed or retyped."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": f"The bus: subjects {', '.join(SUBJECTS)} are stored in the stream {STREAM}.",
            },
            "edge": {
                "host": "127.0.0.1:8000",
                "protocol": "http",
                "pathname": "/api/events",
                "description": "Server-Sent Events (and /api/events/ws) of stored events, filtered and resumable.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }
