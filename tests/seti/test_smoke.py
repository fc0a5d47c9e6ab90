from __future__ import annotations

from tests.seti.conftest import Stack


async def test_smoke(stack: Stack) -> None:
    u = await stack.user("researcher")
    r = await stack.call("GET", "/usage", u)
    print(r)
    key = await stack.upload(u)
    r = await stack.call("POST", "/analyze", u, {"file_key": key})
    print(r)
    r = await stack.call("GET", r.body["status_url"], u)
    print(r)
    assert r.status == 200
