"""HMAC-SHA256 signatures for the local backend's upload and download URLs.

A URL carries its method, key, expiry and size limit (and, for a multipart part, the upload id and
part number); the signature covers all of them, so changing any one of them makes it invalid.

The secret is ``--signing-secret`` when given (required when several edges on different hosts
must accept each other's URLs), otherwise one generated once and kept at
``DATA/secrets/signing.key`` (mode 0600), shared by every process on the same data dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlencode

from storage.base import URL_TTL_S, check_key


def load_secret(configured: str, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "secrets" / "signing.key"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # first process wins
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    for _ in range(50):  # another process may be between create and write
        text = path.read_text().strip()
        if text:
            return text.encode()
        time.sleep(0.01)
    raise RuntimeError(f"signing secret at {path} is empty")


def _message(*fields: object) -> bytes:
    return "\n".join(str(f) for f in fields).encode()


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, method: str, key: str, expires: int, max_bytes: int, upload_id: str = "", part: int = 0) -> str:
        msg = _message(method.upper(), key, expires, max_bytes, upload_id, part)
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def verify(
        self, signature: str, method: str, key: str, expires: int, max_bytes: int, upload_id: str = "", part: int = 0
    ) -> bool:
        expected = self.sign(method, key, expires, max_bytes, upload_id, part)
        return hmac.compare_digest(expected, signature)


def expired(expires: int) -> bool:
    return expires < int(time.time())


class EdgeSignedUrls:
    """The signed ``/objects/{key}`` URLs of a backend whose uploads and downloads go through the
    edge (local directory, JetStream object store): one implementation, so what one backend signs
    the edge verifies the same way for the other. Needs ``signer`` and ``base_url``."""

    signer: Signer
    base_url: Callable[[], str]

    def _url(self, key: str, params: dict[str, str | int]) -> str:
        return f"{self.base_url().rstrip('/')}/objects/{quote(key)}?{urlencode(params)}"

    async def presign_put(self, key: str, *, max_bytes: int, expires_in: int = URL_TTL_S) -> str:
        check_key(key)
        expires = int(time.time()) + expires_in
        sig = self.signer.sign("PUT", key, expires, max_bytes)
        return self._url(key, {"X-Expires": expires, "X-Max-Bytes": max_bytes, "X-Signature": sig})

    async def presign_get(self, key: str, *, filename: str, expires_in: int = URL_TTL_S) -> str:
        check_key(key)
        expires = int(time.time()) + expires_in
        sig = self.signer.sign("GET", key, expires, 0)
        return self._url(key, {"X-Expires": expires, "X-Signature": sig, "filename": filename})

    def _part_urls(self, key: str, upload_id: str, parts: int, part_size: int, expires_in: int) -> list[tuple[int, str]]:
        """One signed PUT URL per part of a multipart upload, each capped at ``part_size``."""
        expires = int(time.time()) + expires_in
        urls = []
        for n in range(1, parts + 1):
            sig = self.signer.sign("PUT", key, expires, part_size, upload_id, n)
            params: dict[str, str | int] = {
                "uploadId": upload_id,
                "partNumber": n,
                "X-Expires": expires,
                "X-Max-Bytes": part_size,
                "X-Signature": sig,
            }
            urls.append((n, self._url(key, params)))
        return urls
