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
from functools import cache
from typing import Any, ClassVar, TypeVar, Union

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


def _all_subclasses(cls: type[Event]) -> list[type[Event]]:
    out: list[type[Event]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def event_types() -> dict[str, type[Event]]:
    """Every concrete event class that has been imported, by its type."""
    import schemas.dsa
    import schemas.ops
    import schemas.seti  # noqa: F401

    return {c.subject(): c for c in _all_subclasses(Event) if isinstance(c.__struct_config__.tag, str)}


class UnknownEvent(ValueError):
    pass


@cache
def _decoder_for(types: tuple[type[Event], ...]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(Union[types])  # type: ignore[valid-type]  # noqa: UP007


def _decoder() -> msgspec.json.Decoder[Any]:
    """The union decoder of every event class imported so far (rebuilt when a module adds one)."""
    return _decoder_for(tuple(event_types().values()))


_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """Typed decode of any event; raises ``msgspec.ValidationError`` / ``DecodeError`` when bad.

    An unknown ``type`` is a ValidationError too ("Invalid value 'x' - at `$.type`").
    """
    event = _decoder().decode(data)
    assert isinstance(event, Event)
    return event


def to_builtins(event: Event) -> dict[str, Any]:
    out = msgspec.to_builtins(event)
    assert isinstance(out, dict)
    return out


def iso(dt: datetime) -> str:
    """UTC ISO 8601 with ``Z``, the one time format of every JSON document we serve."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
