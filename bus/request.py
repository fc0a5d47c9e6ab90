"""Commands: request/reply on ``cmd.<actor>.<verb>``, answered by one instance of the actor role.

A command is not a fact, so it is not stored; the actor publishes the facts that follow from it
(``seti.job.submitted`` after an admission, say). Every instance subscribes in a queue group named
after its role, so each command is answered exactly once.

Replies are a ``CommandReply``: ``ok`` with a ``data`` object, or an HTTP-like ``status`` and an
``error`` message that the edge turns into its error envelope unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

import logs

log = logs.get("bus.request")

T = TypeVar("T")


class CommandReply(msgspec.Struct, kw_only=True):
    ok: bool
    status: int = 200
    error: str = ""
    code: str = ""
    data: dict[str, Any] = {}


class CommandError(Exception):
    """Raised by a command handler to answer with an error status (404, 413, 429, ...)."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class CommandUnavailable(Exception):
    """No instance of the actor answered in time."""


_encoder = msgspec.json.Encoder()
_reply_decoder = msgspec.json.Decoder(CommandReply)


async def request(nc: Client, subject: str, payload: Any, *, timeout: float = 10.0) -> CommandReply:
    try:
        msg = await nc.request(subject, _encoder.encode(payload), timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        raise CommandUnavailable(f"no answer on {subject}: {type(exc).__name__}") from exc
    return _reply_decoder.decode(msg.data)


async def serve(
    nc: Client,
    subject: str,
    queue: str,
    payload_type: type[T],
    handler: Callable[[T], Awaitable[dict[str, Any]]],
) -> Subscription:
    decoder = msgspec.json.Decoder(payload_type)

    async def on_request(msg: Msg) -> None:
        try:
            payload = decoder.decode(msg.data)
            data = await handler(payload)
            reply = CommandReply(ok=True, data=data)
        except msgspec.ValidationError as exc:
            reply = CommandReply(ok=False, status=400, error=str(exc), code="BAD_COMMAND")
        except CommandError as exc:
            reply = CommandReply(ok=False, status=exc.status, error=exc.message, code=exc.code)
        except Exception:
            log.exception("command failed", subject=subject)
            reply = CommandReply(ok=False, status=500, error="internal error", code="INTERNAL_ERROR")
        if msg.reply:
            await msg.respond(_encoder.encode(reply))

    return await nc.subscribe(subject, queue=queue, cb=on_request)
