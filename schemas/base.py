"""The event envelope and the codec every process uses to read the bus.

Every event is a frozen msgspec Struct tagged by its ``type``, which is also the NATS subject it is
published on (``dsa.group.pending``). The envelope fields live on the base class so that each event
is one flat JSON object: ``{"type", "id", "time", "producer", "correlation_id", ...payload}``.
Flat beats nested here because ``run.py replay`` output is read by people and by ``jq``.

Why the type doubles as the subject: a consumer's filter subjects are then derived from the event
classes it declares, and a stored message can always be decoded from its bytes alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import msgspec


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all events. Subclasses pass ``tag="<domain>.<entity>.<event>"``."""

    id: str = msgspec.field(default_factory=new_id)
    time: datetime = msgspec.field(default_factory=utcnow)
    producer: str = ""
    correlation_id: str = ""
    #: the version of this event's payload contract; see "Event contracts" in the README. Within a
    #: version fields are only added (with defaults); a change that removes, renames or retypes a
    #: field raises it. A class sets its own with ``schema_version: int = 2``.
    schema_version: int = 1

    #: set on subclasses that are stored in the stream (all of them today)
    stored: ClassVar[bool] = True

    @classmethod
    def subject(cls) -> str:
        tag = cls.__struct_config__.tag
        if not isinstance(tag, str):
            raise TypeError(f"{cls.__name__} has no tag")
        return tag

    @property
    def type(self) -> str:
        return self.subject()


E = TypeVar("E", bound=Event)


_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def to_builtins(event: Event) -> dict[str, Any]:
    out = msgspec.to_builtins(event)
    assert isinstance(out, dict)
    return out


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with ``Z``, the one time format of every JSON document we serve."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
