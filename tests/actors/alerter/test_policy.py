from __future__ import annotations

import pytest

from actors.alerter.policy import (
    Alert,
    AlertType,
    PolicyConfig,
    PolicyState,
    RateLimit,
    Severity,
    Verdict,
    decide,
    due_summaries,
    release,
    release_source,
)

T = 1_760_000_000.0


def ese(src: str) -> Alert:
    return Alert(AlertType.ESE_CANDIDATE, f"ESE candidate {src}", source_id=src)


def test_one_alert_per_source_per_event():
    s = PolicyState()
    s, v1 = decide(s, ese("A"), T)
    s, v2 = decide(s, ese("A"), T + 86400)  # next day, still active
    s, v3 = decide(s, ese("B"), T + 86400)
    assert (v1, v2, v3) == (Verdict.SEND, Verdict.DUPLICATE, Verdict.SEND)
    s = release_source(s, "ese_candidate", "A")  # resolved / false positive
    s, v4 = decide(s, ese("A"), T + 2 * 86400)
    assert v4 is Verdict.SEND
    assert release(s, "never-seen") is s


def test_pure_and_sourceless_alerts_are_not_deduplicated():
    s0 = PolicyState()
    a = Alert(AlertType.SYSTEM_ERROR, "actor imager stalled")
    s1, v = decide(s0, a, T)
    assert v is Verdict.SEND and s0 == PolicyState()  # input state untouched
    s2, v = decide(s1, a, T + 1)
    assert v is Verdict.SEND
    keyed = Alert(AlertType.SYSTEM_ERROR, "imager stalled", dedup_key="stalled:imager")
    s3, v = decide(s2, keyed, T + 2)
    s3, v2 = decide(s3, keyed, T + 3)
    assert (v, v2) == (Verdict.SEND, Verdict.DUPLICATE)


def test_token_bucket_per_type_and_severity():
    cfg = PolicyConfig(limits={("ese_candidate", "critical"): RateLimit(3, 3600)})
    s = PolicyState()
    verdicts = []
    for i in range(5):
        s, v = decide(s, ese(f"S{i}"), T + i, cfg)
        verdicts.append(v)
    assert verdicts == [Verdict.SEND] * 3 + [Verdict.RATE_LIMITED] * 2
    # Another (type, severity) has its own bucket.
    s, v = decide(s, Alert(AlertType.CALIBRATOR_MISSING, "no cal"), T + 5, cfg)
    assert v is Verdict.SEND
    s, v = decide(s, Alert(AlertType.ESE_CANDIDATE, "x", severity=Severity.INFO, source_id="Z"), T + 5, cfg)
    assert v is Verdict.SEND
    # Refill: one token per 1200 s.
    s, v = decide(s, ese("S9"), T + 1150, cfg)  # refill is one token per 1200 s since T
    assert v is Verdict.RATE_LIMITED
    s, v = decide(s, ese("S10"), T + 1250, cfg)
    assert v is Verdict.SEND
    # A suppressed alert's event is still one event: no repeat later.
    s, v = decide(s, ese("S3"), T + 10_000, cfg)
    assert v is Verdict.DUPLICATE


def test_summary_of_suppressed_alerts():
    cfg = PolicyConfig(limits={("ese_candidate", "critical"): RateLimit(1, 3600)}, summary_after_s=600)
    s = PolicyState()
    for i in range(4):
        s, _ = decide(s, ese(f"S{i}"), T + 10 * i, cfg)
    s, none_yet = due_summaries(s, T + 500, cfg)
    assert none_yet == []
    s, out = due_summaries(s, T + 700, cfg)
    assert len(out) == 1
    summ = out[0]
    assert summ.is_summary and summ.alert_type is AlertType.ESE_CANDIDATE and summ.severity is Severity.CRITICAL
    assert summ.message.startswith("3 ese_candidate alerts (critical) suppressed")
    assert dict(summ.fields)["sources"] == "S1, S2, S3"
    assert summ.key is None
    s, again = due_summaries(s, T + 5000, cfg)
    assert again == []  # the tally was cleared


def test_summary_names_are_bounded():
    cfg = PolicyConfig(limits={("system_error", "error"): RateLimit(1, 3600)}, summary_max_sources=2)
    s = PolicyState()
    for i in range(6):
        s, _ = decide(s, Alert(AlertType.SYSTEM_ERROR, "dead letter", source_id=f"evt{i}"), T, cfg)
    _, out = due_summaries(s, T + cfg.summary_after_s, cfg)
    assert dict(out[0].fields)["sources"] == "evt1, evt2 and 3 more"


def test_validation():
    with pytest.raises(ValueError):
        RateLimit(0, 10)
    with pytest.raises(ValueError):
        Alert(AlertType.SYSTEM_ERROR, "  ")
    with pytest.raises(ValueError):
        Alert("not_a_type", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decide(PolicyState(), ese("A"), float("nan"))
    # A clock stepping backwards does not mint tokens.
    cfg = PolicyConfig(limits={("ese_candidate", "critical"): RateLimit(1, 100)})
    s, _ = decide(PolicyState(), ese("A"), T, cfg)
    s, v = decide(s, ese("B"), T - 1000, cfg)
    assert v is Verdict.RATE_LIMITED
