"""The event catalogue as a page for people: ``GET /api/events/docs``, rendered on the server.

It is drawn from the AsyncAPI document itself (never from a second description), so the page and
``/api/asyncapi.json`` cannot disagree. Plain HTML and a little CSS: no script, nothing to fetch.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_CSS = """
body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin:1.8rem 0 .3rem;font-family:ui-monospace,monospace}
table{border-collapse:collapse;width:100%;font-size:.92rem} td,th{border:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top} th{background:#f4f4f4} code,pre{font-family:ui-monospace,monospace}
pre{background:#f7f7f7;padding:.6rem;overflow-x:auto;font-size:.85rem} .tag{display:inline-block;padding:0 .4rem;
border-radius:.3rem;background:#e8eef8;margin-right:.3rem;font-size:.85rem} nav a{margin-right:.8rem}
"""


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type_of(schema.get('items', {}))}]"
    if kind == "object" and "additionalProperties" in schema:
        return f"dict[string, {_type_of(schema['additionalProperties'])}]"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _fields(payload: dict[str, Any]) -> str:
    required = set(payload.get("required", []))
    rows = []
    for name, prop in payload.get("properties", {}).items():
        default = json.dumps(prop["default"]) if "default" in prop else ("" if name in required else "(set when made)")
        rows.append(
            f"<tr><td><code>{escape(name)}</code></td><td><code>{escape(_type_of(prop))}</code></td>"
            f"<td>{'yes' if name in required else ''}</td><td><code>{escape(default)}</code></td></tr>"
        )
    return "<table><tr><th>field</th><th>type</th><th>required</th><th>default</th></tr>" + "".join(rows) + "</table>"


def render(doc: dict[str, Any]) -> str:
    messages = doc["components"]["messages"]
    schemas = doc["components"]["schemas"]
    channels = sorted(doc["channels"].values(), key=lambda c: c["address"])
    domains: dict[str, list[dict[str, Any]]] = {}
    for channel in channels:
        domains.setdefault(channel["address"].split(".")[0], []).append(channel)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{escape(doc['info']['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(doc['info']['title'])}</h1><p>version {escape(doc['info']['version'])} · AsyncAPI "
        f"{escape(doc['asyncapi'])} · machine-readable: <a href=/api/asyncapi.json>/api/asyncapi.json</a></p>",
        f"<p>{escape(doc['info']['description'])}</p>",
        "<h2>Subscribing</h2><p>Over HTTP: <code>GET /api/events?subject=dsa.ese.&gt;&amp;since_seq=N</code> "
        "(Server-Sent Events; the id of each event is its stream sequence, send it back as "
        "<code>Last-Event-ID</code> to resume; a start the stream's retention no longer reaches is answered "
        'first with <code>event: gap</code>, <code>{"gap": {"from_seq", "to_seq"}}</code>) '
        "or the WebSocket <code>/api/events/ws</code> with the same query. "
        'Each message is <code>{"seq", "subject", "time", "event"}</code>. SETI events need an API key '
        "(<code>x-api-key</code>) and show only your own jobs; <code>ops.*</code> needs an operator key. "
        "On the bus: <code>run.py subscribers create NAME</code> makes read-only NATS credentials.</p>",
        "<nav>" + "".join(f"<a href=#{escape(d)}>{escape(d)}.*</a>" for d in domains) + "</nav>",
    ]
    for domain, chans in domains.items():
        parts.append(f"<h2 id={escape(domain)}>{escape(domain)}.*</h2>")
        for channel in chans:
            (ref,) = channel["messages"].values()
            msg = messages[ref["$ref"].rsplit("/", 1)[-1]]
            payload = schemas[msg["payload"]["$ref"].rsplit("/", 1)[-1]]
            producers = ", ".join(msg["x-producers"]) or "—"
            parts += [
                f"<h3 id={escape(channel['address'])}>{escape(channel['address'])}</h3>",
                f"<p><span class=tag>{escape(msg['name'])}</span><span class=tag>schema_version "
                f"{msg['x-schema-version']}</span><span class=tag>{'stored' if msg['x-stored'] else 'not stored'}"
                f"</span><span class=tag>produced by {escape(producers)}</span></p>",
                f"<p>{escape(msg['description'])}</p>",
                f"<p><small>{escape(channel['description'])}</small></p>",
                _fields(payload),
                "<p>Example:</p><pre>" + escape(json.dumps(msg["examples"][0]["payload"], indent=2)) + "</pre>",
            ]
    parts.append("</body></html>")
    return "".join(parts)
