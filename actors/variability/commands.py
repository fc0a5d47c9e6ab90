"""The variability actor's commands (request/reply on ``cmd.variability.<verb>``), shared with the edge."""

from __future__ import annotations

import msgspec

QUEUE = "variability"
SET_STATUS = "cmd.variability.set_status"


class SetCandidateStatus(msgspec.Struct, kw_only=True):
    """An operator closes (or annotates) an ESE candidate: ``resolved`` or ``false_positive``."""

    candidate_id: int
    status: str
    notes: str | None = None
    operator: str = ""
