"""SETI filterbank-analysis events."""

from __future__ import annotations

from typing import Any

from schemas.base import Event


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
    job_id: str
    user_id: str
    completed_at: int
    error: str


class ExportsWritten(Event, frozen=True, tag="seti.exports.written"):
    """Export files of a job are in object storage under ``keys`` (format -> key)."""

    job_id: str
    user_id: str
    keys: dict[str, str]
