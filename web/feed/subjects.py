"""Subject filters with NATS wildcards, and who may see which stored event.

A subscriber names what it wants the way it would to NATS (``dsa.image.ready``, ``dsa.ese.>``,
``seti.job.*``); the feed matches those filters itself, so they mean exactly what they mean on the
bus. What a caller may see is decided per domain (the first token of the subject):

* ``dsa.*``  as the dashboard's reads: open, or any valid key when ``--read-auth`` is on;
* ``seti.*`` only events whose ``user_id`` is the caller's own (any valid key), all for an operator;
* ``ops.*``  operators only (dead letters carry other users' payloads, alerts are operations').

A filter that can only match domains the caller may not see is refused (403) rather than
answered with silence, so a mistaken key shows up at once; a broad filter (``>``) is narrowed to
the visible domains without complaint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

DOMAINS = ("dsa", "seti", "ops")


class FilterError(ValueError):
    pass


def parse_filter(text: str) -> tuple[str, ...]:
    """A NATS subject filter as tokens; ``*`` is one token, ``>`` the rest (last token only)."""
    text = text.strip()
    tokens = tuple(text.split("."))
    if not text or any(t == "" for t in tokens):
        raise FilterError(f"invalid subject filter {text!r}: empty token")
    for i, t in enumerate(tokens):
        if any(c.isspace() for c in t):
            raise FilterError(f"invalid subject filter {text!r}: whitespace")
        if ">" in t and (t != ">" or i != len(tokens) - 1):
            raise FilterError(f"invalid subject filter {text!r}: '>' must be a whole, last token")
        if "*" in t and t != "*":
            raise FilterError(f"invalid subject filter {text!r}: '*' must be a whole token")
    return tokens


def matches(filter_tokens: tuple[str, ...], subject_tokens: tuple[str, ...] | list[str]) -> bool:
    for i, f in enumerate(filter_tokens):
        if f == ">":
            return len(subject_tokens) > i
        if i >= len(subject_tokens):
            return False
        if f != "*" and f != subject_tokens[i]:
            return False
    return len(filter_tokens) == len(subject_tokens)


def domains_of(filter_tokens: tuple[str, ...]) -> set[str]:
    first = filter_tokens[0]
    if first in ("*", ">"):
        return set(DOMAINS)
    return {first} & set(DOMAINS)


@dataclass(frozen=True, slots=True)
class Viewer:
    """What one caller may see: the domains, and whose SETI events (None: everybody's)."""

    domains: frozenset[str]
    seti_owner: str | None


@dataclass(frozen=True, slots=True)
class Selection:
    """A client's filters narrowed to what it may see. Hashable: clients with equal selections share work."""

    filters: tuple[tuple[str, ...], ...]
    viewer: Viewer

    @property
    def nats_filters(self) -> list[str]:
        """The filters as NATS subjects, for a catch-up consumer's ``filter_subjects``."""
        out: list[str] = []
        for f in self.filters:
            if f[0] == ">":
                out += [d + ".>" for d in self.viewer.domains]
            elif f[0] == "*":
                out += [".".join((d, *f[1:])) for d in self.viewer.domains]
            elif f[0] in self.viewer.domains:
                out.append(".".join(f))
        return sorted(set(out))

    def admits(self, subject: str, owner: str | None) -> bool:
        tokens = subject.split(".")
        if tokens[0] not in self.viewer.domains:
            return False
        if tokens[0] == "seti" and self.viewer.seti_owner is not None and owner != self.viewer.seti_owner:
            return False
        return any(matches(f, tokens) for f in self.filters)


def select(raw_filters: Iterable[str], viewer: Viewer) -> Selection:
    """Parse and narrow ``raw_filters`` (comma-separated allowed); FilterError / PermissionError when refused."""
    parsed: list[tuple[str, ...]] = []
    for raw in raw_filters:
        for part in raw.split(","):
            if part.strip():
                parsed.append(parse_filter(part))
    if not parsed:
        parsed = [(">",)]
    for f in parsed:
        wanted = domains_of(f)
        if not wanted:
            raise FilterError(f"subject filter {'.'.join(f)!r} matches no stored subject (dsa.>, seti.>, ops.>)")
        if not wanted & viewer.domains:
            raise PermissionError(
                f"subject filter {'.'.join(f)!r} needs "
                + ("an operator key" if wanted == {"ops"} else "an API key that may read it")
            )
    return Selection(tuple(dict.fromkeys(parsed)), viewer)


class _Owner(msgspec.Struct):
    user_id: str = ""


_owner_decoder = msgspec.json.Decoder(_Owner)


def owner_of(subject: str, data: bytes) -> str | None:
    """The SETI user an event belongs to (every ``seti.*`` event carries ``user_id``); None elsewhere."""
    if not subject.startswith("seti."):
        return None
    try:
        return _owner_decoder.decode(data).user_id
    except msgspec.MsgspecError:
        return ""
