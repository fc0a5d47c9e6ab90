"""API keys: generation, the stored hash, and masking.

A key is ``sk_live_`` + 32 random bytes (URL-safe base64, 43 characters); its ``key_id`` is 8 hex
characters. Only SHA-256 of the key is ever stored or published.

Why a fast, unsalted hash is right here: slow hashes (bcrypt, argon2) and salts exist to protect
low-entropy secrets that people choose. A 256-bit random key cannot be guessed or looked up in a
table, so SHA-256 is as strong as it needs to be, and it lets the edge find a key by its hash in
one indexed lookup on every request without spending 100 ms of CPU on it. No pepper either: the
hash travels in ``seti.key.created`` to every edge, which would then all need the pepper too.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sk_live_"
KEY_BYTES = 32
TTL_MIN_DAYS, TTL_MAX_DAYS, TTL_DEFAULT_DAYS = 1, 365, 90


def generate() -> tuple[str, str]:
    """A new ``(api_key, key_id)``."""
    return PREFIX + secrets.token_urlsafe(KEY_BYTES), secrets.token_hex(4)


def key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    return text.startswith(PREFIX) and 40 <= len(text) <= 200


def check_ttl(ttl_days: int) -> int:
    if not TTL_MIN_DAYS <= ttl_days <= TTL_MAX_DAYS:
        raise ValueError(f"ttl_days must be between {TTL_MIN_DAYS} and {TTL_MAX_DAYS} (got {ttl_days})")
    return ttl_days
