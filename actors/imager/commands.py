"""The imager's commands (request/reply on ``cmd.imager.<verb>``), shared with the edge."""

from __future__ import annotations

from typing import Any

import msgspec

QUEUE = "imager"
CREATE_JOB = "cmd.imager.create_job"


class CreateJob(msgspec.Struct, kw_only=True):
    """Image these Measurement Sets with these parameters (validated by the edge, again here)."""

    job_type: str = "image"
    ms_paths: list[str]
    parameters: dict[str, Any] = {}
    operator: str = ""
