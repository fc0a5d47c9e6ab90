"""Every event class of the platform, and the decoder that reads any of them from the bus.

This module imports the domain modules (``schemas.dsa``, ``schemas.ops``, ``schemas.seti``) and
they import ``schemas.base``; ``schemas.base`` imports none of them. Keeping the registry here
rather than in ``base`` is what keeps the import graph a tree: a domain module can be imported on
its own, and whoever needs "all events" (the codec, the AsyncAPI catalogue) imports this module.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Union

import msgspec

import schemas.dsa
import schemas.ops
import schemas.seti
from schemas.base import Event

DOMAIN_MODULES = (schemas.dsa, schemas.ops, schemas.seti)


def _all_subclasses(cls: type[Event]) -> list[type[Event]]:
    out: list[type[Event]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def event_types() -> dict[str, type[Event]]:
    """Every concrete event class, by its type (the domain modules are imported above)."""
    return {c.subject(): c for c in _all_subclasses(Event) if isinstance(c.__struct_config__.tag, str)}


class UnknownEvent(ValueError):
    pass


@cache
def _decoder_for(types: tuple[type[Event], ...]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(Union[types])  # type: ignore[valid-type]  # noqa: UP007


def _decoder() -> msgspec.json.Decoder[Any]:
    """The union decoder of every event class imported so far (rebuilt when a module adds one)."""
    return _decoder_for(tuple(event_types().values()))


def decode(data: bytes) -> Event:
    """Typed decode of any event; raises ``msgspec.ValidationError`` / ``DecodeError`` when bad.

    An unknown ``type`` is a ValidationError too ("Invalid value 'x' - at `$.type`").
    """
    event = _decoder().decode(data)
    assert isinstance(event, Event)
    return event


