"""bench/fuzz.py counts the failures schemathesis reports, not its exit code (issue 15).

An earlier 30-minute run counted every round as a failure: schemathesis exits 1 for warnings a
config marks ``fail-on`` too. The banners here are printed by schemathesis' own
``display_final_line``, so a change of its format fails this test rather than the long run.
"""

from __future__ import annotations

import pytest
from schemathesis.cli.output import display_final_line

from bench.fuzz import schemathesis_verdict


def banner(capsys: pytest.CaptureFixture[str], **counts: int) -> str:
    display_final_line(running_time=12.5, total_cases=100, **counts)
    return capsys.readouterr().out


def test_warnings_alone_are_not_failures(capsys: pytest.CaptureFixture[str]) -> None:
    out = "Test cases:\n  100 generated, 100 passed\n" + banner(capsys, failures=0, errors=0, warnings=3)
    verdict = schemathesis_verdict(out, 1)  # exit 1: a fail-on warning
    assert (verdict.failures, verdict.warnings) == (0, 3)
    fail_on = banner(capsys, failures=0, errors=0, warnings=2, exit_code=1)
    assert "Warnings fail the run" in fail_on
    assert schemathesis_verdict(fail_on, 1).failures == 0


def test_failures_and_errors_are_counted_with_their_report(capsys: pytest.CaptureFixture[str]) -> None:
    report = "=== FAILURES ===\n___ GET /api/jobs ___\n1. Server error\n[500] Internal Server Error\n"
    out = report + "=== SUMMARY ===\n\n" + banner(capsys, failures=2, errors=1, warnings=4)
    verdict = schemathesis_verdict(out, 1)
    assert (verdict.failures, verdict.warnings) == (3, 4)
    assert "Server error" in verdict.text and "[500]" in verdict.text


def test_no_issues_and_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    clean = banner(capsys, failures=0, errors=0)
    assert "No issues found" in clean and schemathesis_verdict(clean, 0).failures == 0
    crash = schemathesis_verdict("Traceback (most recent call last):\n  ...\nKeyError: 'x'\n", 2)
    assert crash.failures == 1 and "KeyError" in crash.text
