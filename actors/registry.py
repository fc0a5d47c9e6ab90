"""Every actor role, by name, as ``module:Class`` so that ``run.py actor NAME`` imports only one."""

from __future__ import annotations

import importlib

from actors.runtime import Actor

ROLES: dict[str, str] = {
    "watcher": "actors.watcher.actor:WatcherActor",
    "quota_keeper": "actors.quota_keeper.actor:QuotaKeeperActor",
    "variability": "actors.variability.actor:VariabilityActor",
    "mosaicker": "actors.mosaicker.actor:MosaickerActor",
    "alerter": "actors.alerter.actor:AlerterActor",
    "searcher": "actors.searcher.actor:SearcherActor",
    "cadence": "actors.searcher.cadence_actor:CadenceActor",
    "calibrator": "actors.calibrator.actor:CalibratorActor",
    "imager": "actors.imager.actor:ImagerActor",
}


def load(role: str) -> type[Actor]:
    try:
        target = ROLES[role]
    except KeyError:
        raise SystemExit(f"unknown actor {role!r}; known: {', '.join(sorted(ROLES)) or 'none'}") from None
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, Actor)
    return cls
