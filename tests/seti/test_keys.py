"""API keys and authentication: 403 for every bad key, revocation on every edge, tiers, isolation."""

from __future__ import annotations

import time
from typing import Any

from actors.quota_keeper import keys
from schemas.seti import KeyCreated
from tests.conftest import eventually
from tests.seti.conftest import Stack


async def test_missing_invalid_expired_and_revoked_keys_are_403(stack: Stack) -> None:
    user = await stack.user()
    assert (await stack.call("GET", "/usage", user)).status == 200
    cases: dict[str, Any] = {
        "MISSING_API_KEY": None,
        "INVALID_API_KEY": "sk_live_" + "A" * 43,
    }
    for code, key in cases.items():
        r = await stack.call("GET", "/usage", key)
        assert r.status == 403 and r.body["code"] == code and r.body["status"] == "error"
    assert (await stack.call("GET", "/usage", "not-a-key")).status == 403

    # an expired key (a fact in the stream, as the quota keeper would publish it)
    api_key, key_id = keys.generate()
    ack = await stack.bus.publish(
        KeyCreated(
            key_id=key_id,
            user_id=user.user_id,
            name="old",
            key_hash=keys.key_hash(api_key),
            created_at=int(time.time()) - 100 * 86400,
            expires_at=int(time.time()) - 10 * 86400,
        )
    )
    await stack.edge.wait_applied(ack.seq)
    r = await stack.call("GET", "/usage", api_key)
    assert r.status == 403 and r.body["code"] == "API_KEY_EXPIRED"
    listed = (await stack.call("GET", "/api-keys", user)).body["keys"]
    old = next(k for k in listed if k["key_id"] == key_id)
    assert old["active"] is True and old["expired"] is True

    # revoked
    r = await stack.call("DELETE", f"/api-keys/{user.key_id}", user)
    assert r.status == 200 and r.body == {"message": "API key revoked", "key_id": user.key_id}
    r = await stack.call("GET", "/usage", user)
    assert r.status == 403 and r.body["code"] == "API_KEY_REVOKED"


async def test_create_list_and_revoke_keys(stack: Stack) -> None:
    user = await stack.user("researcher")
    r = await stack.call("POST", "/api-keys", user, {"name": "production-v1", "ttl_days": 30})
    assert r.status == 201, r.body
    assert set(r.body) == {"key_id", "api_key", "expires_at", "ttl_days", "warning"}
    new_key = r.body["api_key"]
    assert new_key.startswith("sk_live_") and len(new_key) >= len("sk_live_") + 43
    assert len(r.body["key_id"]) == 8 and int(r.body["key_id"], 16) >= 0
    assert r.body["ttl_days"] == 30 and abs(r.body["expires_at"] - (time.time() + 30 * 86400)) < 60
    assert "not be shown again" in r.body["warning"]
    # the new key works at once; defaults apply with no body
    assert (await stack.call("GET", "/usage", new_key)).status == 200
    r = await stack.call("POST", "/api-keys", new_key)
    assert r.status == 201 and r.body["ttl_days"] == 90
    listed = await stack.call("GET", "/api-keys", user)
    assert listed.status == 200
    views = {k["key_id"]: k for k in listed.body["keys"]}
    assert len(views) == 3
    assert views[r.body["key_id"]]["name"] == "Default"
    for view in views.values():
        assert set(view) == {"key_id", "name", "created_at", "expires_at", "active", "expired"}
        assert view["active"] is True and view["expired"] is False
    assert new_key not in listed.headers.get("Content-Length", "") and "sk_live_" not in str(listed.body)
    # a body that is there but is not JSON is refused, not read as "no body" (found by bench/fuzz.py:
    # bytes.strip() took a form feed or a vertical tab for whitespace, and the key was created)
    for junk in (b"\x0c", b"\x0b\x0b", b" \x0c\n", b"\x1c{}"):
        bad = await stack.call("POST", "/api-keys", user, data=junk, headers={"Content-Type": "application/json"})
        assert bad.status == 400 and bad.body["code"] == "INVALID_JSON", (junk, bad.body)
    assert (await stack.call("POST", "/api-keys", user, data=b" \r\n\t")).status == 201  # JSON whitespace: no body
    # ttl out of range
    for ttl in (0, 366):
        bad = await stack.call("POST", "/api-keys", user, {"ttl_days": ttl})
        assert bad.status == 400 and "ttl_days" in bad.body["error"]
    # revoke, then it is listed inactive
    rid = r.body["key_id"]
    assert (await stack.call("DELETE", f"/api-keys/{rid}", new_key)).status == 200
    listed = await stack.call("GET", "/api-keys", user)
    assert {k["key_id"]: k["active"] for k in listed.body["keys"]}[rid] is False
    # unknown key
    r = await stack.call("DELETE", "/api-keys/deadbeef", user)
    assert r.status == 404 and r.body["status"] == "error"


