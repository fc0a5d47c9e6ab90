// Sources and ESE candidates: candidates live as they open (operators close them), the source
// catalogue searched, sorted and filtered with paging on the server, and one source's light curve.

import { get, post, qs } from "../api.js";
import { h, fill, card, stateBadge, num, when, throttle, plural } from "../dom.js";
import { lightCurve, loadUplot } from "../charts.js";

const PAGE = 25;
const COLS = [
  ["source_id", "source"], ["ra_deg", "RA (°)"], ["dec_deg", "Dec (°)"], ["nvss_flux_mjy", "NVSS (mJy)"],
  ["mean_flux_mjy", "mean (mJy)"], ["n_obs", "epochs"], ["sigma_deviation", "max σ dev"], ["last_measured_at", "last measured"],
];

export function sourcesView(ctx, el) {
  // -- ESE candidates --
  const candBody = h("tbody");
  const candPager = h("div", { class: "pager" });
  const candStatus = h("select", { id: "cand-status", onchange: () => { candOffset = 0; loadCandidates(); } },
    h("option", { value: "active" }, "active"), h("option", { value: "" }, "all"),
    h("option", { value: "resolved" }, "resolved"), h("option", { value: "false_positive" }, "false positive"));
  let candOffset = 0;
  const known = new Set();

  // -- search --
  const q = {
    query: h("input", { class: "wide", placeholder: "name prefix, e.g. J1000", id: "src-query" }),
    variability_min: h("input", { type: "number", step: "any", placeholder: "≥ σ" }),
    dec_min: h("input", { type: "number", step: "any", placeholder: "−90" }),
    dec_max: h("input", { type: "number", step: "any", placeholder: "+90" }),
    flux_min_mjy: h("input", { type: "number", step: "any", placeholder: "mJy" }),
  };
  const field = (label, input) => h("div", { class: "field" }, h("label", null, label), input);
  const searchForm = h("form", { class: "filters", id: "src-form", onsubmit: (e) => { e.preventDefault(); offset = 0; search(); } },
    field("name", q.query), field("variability min", q.variability_min), field("dec min", q.dec_min),
    field("dec max", q.dec_max), field("flux min", q.flux_min_mjy), h("button", { type: "submit", class: "primary" }, "Search"));
  const head = h("tr");
  const srcBody = h("tbody");
  const srcPager = h("div", { class: "pager", id: "src-pager" });
  let sort = { field: "sigma_deviation", order: "desc" };
  let offset = 0;
  for (const [key, label] of COLS) {
    head.append(h("th", { class: "sort", dataset: { sort: key }, onclick: () => {
      sort = { field: key, order: sort.field === key && sort.order === "desc" ? "asc" : "desc" };
      offset = 0; search();
    } }, label));
  }

  // -- light curve --
  const lcTitle = h("span", { class: "mono", id: "lc-title" });
  const lcPlot = h("div", { class: "plot", id: "lightcurve" });
  const lcInfo = h("dl", { class: "kv" });
  let chart = null;
  let selectedSource = null;

  el.append(h("div", { class: "grid" },
    card("ESE candidates", { span: 12, aside: h("span", { class: "row" }, h("span", { class: "muted", id: "cand-total" }), candStatus) },
      h("div", { class: "scroll" }, h("table", { id: "candidates" }, h("thead", null, h("tr", null,
        h("th", null, "#"), h("th", null, "source"), h("th", null, "first detected"), h("th", null, "last detected"),
        h("th", { class: "num" }, "max σ"), h("th", { class: "num" }, "baseline (mJy)"), h("th", { class: "num" }, "extreme (mJy)"),
        h("th", null, "status"), h("th", null, ""))), candBody)), candPager),
    card("Sources", { span: 7, aside: h("span", { class: "muted", id: "src-total" }) }, searchForm,
      h("div", { class: "scroll", style: "max-height:520px" }, h("table", { id: "sources" }, h("thead", null, head), srcBody)), srcPager),
    card("Light curve", { span: 5, aside: lcTitle }, lcPlot, lcInfo)));

  async function loadCandidates() {
    try {
      const r = await get(`/api/ese/candidates${qs({ limit: PAGE, offset: candOffset, status: candStatus.value })}`);
      document.getElementById("cand-total").textContent = `${r.total} ${candStatus.value || "in all"}`;
      fill(candBody, r.candidates.length ? r.candidates.map((c) => {
        const fresh = known.size > 0 && !known.has(c.id);
        known.add(c.id);
        return h("tr", { class: `clickable ${fresh ? "flash" : ""}`, dataset: { candidate: c.id, source: c.source_id }, onclick: () => openSource(c.source_id, c) },
          h("td", null, c.id), h("td", { class: "mono" }, c.source_id), h("td", null, when(c.first_detection_at)),
          h("td", null, when(c.last_detection_at)), h("td", { class: "num" }, num(c.max_sigma_dev, 1)),
          h("td", { class: "num" }, num(c.baseline_flux_jy * 1e3, 2)), h("td", { class: "num" }, num(c.peak_flux_jy * 1e3, 2)),
          h("td", null, stateBadge(c.status)),
          h("td", null, c.status === "active" ? h("span", { class: "row" },
            h("button", { "data-op": "", hidden: !ctx.operator, class: "mark-resolved", onclick: (e) => { e.stopPropagation(); mark(c.id, "resolved"); } }, "Resolved"),
            h("button", { "data-op": "", hidden: !ctx.operator, class: "mark-fp", onclick: (e) => { e.stopPropagation(); mark(c.id, "false_positive"); } }, "False positive")) : (c.notes || "")));
      }) : h("tr", null, h("td", { colspan: 9, class: "empty" }, "No candidates")));
      if (known.size === 0) known.add(-1);
      fill(candPager,
        h("button", { disabled: candOffset === 0, onclick: () => { candOffset = Math.max(0, candOffset - PAGE); loadCandidates(); } }, "‹"),
        `${r.total ? candOffset + 1 : 0}–${Math.min(candOffset + PAGE, r.total)} of ${r.total}`,
        h("button", { disabled: candOffset + PAGE >= r.total, id: "cand-next", onclick: () => { candOffset += PAGE; loadCandidates(); } }, "›"));
    } catch (err) { ctx.toast(err.message); }
  }
  const reloadCandidates = throttle(loadCandidates, 1000);

  async function mark(id, status) {
    try {
      await post(`/api/ese/candidates/${id}/status`, { status, notes: `marked ${status} from the dashboard` });
      ctx.toast(`Candidate ${id} marked ${status.replace("_", " ")}`, "info");
      loadCandidates();
    } catch (err) { ctx.toast(err.message); }
  }

  async function search() {
    const filters = {};
    for (const k of ["variability_min", "dec_min", "dec_max", "flux_min_mjy"]) if (q[k].value !== "") filters[k] = Number(q[k].value);
    for (const th of head.children) th.className = `sort ${th.dataset.sort === sort.field ? sort.order : ""}`;
    try {
      const r = await post("/api/sources/search", { query: q.query.value.trim() || null, filters, sort, limit: PAGE, offset });
      document.getElementById("src-total").textContent = plural(r.total, "source");
      fill(srcBody, r.sources.length ? r.sources.map((s) => h("tr", {
        class: `clickable ${s.source_id === selectedSource ? "selected" : ""}`, dataset: { source: s.source_id }, onclick: () => openSource(s.source_id),
      }, h("td", { class: "mono" }, s.source_id), h("td", { class: "num" }, num(s.ra_deg, 4)), h("td", { class: "num" }, num(s.dec_deg, 4)),
        h("td", { class: "num" }, num(s.nvss_flux_mjy, 1)), h("td", { class: "num" }, num(s.mean_flux_mjy, 2)), h("td", { class: "num" }, s.n_obs),
        h("td", { class: `num ${s.sigma_deviation >= 5 ? "bad" : ""}` }, num(s.sigma_deviation, 1)), h("td", null, when(s.last_measured_at))))
        : h("tr", null, h("td", { colspan: COLS.length, class: "empty" }, "No sources match")));
      fill(srcPager,
        h("button", { disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); search(); } }, "‹ prev"),
        `${r.total ? offset + 1 : 0}–${Math.min(offset + PAGE, r.total)} of ${r.total.toLocaleString()}`,
        h("button", { disabled: offset + PAGE >= r.total, id: "src-next", onclick: () => { offset += PAGE; search(); } }, "next ›"));
    } catch (err) { ctx.toast(err.message); }
  }

  async function openSource(id, candidate = null) {
    selectedSource = id;
    for (const tr of srcBody.children) tr.classList.toggle("selected", tr.dataset.source === id);
    try {
      const d = await get(`/api/sources/${encodeURIComponent(id)}`);
      if (!candidate) candidate = (ctx.state.ese?.candidates || []).find((c) => c.source_id === id) || null;
      // The baseline: the detector's own (the candidate's quiescent flux) when there is one, else the mean.
      const baseline = candidate ? candidate.baseline_flux_jy * 1e3 : d.variability_stats.mean_flux_mjy;
      lcTitle.textContent = id;
      await loadUplot();
      if (chart) chart.destroy();
      lcPlot.replaceChildren();
      chart = lightCurve(lcPlot, d.timeseries, baseline, 5);
      const v = d.variability_stats;
      fill(lcInfo,
        h("dt", null, "Position"), h("dd", null, `RA ${num(d.ra_deg, 5)}°, Dec ${num(d.dec_deg, 5)}°`),
        h("dt", null, "NVSS / VLASS"), h("dd", null, `${num(d.nvss_flux_mjy, 1)} / ${num(d.vlass_flux_mjy, 1)} mJy`),
        h("dt", null, "Epochs"), h("dd", null, v.n_obs),
        h("dt", null, "Mean ± std"), h("dd", null, `${num(v.mean_flux_mjy, 2)} ± ${num(v.std_flux_mjy, 2)} mJy`),
        h("dt", null, "χ²ν"), h("dd", null, num(v.chi2_nu, 2)),
        h("dt", null, "Max deviation"), h("dd", null, `${num(v.sigma_deviation, 1)} σ`),
        h("dt", null, "Baseline"), h("dd", null, `${num(baseline, 2)} mJy ${candidate ? "(ESE detector)" : "(mean)"}`),
        h("dt", null, "Flagged epochs"), h("dd", { id: "lc-flagged" }, `${chart.flaggedCount} (|F − baseline| ≥ 5σ)`));
    } catch (err) { ctx.toast(err.message); }
  }

  function applyRole() { for (const b of el.querySelectorAll("[data-op]")) b.hidden = !ctx.operator; }

  let searched = false;
  return {
    el,
    show() { loadCandidates(); if (!searched) { searched = true; search(); } },
    live(msg) { if ((msg.type === "ese_update" || msg.type === "status_update") && !el.hidden) reloadCandidates(); },
    render() {},
    session() { applyRole(); if (!el.hidden) loadCandidates(); },
  };
}
