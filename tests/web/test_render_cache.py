"""The browser's PNG renders are cached on disk within --render-cache-mb, least recently used first out."""

from __future__ import annotations

import os
from pathlib import Path

from tests.web.test_products import sky_image
from web.render import RenderCache, prune


def _files(directory: Path, n: int, size: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = directory / f"r{i}-quicklook.png"
        p.write_bytes(b"x" * size)
        os.utime(p, ns=(10**18 + i * 10**9, 10**18 + i * 10**9))  # r0 the oldest
        out.append(p)
    return out


def test_prune_removes_the_least_recently_used_down_to_90_percent(tmp_path: Path) -> None:
    files = _files(tmp_path, 10, 100_000)
    assert prune(tmp_path, 2_000_000) == 0  # under the bound: nothing
    assert prune(tmp_path, 500_000, keep=files[0]) == 6
    left = sorted(p.name for p in tmp_path.iterdir())
    # 450 kB kept: the three newest, and the oldest one because it is the render being served
    assert left == ["r0-quicklook.png", "r7-quicklook.png", "r8-quicklook.png", "r9-quicklook.png"]


async def test_renders_stay_within_the_bound_and_a_hit_keeps_its_render(tmp_path: Path) -> None:
    images = [sky_image(tmp_path / "img" / f"g-{i}.fits", n=256, name=f"g-{i}") for i in range(4)]
    renders = tmp_path / "renders"
    first = await RenderCache(renders).png(str(images[0]), "quicklook", zoom=False)
    size = first.stat().st_size
    cache = RenderCache(renders, max_bytes=int(2.5 * size))  # room for two renders and a half
    second = await cache.png(str(images[1]), "quicklook", zoom=False)
    os.utime(first, ns=(10**18, 10**18))  # the oldest of the two...
    os.utime(second, ns=(10**18 + 10**9, 10**18 + 10**9))
    assert await cache.png(str(images[0]), "quicklook", zoom=False) == first  # ...until a hit uses it now
    third = await cache.png(str(images[2]), "quicklook", zoom=False)
    assert first.exists() and third.exists() and not second.exists()  # second was the least recently used
    total = sum(p.stat().st_size for p in renders.iterdir())
    assert total <= 2.5 * size * 1.05  # renders differ a little in size
    # a render is never pruned as it is made, whatever the bound
    tiny = RenderCache(renders, max_bytes=1)
    fourth = await tiny.png(str(images[3]), "quicklook", zoom=False)
    assert [p.name for p in renders.iterdir()] == [fourth.name]