async def test_free_tier_cannot_create_keys(stack: Stack) -> None:
    free = await stack.user("free")
    r = await stack.call("POST", "/api-keys", free, {"name": "x"})
    assert r.status == 403 and "upgrade" in r.body["error"].lower()
    assert (await stack.call("GET", "/usage", free)).status == 200  # its first key works otherwise


async def test_users_never_touch_each_others_keys_jobs_or_files(stack: Stack) -> None:
    alice = await stack.user()
    bob = await stack.user()
    r = await stack.call("DELETE", f"/api-keys/{alice.key_id}", bob)
    assert r.status == 403 and "different user" in r.body["error"]
    assert (await stack.call("GET", "/usage", alice)).status == 200
    assert alice.key_id not in str((await stack.call("GET", "/api-keys", bob)).body)

    key = await stack.upload(alice)
    r = await stack.call("POST", "/analyze", bob, {"file_key": key})
    assert r.status == 403 and "different user" in r.body["error"]
    job = (await stack.call("POST", "/analyze", alice, {"file_key": key})).body["job_id"]
    for path in (f"/jobs/{job}", f"/jobs/{job}/download?format=json"):
        r = await stack.call("GET", path, bob)
        assert r.status == 403, path
    r = await stack.call("POST", "/reports", bob, {"job_id": job})
    assert r.status == 403
    assert (await stack.call("GET", "/jobs", bob)).body == []


async def test_revocation_takes_effect_on_every_edge(stack: Stack, edge_factory: Any) -> None:
    second = await edge_factory()
    user = await stack.user()
    created = await stack.call("POST", "/api-keys", user, {"name": "ci"})
    api_key, key_id = created.body["api_key"], created.body["key_id"]

    async def status_on_second() -> int:
        return (await stack.call("GET", "/usage", api_key, base=second.url)).status

    assert await eventually(lambda: _eq(status_on_second(), 200))
    # revoke through the first edge: it answers only after applying the revocation itself ...
    assert (await stack.call("DELETE", f"/api-keys/{key_id}", user)).status == 200
    assert (await stack.call("GET", "/usage", api_key)).status == 403
    # ... and the other edge follows as soon as it has applied the same event
    assert await eventually(lambda: _eq(status_on_second(), 403), timeout=5)


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_operator_role(stack: Stack) -> None:
    from aiohttp import web

    from web.auth import require_key, require_operator

    op = await stack.user("researcher", role="operator")
    user = await stack.user("researcher")

    class FakeRequest(dict[Any, Any]):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.headers = {"x-api-key": key}
            self.app = {}

    from web.state import SETTINGS, STORE

    def request_for(key: str) -> web.Request:
        req = FakeRequest(key)
        req.app = {STORE: stack.edge.store, SETTINGS: stack.edge.settings}
        return req  # type: ignore[return-value]

    principal = await require_operator(request_for(op.api_key))
    assert principal.role == "operator" and principal.user_id == op.user_id
    assert (await require_key(request_for(user.api_key))).role == "user"
    try:
        await require_operator(request_for(user.api_key))
    except Exception as exc:
        assert getattr(exc, "status", None) == 403
    else:
        raise AssertionError("a plain user passed require_operator")
