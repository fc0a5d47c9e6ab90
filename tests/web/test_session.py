"""Browser sessions: the API key exchanged for an HttpOnly cookie, CSRF, roles, expiry, logout.

Everything over real HTTP against the running edge, with users created through the quota keeper.
The cookie is sent by hand (``Cookie:`` header) so each test states exactly what a browser sends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any

import aiohttp

import logs
from tests.conftest import eventually
from tests.seti.conftest import Stack, User


def cookie_of(set_cookie: str) -> tuple[str, dict[str, Any]]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    morsel = jar["obs_session"]
    return morsel.value, {k: morsel[k] for k in ("httponly", "samesite", "path", "max-age", "secure")}


async def sign_in(stack: Stack, user: User, base: str | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """POST /api/session; returns (the Cookie header for later requests, the response body)."""
    r = await stack.call("POST", "/api/session", json_body={"api_key": user.api_key}, base=base)
    assert r.status == 200, r.body
    token, _ = cookie_of(r.headers["Set-Cookie"])
    return {"Cookie": f"obs_session={token}"}, r.body


async def test_session_cookie_flags_body_and_logout(stack: Stack) -> None:
    user = await stack.user(tier="researcher")
    r = await stack.call("POST", "/api/session", json_body={"api_key": user.api_key})
    assert r.status == 200, r.body
    assert set(r.body) == {"user_id", "email", "role", "tier", "expires_at", "csrf_token"}
    assert r.body["user_id"] == user.user_id and r.body["role"] == "user" and r.body["tier"] == "researcher"
    assert r.body["expires_at"].endswith("Z") and len(r.body["csrf_token"]) >= 20
    raw = r.headers["Set-Cookie"]
    token, flags = cookie_of(raw)
    assert flags["httponly"] is True and flags["samesite"] == "Strict" and flags["path"] == "/"
    assert flags["max-age"] == "43200" and not flags["secure"]  # the public URL is plain http here
    assert token != user.api_key and user.api_key not in raw
    # Server side, only the token's hash is kept, never the token or the key.
    db = stack.edge.sessions.path.read_bytes()
    assert token.encode() not in db and user.api_key.encode() not in db
    cookie = {"Cookie": f"obs_session={token}"}

    me = await stack.call("GET", "/api/session", headers=cookie)
    assert me.status == 200 and me.body == r.body
    nobody = await stack.call("GET", "/api/session")
    assert nobody.status == 401 and nobody.body["status"] == "error" and nobody.body["code"] == "NOT_SIGNED_IN"
    forged = await stack.call("GET", "/api/session", headers={"Cookie": "obs_session=made-up"})
    assert forged.status == 401

    # The cookie works wherever the header does (a key-only SETI endpoint).
    usage = await stack.call("GET", "/usage", headers=cookie)
    assert usage.status == 200, usage.body

    bad = await stack.call("POST", "/api/session", json_body={"api_key": "sk_live_" + "x" * 43})
    assert bad.status == 403 and bad.body["code"] == "INVALID_API_KEY" and "Set-Cookie" not in bad.headers
    empty = await stack.call("POST", "/api/session", json_body={})
    assert empty.status == 400 and empty.body["code"] == "MISSING_FIELD"

    # Logout needs the CSRF token; then the cookie is cleared and the session is gone server side.
    refused = await stack.call("DELETE", "/api/session", headers=cookie)
    assert refused.status == 403 and refused.body["code"] == "CSRF_FAILED"
    out = await stack.call("DELETE", "/api/session", headers={**cookie, "X-CSRF-Token": r.body["csrf_token"]})
    assert out.status == 204
    cleared = out.headers["Set-Cookie"]
    assert "obs_session=" in cleared and ("Max-Age=0" in cleared or "expires=Thu, 01 Jan 1970" in cleared)
    assert (await stack.call("GET", "/api/session", headers=cookie)).status == 401
    gone = await stack.call("GET", "/usage", headers=cookie)
    assert gone.status == 403 and gone.body["code"] == "SESSION_EXPIRED"
    # Logging out with no session is harmless.
    assert (await stack.call("DELETE", "/api/session")).status == 204


async def test_csrf_and_roles_on_control_apis(stack: Stack) -> None:
    operator = await stack.user(role="operator")
    user = await stack.user(role="user")
    op_cookie, op_body = await sign_in(stack, operator)
    user_cookie, user_body = await sign_in(stack, user)
    path = "/api/ese/candidates/999/status"
    body = {"status": "false_positive"}

    # A non-operator session is refused, with or without its CSRF token.
    r = await stack.call("POST", path, json_body=body, headers={**user_cookie, "X-CSRF-Token": user_body["csrf_token"]})
    assert r.status == 403 and r.body["code"] == "OPERATOR_ONLY"
    # An operator session without (or with another session's) CSRF token is refused...
    r = await stack.call("POST", path, json_body=body, headers=op_cookie)
    assert r.status == 403 and r.body["code"] == "CSRF_FAILED"
    r = await stack.call("POST", path, json_body=body, headers={**op_cookie, "X-CSRF-Token": user_body["csrf_token"]})
    assert r.status == 403 and r.body["code"] == "CSRF_FAILED"
    # ...and with it, gets past authentication to the command (no variability actor runs here: 503).
    r = await stack.call("POST", path, json_body=body, headers={**op_cookie, "X-CSRF-Token": op_body["csrf_token"]})
    assert r.status == 503 and r.body["code"] == "SERVICE_UNAVAILABLE", r.body
    # The header needs no CSRF token (a browser never adds it by itself).
    r = await stack.call("POST", path, operator, json_body=body)
    assert r.status == 503
    # Reads made with the cookie need no CSRF token.
    r = await stack.call("GET", "/jobs/no-such-job/events", headers=user_cookie)
    assert r.status == 404 and r.body["code"] == "JOB_NOT_FOUND"
    # A non-operator session is refused on streaming control too.
    r = await stack.call(
        "POST", "/api/streaming/stop", headers={**user_cookie, "X-CSRF-Token": user_body["csrf_token"]}
    )
    assert r.status == 403 and r.body["code"] == "OPERATOR_ONLY"


async def test_revoked_key_ends_its_sessions(stack: Stack) -> None:
    user = await stack.user()
    cookie, body = await sign_in(stack, user)
    # Revoked from the page itself: the cookie plus its CSRF token.
    r = await stack.call("DELETE", f"/api-keys/{user.key_id}", headers={**cookie, "X-CSRF-Token": body["csrf_token"]})
    assert r.status == 200, r.body

    async def refused() -> bool:
        return (await stack.call("GET", "/usage", headers=cookie)).status == 403

    await eventually(refused)


async def test_session_expiry_and_secure_flag(stack: Stack, edge_factory: Callable[..., Awaitable[Any]]) -> None:
    user = await stack.user()
    edge = await edge_factory(session_ttl_s=1.0, public_url="https://obs.example.org")

    async def signed_in() -> Any:
        r = await stack.call("POST", "/api/session", json_body={"api_key": user.api_key}, base=edge.url)
        return r if r.status == 200 else None

    r = await eventually(signed_in)  # the second edge replays the user from the stream first
    token, flags = cookie_of(r.headers["Set-Cookie"])
    assert flags["secure"] is True and flags["max-age"] == "1"
    cookie = {"Cookie": f"obs_session={token}"}
    assert (await stack.call("GET", "/api/session", headers=cookie, base=edge.url)).status == 200
    await asyncio.sleep(1.3)
    assert (await stack.call("GET", "/api/session", headers=cookie, base=edge.url)).status == 401
    r = await stack.call("GET", "/usage", headers=cookie, base=edge.url)
    assert r.status == 403 and r.body["code"] == "SESSION_EXPIRED"


async def test_live_views_take_the_session_and_name_their_events(
    stack: Stack, edge_factory: Callable[..., Awaitable[Any]]
) -> None:
    user = await stack.user()
    edge = await edge_factory(read_auth=True)

    async def signed_in() -> Any:
        r = await stack.call("POST", "/api/session", json_body={"api_key": user.api_key}, base=edge.url)
        return r if r.status == 200 else None

    token, _ = cookie_of((await eventually(signed_in)).headers["Set-Cookie"])
    cookie = {"Cookie": f"obs_session={token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(edge.url + "/api/sse/status") as resp:
            assert resp.status == 403
        async with http.get(edge.url + "/api/sse/status", headers=cookie) as resp:
            assert resp.status == 200
            names: list[str] = []
            ids: list[str] = []
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    names.append(line[7:])
                elif line.startswith("id: "):
                    ids.append(line[4:])
                elif line.startswith("data: "):
                    assert json.loads(line[6:])["type"] == names[-1]
                    if names[-1] == "ese_update":
                        break
            assert names[0] == "status_update" and len(ids) == len(names)
        async with http.ws_connect(edge.url + "/api/ws/status", headers=cookie) as ws:
            first = json.loads((await asyncio.wait_for(ws.receive(), 5)).data)
            assert first["type"] == "status_update"
        try:
            async with http.ws_connect(edge.url + "/api/ws/status"):
                raise AssertionError("a WebSocket without key or session was accepted")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403


async def test_keys_and_session_tokens_never_reach_the_log(stack: Stack, capsys: Any) -> None:
    logs.configure("debug", json=True)
    user = await stack.user()
    cookie, body = await sign_in(stack, user)
    token = cookie["Cookie"].split("=", 1)[1]
    await stack.call("GET", "/api/session", headers=cookie)
    await stack.call("GET", "/usage", headers=cookie)
    await stack.call("POST", "/api/session", json_body={"api_key": user.api_key + "x"})
    await stack.call("DELETE", "/api/session", headers={**cookie, "X-CSRF-Token": body["csrf_token"]})
    err = capsys.readouterr()
    text = err.out + err.err
    assert "/api/session" in text  # the access log did run
    for secret in (user.api_key, user.api_key[8:], token, body["csrf_token"]):
        assert secret not in text
