"""The edge process's GC policy (web.gc_policy): start-up's heap frozen, young collections rarer."""

from __future__ import annotations

import gc
import subprocess
import sys

from tests.conftest import ROOT


def test_the_policy_freezes_startup_and_raises_the_young_threshold() -> None:
    # in a child process: freezing the test runner's own heap would change every later test
    code = (
        "import gc, json\n"
        "junk = [[i] for i in range(10000)]\n"
        "from web.gc_policy import tune_for_latency, YOUNG_THRESHOLD\n"
        "tune_for_latency()\n"
        "print(json.dumps([gc.get_freeze_count(), list(gc.get_threshold()), YOUNG_THRESHOLD]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    frozen, threshold, young = __import__("json").loads(out.stdout)
    assert frozen > 10000  # what start-up allocated is out of the collector's sight
    assert threshold[0] == young > gc.get_threshold()[0]
