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
from pathlib import Path


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
