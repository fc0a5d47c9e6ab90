"""SETI service tiers: what each one may upload, run, keep and pay.

Researcher is exactly as seed 004 shows it. The others are chosen to bracket it: free is enough to
try the service on a few small files (and cannot create API keys), institution is a group's
allowance, enterprise a survey's. Job-history limits are the seed's 10 / 50 / 200 / 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: jobs one user may have submitted-or-processing at once, whatever the tier (seed 004: "max 5")
MAX_RUNNING_JOBS = 5


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    files_per_month: int
    max_file_mb: int
    price: str
    retention_days: int
    history_limit: int
    can_create_keys: bool = True

    def details(self) -> dict[str, Any]:
        """The ``tier_details`` object of ``GET /usage``."""
        return {
            "files_per_month": self.files_per_month,
            "max_file_mb": self.max_file_mb,
            "price": self.price,
            "retention_days": self.retention_days,
        }


TIERS: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier("free", 10, 100, "$0 USD/mo", 7, 10, can_create_keys=False),
        Tier("researcher", 500, 1024, "$99 USD/mo", 90, 50),
        Tier("institution", 2500, 4096, "$499 USD/mo", 180, 200),
        Tier("enterprise", 20000, 16384, "$1999 USD/mo", 365, 500),
    )
}

ROLES = ("user", "operator")


def get(name: str) -> Tier:
    try:
        return TIERS[name]
    except KeyError:
        raise ValueError(f"unknown tier {name!r}; known: {', '.join(TIERS)}") from None
