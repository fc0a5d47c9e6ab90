"""structlog set-up shared by every process.

JSON lines when stdout is not a terminal (what log shippers want), readable lines when it is.
A redaction processor runs before rendering so that no API key, signature or webhook URL reaches a
log, whatever a caller passes: keys whose names look secret are masked, and any value that looks
like one of our API keys is masked wherever it appears.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_NAMES = re.compile(r"(api_?key|secret|password|token|authorization|signature|webhook|sig)$", re.I)
_SECRET_VALUES = re.compile(
    r"(sk_live_[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+|(https://hooks\.slack\.com/)\S+|([?&]sig=)[^&\s]+"
)


def _mask_value(value: str) -> str:
    return _SECRET_VALUES.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", value)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if _SECRET_NAMES.search(key) and value:
            event_dict[key] = "***"
        elif isinstance(value, str):
            event_dict[key] = _mask_value(value)
    return event_dict


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured
    (a test harness or a daemon may swap it; writing to a stale, closed stream would fail)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", *, json: bool | None = None) -> None:
    if json is None:
        json = not sys.stderr.isatty()
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through the stdlib; send them through the same redaction.
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")


def get(name: str) -> Any:
    return structlog.get_logger(name)
