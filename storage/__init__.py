"""Object storage for uploads and results: one interface (``base.ObjectStorage``), three backends.

``open_storage(settings)`` picks the backend ``--storage`` names (``local``, ``nats``, ``s3``); when
it is not set, S3 when a bucket is configured (as before the setting existed) and the local
directory otherwise. Every process that touches files (the edge, the quota keeper, the searcher)
opens the same storage from the same settings; ``storage.check`` verifies at start that it can.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from settings import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client
from storage.base import (
    MB,
    PART_SIZE,
    SINGLE_PUT_MAX,
    URL_TTL_S,
    MultipartUpload,
    ObjectStorage,
    StorageError,
    StorageUnavailable,
    parts_for,
)

BACKENDS = ("local", "nats", "s3")


def backend_name(settings: Settings) -> str:
    """The configured backend; a ValueError naming the setting when it is not one of ``BACKENDS``."""
    name = settings.storage.strip().lower() or ("s3" if settings.s3_bucket else "local")
    if name not in BACKENDS:
        raise ValueError(f"--storage / OBS_STORAGE={settings.storage}: choose one of {', '.join(BACKENDS)}")
    if name == "s3" and not settings.s3_bucket:
        raise ValueError("--storage s3 needs --s3-bucket / OBS_S3_BUCKET")
    return name


def open_storage(
    settings: Settings, base_url: Callable[[], str] | None = None, *, nc: Client | None = None
) -> ObjectStorage:
    """The configured storage. ``base_url`` gives the edge's public URL for signed URLs (local,
    nats); ``nc`` is the process's NATS connection, which the nats backend then shares."""
    name = backend_name(settings)
    if name == "s3":
        from storage.s3 import S3Storage

        return S3Storage(settings.s3_bucket, endpoint_url=settings.s3_endpoint, region=settings.s3_region)
    from storage.local import LocalStorage
    from storage.signing import Signer, load_secret

    def default_base() -> str:
        return settings.public_url or f"http://{settings.host}:{settings.port}"

    signer = Signer(load_secret(settings.signing_secret, settings.data_dir))
    if name == "nats":
        from storage.nats_object import NatsObjectStorage

        return NatsObjectStorage(
            settings.resolved_nats_url(),
            signer,
            base_url or default_base,
            settings.data_dir / "objects-tmp",
            bucket=settings.object_store_bucket,
            replicas=settings.object_store_replicas,
            tls_ca=settings.nats_ca_file,
            nc=nc,
        )
    return LocalStorage(settings.data_dir / "objects", signer, base_url or default_base)


__all__ = [
    "MB",
    "PART_SIZE",
    "SINGLE_PUT_MAX",
    "URL_TTL_S",
    "MultipartUpload",
    "ObjectStorage",
    "StorageError",
    "StorageUnavailable",
    "backend_name",
    "open_storage",
    "parts_for",
]
