"""The mosaicker's commands (request/reply on ``cmd.mosaicker.<verb>``), shared with the edge."""

from __future__ import annotations

import msgspec

QUEUE = "mosaicker"
GENERATE = "cmd.mosaicker.generate"


class Generate(msgspec.Struct, kw_only=True):
    """Mosaic the tiles observed in [start_mjd, end_mjd] pointing within [dec_min, dec_max]."""

    start_mjd: float
    end_mjd: float
    dec_min: float | None = None
    dec_max: float | None = None
    operator: str = ""
