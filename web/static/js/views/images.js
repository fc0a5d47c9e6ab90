// Images and mosaics: the latest images as thumbnails; one image's quicklook (WCS axes, colour
// bar, beam, noise) and its FITS download; mosaics queried by time and declination, and generated.

import { get, post, qs } from "../api.js";
import { h, fill, card, num, when, mjd, mjdToDate, throttle } from "../dom.js";

const PAGE = 24;

export function imagesView(ctx, el) {
  const thumbs = h("div", { class: "thumbs", id: "thumbs" });
  const pager = h("div", { class: "pager" });
  const detail = h("div", { class: "quicklook", id: "quicklook" }, h("div", { class: "empty" }, "Choose an image"));
  const mosaicBody = h("tbody");
  const mosaicOut = h("div", { class: "muted", id: "mosaic-job" });
  const f = {
    start_mjd: h("input", { name: "start_mjd", type: "number", step: "any", placeholder: "start MJD" }),
    end_mjd: h("input", { name: "end_mjd", type: "number", step: "any", placeholder: "end MJD" }),
    dec_min: h("input", { name: "dec_min", type: "number", step: "any", placeholder: "dec min °" }),
    dec_max: h("input", { name: "dec_max", type: "number", step: "any", placeholder: "dec max °" }),
  };
  const field = (label, input) => h("div", { class: "field" }, h("label", null, label), input);
  const mosaicForm = h("form", { class: "filters", id: "mosaic-form", onsubmit: (e) => { e.preventDefault(); queryMosaics(); } },
    field("start MJD", f.start_mjd), field("end MJD", f.end_mjd), field("dec min", f.dec_min), field("dec max", f.dec_max),
    h("button", { type: "submit" }, "Query"),
    h("button", { type: "button", class: "primary", "data-op": "", id: "mosaic-generate", onclick: generate }, "Generate mosaic"));

  el.append(h("div", { class: "grid" },
    card("Latest images", { span: 5, aside: h("span", { id: "images-total", class: "muted" }) }, thumbs, pager),
    card("Quicklook", { span: 7 }, detail),
    card("Mosaics", { span: 12 }, mosaicForm, mosaicOut,
      h("table", { id: "mosaics" }, h("thead", null, h("tr", null, h("th", null, ""), h("th", null, "name"),
        h("th", null, "start MJD"), h("th", null, "end MJD"), h("th", { class: "num" }, "images"),
        h("th", { class: "num" }, "sources"), h("th", { class: "num" }, "noise (mJy/beam)"), h("th", null, "files"))), mosaicBody))));

  let offset = 0;
  let selected = null;
  let lastTotal = -1;

  async function load() {
    try {
      const r = await get(`/api/images${qs({ limit: PAGE, offset })}`);
      document.getElementById("images-total").textContent = `${r.total} images`;
      if (r.total === lastTotal && thumbs.childElementCount) return;
      lastTotal = r.total;
      fill(thumbs, r.images.length ? r.images.map((im) => h("div", {
        class: `thumb ${selected === im.id ? "selected" : ""}`, dataset: { image: im.id }, onclick: () => open(im),
      }, h("img", { src: im.thumbnail_url, alt: `thumbnail of image ${im.id}`, loading: "lazy" }),
        h("div", { class: "cap" }, `${mjd(im.mid_mjd)} · σ ${num(im.noise_jy * 1e3, 2)} mJy`)))
        : h("div", { class: "empty" }, "No images yet"));
      fill(pager,
        h("button", { disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); lastTotal = -1; load(); } }, "‹ newer"),
        `${r.total ? offset + 1 : 0}–${Math.min(offset + PAGE, r.total)} of ${r.total}`,
        h("button", { disabled: offset + PAGE >= r.total, onclick: () => { offset += PAGE; lastTotal = -1; load(); } }, "older ›"));
      if (selected === null && r.images.length) open(r.images[0]);
    } catch (err) {
      fill(thumbs, h("div", { class: "empty" }, `Images unavailable: ${err.message}`));
    }
  }
  const reload = throttle(load, 3000);

  function open(im) {
    selected = im.id;
    for (const t of thumbs.children) t.classList.toggle("selected", t.dataset.image === String(im.id));
    const beam = im.beam_major_arcsec !== undefined
      ? `${num(im.beam_major_arcsec, 1)}″ × ${num(im.beam_minor_arcsec, 1)}″, PA ${num(im.beam_pa_deg, 0)}°` : "—";
    fill(detail,
      h("a", { href: im.quicklook_url, target: "_blank", rel: "noopener" },
        h("img", { src: im.quicklook_url, alt: `quicklook of image ${im.id}`, id: "quicklook-img" })),
      h("dl", { class: "kv", style: "margin-top:8px" },
        h("dt", null, "Image"), h("dd", { class: "mono" }, im.path),
        h("dt", null, "Mid-observation"), h("dd", null, `MJD ${mjd(im.mid_mjd)} (${mjdToDate(im.mid_mjd)} UTC)`),
        h("dt", null, "Noise"), h("dd", null, `${num(im.noise_jy * 1e3, 3)} mJy/beam`),
        h("dt", null, "Restoring beam"), h("dd", null, beam),
        h("dt", null, "Created"), h("dd", null, when(im.created_at)),
        h("dt", null, "Download"), h("dd", null, h("a", { href: im.fits_url, download: "", id: "fits-download" }, "FITS"),
          " · ", h("a", { href: im.quicklook_url, target: "_blank" }, "PNG"))));
  }

  async function queryMosaics() {
    const p = { query_only: "true" };
    for (const [k, input] of Object.entries(f)) p[k] = input.value;
    if (p.start_mjd === "") p.start_mjd = 0;
    if (p.end_mjd === "") p.end_mjd = 100000;
    try {
      const r = await get(`/api/mosaics/query${qs(p)}`);
      fill(mosaicBody, r.mosaics.length ? r.mosaics.map((m) => {
        const base = `/api/mosaics/${m.id}`;
        return h("tr", null,
          h("td", null, h("img", { src: m.thumbnail_url || `${base}/thumbnail.png`, alt: "", style: "height:40px;width:40px;object-fit:cover" })),
          h("td", { class: "mono" }, m.name), h("td", { class: "mono" }, mjd(m.start_mjd)), h("td", { class: "mono" }, mjd(m.end_mjd)),
          h("td", { class: "num" }, m.n_images), h("td", { class: "num" }, m.n_sources), h("td", { class: "num" }, num(m.noise_jy * 1e3, 3)),
          h("td", null, h("a", { href: m.quicklook_url || `${base}/quicklook.png`, target: "_blank" }, "quicklook"), " · ",
            h("a", { href: m.fits_url || base, download: "" }, "FITS")));
      }) : h("tr", null, h("td", { colspan: 8, class: "empty" }, "No mosaics in this range")));
    } catch (err) { ctx.toast(err.message); }
  }

  async function generate() {
    const body = {};
    for (const [k, input] of Object.entries(f)) if (input.value !== "") body[k] = Number(input.value);
    try {
      const r = await post("/api/mosaics/generate", body);
      mosaicOut.textContent = `Mosaic job ${r.job_id}: ${r.status}`;
    } catch (err) { ctx.toast(err.message); }
  }

  function applyRole() { for (const b of el.querySelectorAll("[data-op]")) b.hidden = !ctx.operator; }
  applyRole();

  return {
    el,
    show() { load(); queryMosaics(); },
    live(msg) { if (msg.type === "status_update" && !el.hidden) reload(); },
    render() {},
    session() { applyRole(); },
  };
}
