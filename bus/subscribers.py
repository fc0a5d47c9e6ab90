"""Read-only bus access for in-facility subscribers: a NATS user that may read ``dsa.>`` and nothing else.

    creds = new_subscriber("lofar-trigger")
    creds.config_entry(platform=False)   # the block to add to nats-server's authorization.users
    creds.password                       # shown once; the server config holds only its bcrypt hash

What the permissions allow, and why each line (NATS checks every publish, including the
JetStream API requests, which are publishes to ``$JS.API.…``):

* subscribe ``dsa.>``: live DSA events on core NATS;
* subscribe ``_INBOX_<name>.>``: replies to its own API requests and its consumers' deliveries.
  Its own inbox prefix (nats-py ``inbox_prefix=``), not ``_INBOX.>``, so it cannot overhear the
  replies of anybody else's requests (user commands travel by request/reply);
* publish ``$JS.API.INFO`` and ``$JS.API.STREAM.INFO.EVENTS``: what a client library asks first;
* publish ``$JS.API.CONSUMER.CREATE.EVENTS.<own>.dsa.>``: create (or update) a consumer with one of
  its own names (``consumer_names``) and a single filter under ``dsa.``. The server refuses a
  create whose configured filter differs from the one in the subject, so the filter cannot be
  widened to ``seti.>``; the legacy ``CONSUMER.DURABLE.CREATE`` and filterless forms are refused;
* publish ``$JS.API.CONSUMER.INFO|MSG.NEXT.EVENTS.<own>`` and ``$JS.ACK.EVENTS.<own>.>``:
  pull from, inspect and acknowledge its own consumers; ``$JS.FC.>`` answers flow control;
* nothing else: no publish to ``dsa.>``/``seti.>``/``ops.>``, no ``STREAM.DELETE``/``PURGE``,
  no ``CONSUMER.DELETE``, no ``DIRECT.GET``/``MSG.GET`` (those would read SETI messages by sequence).
  Idle consumers go away by ``inactive_threshold``; an operator removes durable ones.

Auth in NATS is all-or-nothing per server: once ``authorization`` lists users, the platform's own
processes need a user too (``platform_user``), with every permission.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import bcrypt

from bus.stream import STREAM

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"subscriber name {name!r}: use 1-32 of a-z, 0-9 and _ (starting with a letter or digit)")
    return name


def inbox_prefix(name: str) -> str:
    return f"_INBOX_{name}"


MAX_CONSUMERS = 5


def consumer_names(name: str) -> list[str]:
    """The consumers a subscriber may own: ``<name>``, ``<name>_2`` … ``<name>_5``.

    A fixed list because NATS wildcards are whole tokens (``name-*`` is not a pattern) and a
    consumer's name is one token of the API subject: were any name allowed, a subscriber could
    "create" a consumer named like an actor's and so update (re-filter) the platform's own.
    """
    return [name] + [f"{name}_{i}" for i in range(2, MAX_CONSUMERS + 1)]


def permissions(name: str, subjects: str = "dsa.>") -> dict[str, Any]:
    check_name(name)
    own = consumer_names(name)
    return {
        "publish": {
            "allow": [
                "$JS.API.INFO",
                f"$JS.API.STREAM.INFO.{STREAM}",
                *(f"$JS.API.CONSUMER.CREATE.{STREAM}.{c}.{subjects}" for c in own),
                *(f"$JS.API.CONSUMER.INFO.{STREAM}.{c}" for c in own),
                *(f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{c}" for c in own),
                *(f"$JS.ACK.{STREAM}.{c}.>" for c in own),
                "$JS.FC.>",
            ],
        },
        "subscribe": {"allow": [subjects, f"{inbox_prefix(name)}.>"]},
    }


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    password_bcrypt: str
    perms: dict[str, Any] | None  # None: every permission (the platform's own user)

    def config_entry(self) -> str:
        """One entry of nats-server's ``authorization { users = [ … ] }`` (the hash, never the password)."""
        fields = [f'user: "{self.user}"', f'password: "{self.password_bcrypt}"']
        if self.perms is not None:
            fields.append("permissions: " + _conf(self.perms))
        return "{ " + ", ".join(fields) + " }"


def _conf(value: Any) -> str:
    """nats-server config syntax (a superset of JSON) for the permissions map."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {_conf(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_conf(v) for v in value) + "]"
    return f'"{value}"'


def _hash(password: str) -> str:
    # nats-server accepts bcrypt hashes ($2a$/$2b$) in place of a password; cost 11 as its tool uses
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(11)).decode()


def new_subscriber(name: str, subjects: str = "dsa.>") -> Credentials:
    password = secrets.token_urlsafe(24)
    return Credentials(check_name(name), password, _hash(password), permissions(name, subjects))


def platform_user(name: str = "platform") -> Credentials:
    password = secrets.token_urlsafe(24)
    return Credentials(name, password, _hash(password), None)


def authorization_block(users: list[Credentials]) -> str:
    """The ``authorization`` section of a nats-server config for these users."""
    return "authorization {\n  users = [\n" + "".join(f"    {u.config_entry()}\n" for u in users) + "  ]\n}\n"


def instructions(creds: Credentials, nats_url: str) -> str:
    """What ``run.py subscribers create NAME`` prints: for the operator, and for the subscriber."""
    return f"""# Read-only subscriber {creds.user!r}: may read dsa.> and create its own consumers on {STREAM}.

## For the nats-server operator
# Add this entry to the server's authorization users (beside the platform's own user; once a
# server has users, every client must log in), then reload the server (nats-server --signal reload):

{creds.config_entry()}

## For the subscriber (shown once: the server keeps only the bcrypt hash)
NATS_URL={nats_url}
NATS_USER={creds.user}
NATS_PASSWORD={creds.password}
NATS_INBOX_PREFIX={inbox_prefix(creds.user)}
CONSUMER_NAMES={",".join(consumer_names(creds.user))}

# nats-py:
#   nc = await nats.connect(NATS_URL, user=NATS_USER, password=NATS_PASSWORD, inbox_prefix=NATS_INBOX_PREFIX)
#   js = nc.jetstream()
#   await js.add_consumer("{STREAM}", ConsumerConfig(name="{creds.user}",
#       durable_name="{creds.user}", filter_subject="dsa.ese.updated",
#       ack_policy=AckPolicy.EXPLICIT))
#   sub = await js.pull_subscribe_bind("{creds.user}", stream="{STREAM}")
# See examples/nats_subscriber.py.
"""
