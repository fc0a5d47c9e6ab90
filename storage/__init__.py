"""Object storage for uploads and results: one interface (``base.ObjectStorage``), two backends.

``open_storage(settings)`` picks S3 when a bucket is configured and the local directory otherwise.
Every process that touches files (the edge, the quota keeper, the searcher) opens the same storage
from the same settings.
"""

from __future__ import annotations

from collections.abc import Callable

from settings import Settings
from storage.base import (
    MB,
    PART_SIZE,
    SINGLE_PUT_MAX,
    URL_TTL_S,
    MultipartUpload,
    ObjectStorage,
    StorageError,
    parts_for,
)


def open_storage(settings: Settings, base_url: Callable[[], str] | None = None) -> ObjectStorage:
    """The configured storage. ``base_url`` gives the edge's public URL for local signed URLs."""
    if settings.s3_bucket:
        from storage.s3 import S3Storage

        return S3Storage(settings.s3_bucket, endpoint_url=settings.s3_endpoint, region=settings.s3_region)
    from storage.local import LocalStorage
    from storage.signing import Signer, load_secret

    def default_base() -> str:
        return settings.public_url or f"http://{settings.host}:{settings.port}"

    signer = Signer(load_secret(settings.signing_secret, settings.data_dir))
    return LocalStorage(settings.data_dir / "objects", signer, base_url or default_base)


__all__ = [
    "MB",
    "PART_SIZE",
    "SINGLE_PUT_MAX",
    "URL_TTL_S",
    "MultipartUpload",
    "ObjectStorage",
    "StorageError",
    "open_storage",
    "parts_for",
]
