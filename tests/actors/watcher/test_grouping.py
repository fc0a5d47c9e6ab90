from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.watcher.grouping import (
    DuplicateSubband,
    GroupCompleted,
    GroupFailed,
    GroupFailedEvent,
    GroupingConfig,
    GroupPending,
    GroupRetried,
    GroupStarted,
    GroupState,
    LateSubband,
    Rejected,
    SubbandSeen,
    Tick,
    TimeoutPolicy,
    apply,
    initial_state,
    outstanding,
    rebuild,
)

T0 = datetime(2025, 10, 24, 14, 0, 0, tzinfo=UTC)
NOW = 1_800_000_000.0


def seen(sb: int, offset_s: float = 0.0, at: float = NOW, tag: str = "", cal: str | None = None) -> SubbandSeen:
    t = T0 + timedelta(seconds=offset_s)
    ts = t.strftime("%Y-%m-%dT%H:%M:%S")
    return SubbandSeen(f"/in/{ts}_sb{sb:02d}{tag}.hdf5", ts, t.timestamp(), sb, at, cal)


def fold(events, config=None):
    st = initial_state(config)
    out = []
    for e in events:
        st, d = apply(st, e)
        out.extend(d)
    return st, out


def test_collecting_to_pending_with_jitter_and_tolerance() -> None:
    evs = [seen(sb, offset_s=(sb % 5) * 3 - 6, at=NOW + sb) for sb in range(15)]
    st, dec = fold(evs)
    assert dec == []
    (g,) = st.groups.values()
    assert g.state is GroupState.COLLECTING and g.subbands_present == 15
    assert st.counts()["collecting"] == 1
    st, dec = apply(st, seen(15, offset_s=54, at=NOW + 20, cal="3C286"))  # 60 s from the anchor
    (p,) = dec
    assert isinstance(p, GroupPending)
    assert p.subbands == tuple(range(16)) and p.missing == () and len(p.files) == 16
    assert p.has_calibrator and p.calibrator == "3C286"
    assert st.groups[p.group_id].state is GroupState.PENDING
    # outside the ±60 s tolerance: a new group
    st, dec = apply(st, seen(0, offset_s=61 - 6, at=NOW + 30))  # 61 s from the anchor (-6 s)
    assert len(st.groups) == 2 and dec == []


def test_pending_in_progress_completed_failed_retry() -> None:
    st, dec = fold([seen(sb) for sb in range(16)])
    gid = dec[0].group_id
    st, d = apply(st, GroupStarted(gid, NOW + 1))
    assert d == [] and st.groups[gid].state is GroupState.IN_PROGRESS
    st2, d = apply(st, GroupCompleted(gid, NOW + 2, "/ms/x.ms"))
    assert st2.groups[gid].state is GroupState.COMPLETED and st2.groups[gid].ms_path == "/ms/x.ms"
    st3, d = apply(st, GroupFailedEvent(gid, NOW + 2, "conversion failed"))
    assert st3.groups[gid].state is GroupState.FAILED and st3.groups[gid].reason == "conversion failed"
    st4, d = apply(st3, GroupRetried(gid, NOW + 3))
    assert st4.groups[gid].state is GroupState.PENDING and isinstance(d[0], GroupPending)
    # impossible transitions are rejected, not raised
    _, d = apply(st2, GroupStarted(gid, NOW + 4))
    assert isinstance(d[0], Rejected)
    _, d = apply(st2, GroupStarted("2000-01-01T00:00:00", NOW + 4))
    assert isinstance(d[0], Rejected)
    # idempotent
    st5, d = apply(st2, GroupCompleted(gid, NOW + 2, "/ms/x.ms"))
    assert st5 == st2 and d == []


def test_duplicates_and_same_file_twice() -> None:
    st, _ = fold([seen(sb) for sb in range(5)])
    st2, d = apply(st, seen(3))  # the same path again: queued once, nothing to say
    assert st2 == st and d == []
    st3, d = apply(st, seen(3, offset_s=2, tag="_copy"))
    (dup,) = d
    assert isinstance(dup, DuplicateSubband) and dup.subband == 3 and dup.existing_path.endswith("_sb03.hdf5")
    assert st3.groups[dup.group_id].files[3] == dup.existing_path


def test_late_subband() -> None:
    st, dec = fold([seen(sb) for sb in range(16) if sb != 7], GroupingConfig(timeout_s=600))
    st, dec = apply(st, Tick(NOW + 601))
    assert isinstance(dec[0], GroupFailed)
    st, dec = apply(st, seen(7, at=NOW + 3 * 3600))
    (late,) = dec
    assert isinstance(late, LateSubband) and late.subband == 7 and late.delay_s >= 3 * 3600
    assert late.group_state == "failed"
    assert 7 not in st.groups[late.group_id].files


def test_timeout_fail_policy() -> None:
    cfg = GroupingConfig(timeout_s=600, timeout_policy=TimeoutPolicy.FAIL)
    st, _ = fold([seen(sb) for sb in range(12)], cfg)
    st, d = apply(st, Tick(NOW + 599))
    assert d == []
    st, d = apply(st, Tick(NOW + 600))
    (f,) = d
    assert isinstance(f, GroupFailed) and f.missing == (12, 13, 14, 15) and "timed out" in f.reason
    assert st.counts()["failed"] == 1


def test_timeout_partial_policy() -> None:
    cfg = GroupingConfig(timeout_s=600, timeout_policy=TimeoutPolicy.PROCESS_PARTIAL, min_subbands_partial=10)
    st, _ = fold([seen(sb) for sb in range(12)], cfg)
    st, d = apply(st, Tick(NOW + 700))
    (p,) = d
    assert isinstance(p, GroupPending) and p.missing == (12, 13, 14, 15) and len(p.files) == 12
    assert st.groups[p.group_id].state is GroupState.PENDING
    # too few subbands: fails even under the partial policy
    st, _ = fold([seen(sb) for sb in range(3)], cfg)
    _, d = apply(st, Tick(NOW + 700))
    assert isinstance(d[0], GroupFailed)


def test_rebuild_from_events() -> None:
    cfg = GroupingConfig(timeout_s=600)
    evs: list = [seen(sb, at=NOW + sb) for sb in range(16)]
    evs += [seen(sb, offset_s=400, at=NOW + 400) for sb in range(4)]
    live, published = fold(evs, cfg)
    gid = published[0].group_id
    tail = [GroupStarted(gid, NOW + 30), GroupCompleted(gid, NOW + 60, "/ms/a.ms"), Tick(NOW + 1100)]
    live, more = fold(evs + tail, cfg)
    # replaying inputs alone, or inputs plus the published decisions, gives the same state
    assert rebuild(evs + tail, cfg) == live
    journal = evs + published + tail + [d for d in more if not isinstance(d, Rejected)]
    assert rebuild(journal, cfg) == live
    assert live.counts() == {"collecting": 0, "pending": 0, "in_progress": 0, "completed": 1, "failed": 1, "total": 2}
    # a pending group survives a restart and is offered again
    st = rebuild([seen(sb) for sb in range(16)], cfg)
    (again,) = outstanding(st)
    assert again.subbands == tuple(range(16))
    # a replayed GroupPending for a group whose files were not replayed recreates it
    st = rebuild([published[0]], cfg)
    assert st.groups[gid].state is GroupState.PENDING and st.groups[gid].subbands_present == 16
    assert [g.group_id for g in live.recent(1)] == [max(live.groups)]
