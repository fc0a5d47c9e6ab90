"""SETI filterbank-analysis events."""

from __future__ import annotations

from typing import Any

from schemas.base import Event

#: The exports of a job: download format (the seed's ``format=`` values, plus ``dat``) -> file name.
#: The searcher writes these files and the edge serves them; this table is their contract.
EXPORT_FILES: dict[str, str] = {
    "json": "results.json",
    "csv": "signals.csv",
    "catalog_json": "catalog.json",
    "classified": "classified.json",
    "fits": "catalog.fits",
    "waterfall": "waterfall.png",
    "waterfall_thumb": "waterfall_thumb.png",
    "dat": "hits.dat",
}


#: The exports of a cadence job (``POST /analyze-cadence``): download format -> file name.
CADENCE_EXPORT_FILES: dict[str, str] = {
    "events_csv": "events.csv",
    "events_json": "events.json",
    "events_plots": "event_plots.zip",
}


class JobSubmitted(Event, frozen=True, tag="seti.job.submitted"):
    job_id: str
    user_id: str
    file_key: str
    filename: str
    source_name: str
    file_size: int
    created_at: int
    max_drift: float = 4.0
    min_snr: float = 10.0
    #: the tier's size limit, applied by the searcher to the DECODED data (a compressed .h5 may
    #: declare far more than it stores); 0: no limit (events published before it existed)
    max_data_bytes: int = 0
    #: the client's Idempotency-Key of the /analyze that made the job ("" when none was sent), so
    #: a quota ledger rebuilt from the stream still answers a retry with this job, uncharged
    request_id: str = ""


class CadenceSubmitted(Event, frozen=True, tag="seti.cadence.submitted"):
    """An ON/OFF cadence: its searches are the jobs ``job_ids`` (one per file, in the order observed);
    the cadence itself is the job ``cadence_id``, completed by the event step."""

    cadence_id: str
    user_id: str
    job_ids: list[str]
    file_keys: list[str]
    filenames: list[str]
    on: list[bool]
    source_name: str
    created_at: int
    max_drift: float = 4.0
    min_snr: float = 10.0
    filter_level: int = 3


class JobProgressed(Event, frozen=True, tag="seti.job.progressed"):
    job_id: str
    user_id: str
    percent: float
    stage: str
    coarse_channels_done: int = 0
    coarse_channels_total: int = 0


class JobCompleted(Event, frozen=True, tag="seti.job.completed"):
    job_id: str
    user_id: str
    completed_at: int
    results: dict[str, Any]


class JobFailed(Event, frozen=True, tag="seti.job.failed"):
    """A job that failed.  ``charged`` is False when the service failed it (a crashed or dead-lettered
    worker, a timeout): the quota keeper and the usage read model then give the file back."""

    job_id: str
    user_id: str
    completed_at: int
    error: str
    charged: bool = True


class ExportsWritten(Event, frozen=True, tag="seti.exports.written"):
    """Export files of a job are in object storage under ``keys`` (format -> key)."""

    job_id: str
    user_id: str
    keys: dict[str, str]


class UserUpdated(Event, frozen=True, tag="seti.user.updated"):
    """A SETI user was created or changed tier/role. Carries the whole row (a keyed upsert)."""

    user_id: str
    email: str
    tier: str
    role: str = "user"
    created_at: int = 0


class KeyCreated(Event, frozen=True, tag="seti.key.created"):
    """An API key exists. Only the SHA-256 of the key travels; the key itself is shown once, by its creator."""

    key_id: str
    user_id: str
    name: str
    key_hash: str
    created_at: int
    expires_at: int


class KeyRevoked(Event, frozen=True, tag="seti.key.revoked"):
    key_id: str
    user_id: str
    revoked_at: int


class JobsPruned(Event, frozen=True, tag="seti.job.pruned"):
    """Jobs dropped from a user's history (tier history limit, oldest finished first)."""

    user_id: str
    job_ids: list[str]


class ExportsExpired(Event, frozen=True, tag="seti.exports.expired"):
    """The result files of a job were removed after the tier's retention period."""

    job_id: str
    user_id: str


class ReportSubmitted(Event, frozen=True, tag="seti.report.submitted"):
    report_id: str
    user_id: str
    job_id: str
    error_type: str = ""
    description: str = ""
    metadata: dict[str, Any] = {}
