"""The event feed over real HTTP against a real nats-server: filters, starts, resume, isolation, slow clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bus import Bus
from bus.replay import StoredMessage
from bus.stream import STREAM
from schemas.dsa import EseCandidateUpdated, ImageReady
from schemas.ops import AlertRaised
from schemas.seti import JobProgressed, JobSubmitted
from tests.web.feed_helpers import make_user, no_more_sse, read_sse
from web.feed.hub import FeedClient, FeedHub, make_item
from web.feed.subjects import Viewer, select

EdgeFactory = Callable[..., Awaitable[Any]]


def image(i: int) -> ImageReady:
    return ImageReady(
        path=f"/data/images/img{i}.fits",
        group_id=f"g{i}",
        mjd=60000.0 + i,
        noise_jy=1e-3,
        bmaj_deg=0.01,
        bmin_deg=0.01,
        bpa_deg=0.0,
        n_sources_5sigma=3,
    )


def candidate(i: int) -> EseCandidateUpdated:
    return EseCandidateUpdated(
        candidate_id=i,
        source_id=f"src{i}",
        ra_deg=10.0,
        dec_deg=33.0,
        status="active",
        first_detection_at="2026-01-01T00:00:00Z",
        last_detection_at="2026-01-01T00:00:00Z",
        max_sigma_dev=6.0,
        baseline_flux_jy=0.1,
        peak_flux_jy=0.2,
    )


def job(user_id: str, job_id: str, filename: str) -> JobSubmitted:
    return JobSubmitted(
        job_id=job_id,
        user_id=user_id,
        file_key=f"uploads/{user_id}/{filename}",
        filename=filename,
        source_name="Voyager1",
        file_size=1000,
        created_at=1,
    )


async def publish_all(bus: Bus, events: list[Any]) -> list[int]:
    return [(await bus.publish(e)).seq for e in events]


async def test_sse_filters_since_seq_and_resume_by_last_event_id(bus: Bus, edge_factory: EdgeFactory) -> None:
    edge = await edge_factory()
    seqs = await publish_all(
        bus, [image(1), candidate(1), image(2), AlertRaised(alert_type="x", severity="info", message="m"), image(3)]
    )
    image_seqs = [seqs[0], seqs[2], seqs[4]]
    async with aiohttp.ClientSession() as s:
        url = edge.url + "/api/events"
        async with s.get(url, params={"subject": "dsa.image.ready", "since_seq": "1"}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/event-stream")
            got = await read_sse(r, 2)
        assert [int(e.id) for e in got] == image_seqs[:2]
        assert [e.data["seq"] for e in got] == image_seqs[:2]
        assert got[0].data["subject"] == "dsa.image.ready"
        assert got[0].data["event"]["path"] == "/data/images/img1.fits"
        assert got[0].data["event"]["type"] == "dsa.image.ready"
        assert got[0].data["event"]["schema_version"] == 1
        assert datetime.fromisoformat(got[0].data["time"].replace("Z", "+00:00")).tzinfo is not None

        # Disconnected after the second image; two more images and a candidate arrive meanwhile.
        more = await publish_all(bus, [image(4), candidate(2), image(5)])
        async with s.get(
            url,
            params={"subject": "dsa.image.ready,dsa.ese.>", "since_seq": "1"},
            headers={"Last-Event-ID": got[-1].id},
        ) as r:
            resumed = await read_sse(r, 4)
            assert [int(e.id) for e in resumed] == [seqs[4], *more]
            # then live: the next one arrives on the same stream, nothing in between
            live = await publish_all(bus, [image(6)])
            nxt = await read_sse(r, 1)
            assert [int(e.id) for e in nxt] == live
            assert await no_more_sse(r)


async def test_sse_new_only_and_since_time(bus: Bus, edge_factory: EdgeFactory) -> None:
    edge = await edge_factory()
    await publish_all(bus, [image(1), image(2)])
    cut = datetime.now(UTC)
    await asyncio.sleep(0.05)
    later = await publish_all(bus, [image(3)])
    async with aiohttp.ClientSession() as s:
        async with s.get(edge.url + "/api/events", params={"subject": "dsa.>"}) as r:
            await asyncio.sleep(0.3)  # connected: from now on only
            fresh = await publish_all(bus, [candidate(7)])
            got = await read_sse(r, 1)
            assert [int(e.id) for e in got] == fresh
        async with s.get(edge.url + "/api/events", params={"subject": "dsa.image.*", "since": cut.isoformat()}) as r:
            got = await read_sse(r, 1)
            assert [int(e.id) for e in got] == later
            assert await no_more_sse(r)


async def test_resume_across_an_edge_restart_has_no_gap_and_no_duplicate(bus: Bus, edge_factory: EdgeFactory) -> None:
    first = await edge_factory()
    seqs = await publish_all(bus, [image(i) for i in range(30)])
    async with aiohttp.ClientSession() as s:
        async with s.get(first.url + "/api/events", params={"subject": "dsa.>", "since_seq": "0"}) as r:
            got = await read_sse(r, 12)
            last_id = got[-1].id
            # an open feed does not hold the edge's shutdown up: its stream ends promptly
            t0 = asyncio.get_running_loop().time()
            await first.stop()
            assert asyncio.get_running_loop().time() - t0 < 5.0
        # events stored while no edge runs, then a new edge (fresh process state, same stream)
        during = await publish_all(bus, [image(i) for i in range(30, 60)])
        second = await edge_factory()
        async with s.get(
            second.url + "/api/events",
            params={"subject": "dsa.>", "since_seq": "0"},
            headers={"Last-Event-ID": last_id},
        ) as r:
            rest = await read_sse(r, 48)
            after = await publish_all(bus, [image(99)])
            live = await read_sse(r, 1)
    ids = [int(e.id) for e in got + rest + live]
    assert ids == seqs + during + after  # every one, once, in order
    assert len(set(ids)) == len(ids)


async def test_a_start_the_stream_no_longer_holds_is_told_its_gap(bus: Bus, edge_factory: EdgeFactory) -> None:
    """Retention removed the first events: a feed asking for them gets one gap notice naming the
    missing sequences, then everything the stream still holds - never a silent jump forward."""
    edge = await edge_factory()
    seqs = await publish_all(bus, [image(i) for i in range(10)])
    await bus.js.purge_stream(STREAM, seq=seqs[6])  # what max_age / max_bytes do to the oldest events
    async with aiohttp.ClientSession() as s:
        url = edge.url + "/api/events"
        async with s.get(url, params={"subject": "dsa.>", "since_seq": str(seqs[2])}) as r:
            got = await read_sse(r, 5)
            assert await no_more_sse(r)
        gap = got[0]
        assert gap.event == "gap"
        assert gap.data["gap"] == {"from_seq": seqs[2], "to_seq": seqs[6] - 1}
        assert "retention" in gap.data["reason"]
        assert int(gap.id) == seqs[6] - 1  # a reconnect from here is not told again
        assert [(e.event, int(e.id)) for e in got[1:]] == [("message", q) for q in seqs[6:]]

        # resumed from the gap's id, or started where the stream begins: no notice
        async with s.get(url, params={"subject": "dsa.>"}, headers={"Last-Event-ID": gap.id}) as r:
            again = await read_sse(r, 4)
            assert await no_more_sse(r)
        assert [(e.event, int(e.id)) for e in again] == [("message", q) for q in seqs[6:]]

        async with s.ws_connect(edge.url + "/api/events/ws", params={"subject": "dsa.>", "since_seq": "1"}) as ws:
            frames = [json.loads((await ws.receive(timeout=10)).data) for _ in range(5)]
        assert frames[0]["gap"] == {"from_seq": 1, "to_seq": seqs[6] - 1}
        assert [f["seq"] for f in frames[1:]] == seqs[6:]


async def test_seti_events_only_to_their_owner_operator_sees_all(bus: Bus, edge_factory: EdgeFactory) -> None:
    edge = await edge_factory()
    alice = await make_user(bus, edge, "user_alice")
    bob = await make_user(bus, edge, "user_bob")
    op = await make_user(bus, edge, "user_op", role="operator")
    start = (await bus.js.stream_info("EVENTS")).state.last_seq + 1
    seqs = await publish_all(
        bus,
        [
            job("user_alice", "job_alice_1", "alice_secret.fil"),
            job("user_bob", "job_bob_1", "bob_secret.fil"),
            JobProgressed(job_id="job_bob_1", user_id="user_bob", percent=50.0, stage="search"),
            JobProgressed(job_id="job_alice_1", user_id="user_alice", percent=50.0, stage="search"),
            AlertRaised(alert_type="system_error", severity="warning", message="disk"),
            image(1),
        ],
    )
    url = edge.url + "/api/events"
    params = {"subject": ">", "since_seq": str(start)}
    async with aiohttp.ClientSession() as s:
        async with s.get(url, params=params, headers={"x-api-key": alice.api_key}) as r:
            seen = await read_sse(r, 3)
            assert await no_more_sse(r)
        assert [int(e.id) for e in seen] == [seqs[0], seqs[3], seqs[5]]
        raw = "".join(e.raw for e in seen)
        assert "bob" not in raw  # neither bob's ids, nor his file names
        async with s.get(url, params=params, headers={"x-api-key": bob.api_key}) as r:
            seen_b = await read_sse(r, 3)
        assert [int(e.id) for e in seen_b] == [seqs[1], seqs[2], seqs[5]]
        assert "alice" not in "".join(e.raw for e in seen_b)
        async with s.get(url, params=params, headers={"x-api-key": op.api_key}) as r:
            seen_op = await read_sse(r, 6)
        assert [int(e.id) for e in seen_op] == seqs
        # WebSocket twin, same rules
        async with s.ws_connect(
            edge.url + "/api/events/ws",
            params={"subject": "seti.job.>", "since_seq": str(start)},
            headers={"x-api-key": alice.api_key},
        ) as ws:
            frames = [json.loads((await ws.receive(timeout=10)).data) for _ in range(2)]
            assert [f["seq"] for f in frames] == [seqs[0], seqs[3]]
            live = await publish_all(
                bus, [job("user_bob", "job_bob_2", "b.fil"), job("user_alice", "job_alice_2", "a.fil")]
            )
            frame = json.loads((await ws.receive(timeout=10)).data)
            assert frame["seq"] == live[1] and frame["event"]["job_id"] == "job_alice_2"

        # refusals, before any stream starts, as the error envelope
        for params_, headers, status, code in [
            ({"subject": "seti.job.>"}, {}, 403, "SUBJECT_FORBIDDEN"),
            ({"subject": "ops.>"}, {"x-api-key": alice.api_key}, 403, "SUBJECT_FORBIDDEN"),
            ({"subject": "dsa.>"}, {"x-api-key": "obs_" + "x" * 50}, 403, "INVALID_API_KEY"),
            ({"subject": "dsa..image"}, {}, 422, "VALIDATION_ERROR"),
            ({"subject": "dsa.>.x"}, {}, 422, "VALIDATION_ERROR"),
            ({"subject": "cmd.>"}, {}, 422, "VALIDATION_ERROR"),
            ({"since_seq": "abc"}, {}, 422, "VALIDATION_ERROR"),
            ({"since_seq": ""}, {}, 422, "VALIDATION_ERROR"),  # given empty: not "new events only"
            ({"since_seq": "\u00b2"}, {}, 422, "VALIDATION_ERROR"),  # a Unicode digit: str.isdigit says yes
            ({"since": ""}, {}, 422, "VALIDATION_ERROR"),
            ({}, {"Last-Event-ID": "\u0663"}, 422, "VALIDATION_ERROR"),
            ({"since_seq": "9" * 30}, {}, 422, "VALIDATION_ERROR"),  # past any JetStream sequence
            ({}, {"Last-Event-ID": "9" * 30}, 422, "VALIDATION_ERROR"),
            ({"since": "yesterday"}, {}, 422, "VALIDATION_ERROR"),
            ({"since": "2026-01-01T00:00:00Z", "since_seq": "3"}, {}, 422, "VALIDATION_ERROR"),
        ]:
            async with s.get(url, params=params_, headers=headers) as r:
                body = await r.json()
                assert (r.status, body["code"]) == (status, code), (params_, body)
                assert body["status"] == "error"


async def test_read_auth_makes_dsa_events_need_a_key(bus: Bus, edge_factory: EdgeFactory) -> None:
    edge = await edge_factory(read_auth=True)
    user = await make_user(bus, edge, "user_reader")
    seqs = await publish_all(bus, [image(1)])
    async with aiohttp.ClientSession() as s:
        async with s.get(edge.url + "/api/events", params={"subject": "dsa.>"}) as r:
            assert r.status == 403
        async with s.get(
            edge.url + "/api/events",
            params={"subject": "dsa.>", "since_seq": str(seqs[0])},
            headers={"x-api-key": user.api_key},
        ) as r:
            assert [int(e.id) for e in await read_sse(r, 1)] == seqs


async def test_a_slow_client_is_dropped_and_does_not_hold_the_hub(bus: Bus) -> None:
    """The hub never waits for a client: a full queue drops that client only."""
    hub = FeedHub(bus.js)
    viewer = Viewer(frozenset({"dsa"}), None)
    slow = FeedClient(select(["dsa.>"], viewer), max_pending=5)
    fast = FeedClient(select(["dsa.>"], viewer), max_pending=1000)
    assert hub.attach(slow, 1) and hub.attach(fast, 1)

    def stored(seq: int) -> StoredMessage:
        return StoredMessage(seq, "dsa.image.ready", datetime.now(UTC), b'{"type":"x"}', 0)

    for seq in range(1, 4):
        hub.publish(make_item(stored(seq)))
    await asyncio.sleep(0.1)  # one gathering window: both get 1-3, in one shared chunk
    assert [[i.seq for i in c.items] for c in slow.pending] == [[1, 2, 3]]
    assert slow.pending[0] is fast.pending[0]
    fast.take()  # the fast one keeps up, the slow one does not
    for seq in range(4, 7):
        hub.publish(make_item(stored(seq)))
    await asyncio.sleep(0.1)
    assert slow.dropped and slow.closed and slow not in hub.clients
    assert not fast.dropped and fast in hub.clients and fast.next_seq == 7
    assert [i.seq for c in fast.pending for i in c.items] == [4, 5, 6]
    assert hub.dropped_total == 1


async def test_overlapping_filters_are_served_once(bus: Bus, edge_factory: EdgeFactory) -> None:
    """NATS refuses overlapping filter_subjects on one consumer; the feed still answers, each event once."""
    edge = await edge_factory()
    seqs = await publish_all(bus, [image(1), candidate(1), image(2)])
    async with aiohttp.ClientSession() as s:
        params = {"subject": "dsa.>,dsa.image.ready,*.ese.*", "since_seq": str(seqs[0])}
        async with s.get(edge.url + "/api/events", params=params) as r:
            got = await read_sse(r, 3)
            assert await no_more_sse(r)
    assert [int(e.id) for e in got] == seqs
