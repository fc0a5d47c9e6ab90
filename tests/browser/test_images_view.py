"""Images view: the latest images (real FITS from the imager's events) as thumbnails; the chosen
one's quicklook (WCS axes, colour bar, beam, noise, rendered by the edge) and its FITS download."""

from __future__ import annotations

from typing import Any

from actors.mosaicker.actor import MosaickerActor
from tests.browser.conftest import Dashboard
from tests.conftest import eventually
from tests.dsa.conftest import make_sky
from tests.seti.conftest import Stack


async def test_thumbnails_quicklook_with_axes_and_fits_download(stack: Stack, dashboard: Dashboard) -> None:
    page = dashboard.page
    # real restored FITS tiles where the imager writes them (under the data roots the edge serves)
    sky = make_sky(stack.settings.data_dir / "images", n_tiles=4, catalogue_path=stack.settings.data_dir / "cat.json")
    for image in sky.images:
        await stack.bus.publish(image)

    async def listed() -> Any:
        r = await stack.call("GET", "/api/images?limit=10")
        return r.status == 200 and r.body["total"] == 4

    await eventually(listed, timeout=15)
    await dashboard.open("images")
    await page.wait_for_selector("#thumbs .thumb img")
    assert await page.eval_on_selector_all("#thumbs .thumb", "t => t.length") == 4
    await page.wait_for_function(
        "[...document.querySelectorAll('#thumbs img')].every(i => i.complete && i.naturalWidth > 0)", timeout=30_000
    )
    # The newest image is opened: its quicklook is a rendered figure (axes, colour bar: wider than tall).
    await page.wait_for_function(
        "document.querySelector('#quicklook-img') && document.querySelector('#quicklook-img').naturalWidth > 0",
        timeout=30_000,
    )
    size = await page.eval_on_selector("#quicklook-img", "i => [i.naturalWidth, i.naturalHeight]")
    assert size[0] > 400 and size[0] > size[1] * 1.05, size
    text = await page.text_content("#quicklook") or ""
    assert "mJy/beam" in text and "″ ×" in text  # noise and restoring beam beside it
    # Choose another image: its own quicklook.
    first = await page.get_attribute("#quicklook-img", "src")
    await page.click("#thumbs .thumb:nth-child(3)")
    await page.wait_for_function(
        f"(i => i.getAttribute('src') !== {first!r} && i.complete && i.naturalWidth > 0)"
        "(document.querySelector('#quicklook-img'))",
        timeout=30_000,
    )
    href = await page.get_attribute("#fits-download", "href") or ""
    fits = await page.evaluate(
        "async (u) => { const r = await fetch(u); const b = new Uint8Array(await r.arrayBuffer());"
        " return [r.status, new TextDecoder().decode(b.slice(0, 30))]; }",
        href,
    )
    assert fits[0] == 200 and fits[1].startswith("SIMPLE  ="), fits
    await dashboard.shot("images")


async def test_an_operator_generates_a_mosaic_and_queries_it(stack: Stack, actors: Any, dashboard: Dashboard) -> None:
    page = dashboard.page
    await actors(MosaickerActor)
    sky = make_sky(stack.settings.data_dir / "images", n_tiles=4, catalogue_path=stack.settings.data_dir / "cat.json")
    for image in sky.images:
        await stack.bus.publish(image)
    operator = await stack.user(role="operator")
    await dashboard.open("images")
    await dashboard.login(operator)
    await page.wait_for_selector("#mosaic-generate:visible")
    start, end = sky.images[0].mjd - 0.001, sky.images[-1].mjd + 0.001
    await page.fill('#mosaic-form input[name="start_mjd"]', f"{start:.5f}")
    await page.fill('#mosaic-form input[name="end_mjd"]', f"{end:.5f}")
    await page.click("#mosaic-generate")
    await page.wait_for_selector('#mosaic-job:has-text("Mosaic job mosaic_")', timeout=15_000)

    async def made() -> Any:
        r = await stack.call("GET", f"/api/mosaics/query?start_mjd={start}&end_mjd={end}&query_only=true")
        return r.status == 200 and r.body["total"] >= 1

    await eventually(made, timeout=60)
    await page.click('#mosaic-form button[type="submit"]')
    await page.wait_for_selector("#mosaics tbody td.mono")
    await page.wait_for_function(
        "(i => i && i.complete && i.naturalWidth > 0)(document.querySelector('#mosaics tbody img'))", timeout=30_000
    )
    await dashboard.shot("images-mosaics")
