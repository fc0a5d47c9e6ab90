"""The AsyncAPI event catalogue: valid AsyncAPI 3.0.0, complete, served as JSON and as a page.

The AsyncAPI 3.0.0 JSON Schema is the official one, vendored from the npm package @asyncapi/specs
6.11.1 (``schemas/3.0.0-without-$id.json``; Apache-2.0, see tests/fixtures/asyncapi/LICENSE).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

from bus.stream import STREAM, SUBJECTS
from schemas.asyncapi import catalogue
from schemas.events import decode, event_types

SCHEMA = Path(__file__).resolve().parent.parent / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def test_catalogue_is_valid_asyncapi_3_and_names_every_event() -> None:
    doc = catalogue(version="test", stream=STREAM, stored_subjects=SUBJECTS)
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]

    addresses = {c["address"] for c in doc["channels"].values()}
    for subject, cls in event_types().items():
        assert subject in addresses
        msg = doc["components"]["messages"][cls.__name__]
        assert msg["payload"] == {"$ref": f"#/components/schemas/{cls.__name__}"}
        assert msg["x-schema-version"] == 1
        # the example is a real event of that class
        example = msg["examples"][0]["payload"]
        assert type(decode(json.dumps(example).encode())) is cls
        # every event has a producer found in the source
        assert msg["x-producers"], cls.__name__
    messages = doc["components"]["messages"]
    assert messages["ImageReady"]["x-producers"] == ["imager"]
    assert messages["EseCandidateUpdated"]["x-producers"] == ["variability"]
    assert messages["ReportSubmitted"]["x-producers"] == ["edge"]
    assert messages["ActorHeartbeat"]["x-stored"] is False and messages["JobSubmitted"]["x-stored"] is True
    ese = doc["components"]["schemas"]["EseCandidateUpdated"]
    assert {"candidate_id", "source_id", "schema_version"} <= set(ese["properties"])


def test_a_broken_document_is_caught_by_the_validator() -> None:
    """The vendored schema really checks: a channel without its address' type is refused."""
    doc = catalogue(version="test", stream=STREAM, stored_subjects=SUBJECTS)
    doc["channels"]["dsa_image_ready"]["address"] = 42
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert any(validator.iter_errors(doc))


async def test_served_as_json_and_as_a_page(edge_factory: Callable[..., Awaitable[Any]]) -> None:
    edge = await edge_factory()
    async with aiohttp.ClientSession() as s:
        async with s.get(edge.url + "/api/asyncapi.json") as r:
            assert r.status == 200 and r.content_type == "application/json"
            served = await r.json()
        async with s.get(edge.url + "/api/events/docs") as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
        async with s.get(edge.url + "/api/openapi.json") as r:
            paths = (await r.json())["paths"]
    assert served["asyncapi"] == "3.0.0"
    assert served["channels"].keys() == catalogue(version="x", stream=STREAM, stored_subjects=SUBJECTS)["channels"].keys()
    for subject in event_types():
        assert f"<h3 id={subject}>{subject}</h3>" in page
    assert "produced by variability" in page
    for path in ("/api/events", "/api/events/ws", "/api/asyncapi.json", "/api/events/docs"):
        assert path in paths
    assert {"403", "422"} <= set(paths["/api/events"]["get"]["responses"])
