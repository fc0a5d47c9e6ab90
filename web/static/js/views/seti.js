// SETI: upload a .fil/.h5 through the signed URLs (single PUT or multipart, with a progress bar),
// analyze it, follow the job live over /jobs/{id}/ws, then its results, waterfall and downloads;
// usage against the tier; the user's API keys.

import { get, post, del, putWithProgress, ApiError } from "../api.js";
import { h, fill, card, stateBadge, num, bytes, when } from "../dom.js";
import { timeSeries, loadUplot } from "../charts.js";

const FORMATS = ["json", "csv", "fits", "waterfall"];

export function setiView(ctx, el) {
  const signedOut = h("div", { class: "card span-12 empty", id: "seti-signin" }, "Sign in with your API key (top right) to upload and analyze filterbank files.");
  const file = h("input", { type: "file", id: "seti-file", accept: ".fil,.h5" });
  const source = h("input", { id: "seti-source", placeholder: "source name (optional)" });
  const drift = h("input", { id: "seti-drift", type: "number", step: "any", value: "4" });
  const snr = h("input", { id: "seti-snr", type: "number", step: "any", value: "10" });
  const upBar = h("div");
  const upText = h("div", { class: "muted", id: "upload-text" }, "No upload yet");
  const jobBar = h("div");
  const jobText = h("div", { class: "muted", id: "job-text" }, "—");
  const jobPlot = h("div", { class: "plot", id: "job-plot", style: "min-height:0" });
  const results = h("div", { id: "job-results" });
  const jobsBody = h("tbody");
  const usageEl = h("div", { id: "usage" });
  const keysBody = h("tbody");
  const newKey = h("div", { id: "new-key" });
  const keyName = h("input", { id: "key-name", placeholder: "key name", value: "dashboard" });
  const field = (label, input) => h("div", { class: "field" }, h("label", null, label), input);

  const content = h("div", { class: "grid" },
    card("Analyze a filterbank file", { span: 6 },
      h("form", { id: "seti-form", onsubmit: (e) => { e.preventDefault(); run(); } },
        field(".fil or .h5 file", file),
        h("div", { class: "row" }, field("source", source), field("max drift (Hz/s)", drift), field("min S/N", snr)),
        h("div", { class: "row end" }, h("button", { type: "submit", class: "primary", id: "seti-run" }, "Upload & analyze"))),
      h("div", { class: "field" }, h("label", null, "Upload"), h("div", { class: "progress", id: "upload-progress" }, upBar), upText),
      h("div", { class: "field" }, h("label", null, "Job"), h("div", { class: "progress", id: "job-progress" }, jobBar), jobText), jobPlot),
    card("Usage", { span: 6 }, usageEl,
      h("h2", { style: "margin-top:14px" }, "API keys"),
      h("table", { id: "keys" }, h("thead", null, h("tr", null, h("th", null, "name"), h("th", null, "key id"), h("th", null, "created"),
        h("th", null, "expires"), h("th", null, "state"), h("th", null, ""))), keysBody),
      h("form", { class: "row", style: "margin-top:8px", onsubmit: (e) => { e.preventDefault(); createKey(); } },
        keyName, h("button", { type: "submit", id: "key-create" }, "Create key")), newKey),
    card("Results", { span: 12 }, results),
    card("Your jobs", { span: 12 }, h("div", { class: "scroll" }, h("table", { id: "jobs" }, h("thead", null, h("tr", null,
      h("th", null, "job"), h("th", null, "file"), h("th", null, "source"), h("th", { class: "num" }, "size"), h("th", null, "created"),
      h("th", null, "status"))), jobsBody))));
  el.append(signedOut, content);

  let socket = null;
  let watching = null;

  function bar(div, pct) { div.style.width = `${Math.max(0, Math.min(100, pct))}%`; }

  async function upload(f) {
    const r = await post("/upload-url", { filename: f.name, file_size: f.size });
    const started = performance.now();
    const show = (done) => {
      bar(upBar, (100 * done) / f.size);
      const s = (performance.now() - started) / 1000;
      upText.textContent = `${bytes(done)} of ${bytes(f.size)}${s > 0.2 ? ` · ${bytes(done / s)}/s` : ""}${r.multipart ? ` · ${r.parts.length} parts` : ""}`;
    };
    if (!r.multipart) {
      await putWithProgress(r.upload_url, f, show);
    } else {
      const etags = [];
      let sent = 0;
      for (const part of r.parts) {
        const start = (part.partNumber - 1) * r.part_size;
        const blob = f.slice(start, Math.min(f.size, start + r.part_size));
        const etag = await putWithProgress(part.url, blob, (n) => show(sent + n));
        sent += blob.size;
        etags.push({ partNumber: part.partNumber, etag });
      }
      await post("/complete-upload", { file_key: r.file_key, upload_id: r.upload_id, parts: etags });
    }
    show(f.size);
    upText.textContent += " · uploaded";
    return r.file_key;
  }

  async function run() {
    const f = file.files[0];
    if (!f) { ctx.toast("Choose a .fil or .h5 file first"); return; }
    const btn = document.getElementById("seti-run");
    btn.disabled = true;
    try {
      bar(upBar, 0); bar(jobBar, 0); results.replaceChildren();
      const key = await upload(f);
      const job = await post("/analyze", {
        file_key: key, filename: f.name, source_name: source.value.trim() || undefined,
        max_drift: Number(drift.value) || 4, min_snr: Number(snr.value) || 10,
      });
      jobText.textContent = `${job.job_id}: ${job.status}`;
      watch(job.job_id);
      loadJobs(); loadUsage();
    } catch (err) {
      ctx.toast(err instanceof ApiError ? err.message : String(err));
      upText.textContent = `failed: ${err.message}`;
    } finally { btn.disabled = false; }
  }

  let progressChart = null;
  async function newProgressChart() {
    await loadUplot();
    if (progressChart) progressChart.destroy();
    jobPlot.replaceChildren();
    progressChart = timeSeries(jobPlot, [{ label: "progress (%)", color: "#4aa3ff" }], { height: 120, keep: 300, yLabel: "%" });
  }

  function watch(jobId) {
    if (socket) { socket.onclose = null; socket.close(); }
    watching = jobId;
    const chartReady = newProgressChart();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${proto}//${location.host}/jobs/${encodeURIComponent(jobId)}/ws`);
    socket.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type !== "job_update") return;
      const pct = msg.data.status === "complete" ? 100 : msg.data.progress ? msg.data.progress.percent : 0;
      chartReady.then(() => { progressChart.push(msg.ts, [pct]); progressChart.draw(); });
      showJob(msg.data, msg.exports || []);
    };
    socket.onclose = () => { socket = null; };
  }

  let shownExports = "";
  async function showJob(job, exports) {
    const pct = job.status === "complete" ? 100 : job.progress ? job.progress.percent : 0;
    bar(jobBar, pct);
    jobBar.parentElement.dataset.percent = pct;
    jobText.replaceChildren(stateBadge(job.status), ` ${job.job_id} · ${job.filename}`,
      job.progress ? ` · ${job.progress.stage} ${num(job.progress.percent, 0)} %` : "", job.error ? ` · ${job.error}` : "");
    if (job.status === "complete" || job.status === "failed") loadJobs();
    if (job.status !== "complete") return;
    const key = `${job.job_id}:${exports.join(",")}`;
    if (key === shownExports) return;
    shownExports = key;
    const res = job.results || {};
    const top = res.top_candidates || [];
    const ordered = [...FORMATS.filter((f) => exports.includes(f)), ...exports.filter((f) => !FORMATS.includes(f))];
    const links = await Promise.all(ordered.map(async (fmt) => {
      if (fmt === "csv") return [fmt, `/jobs/${job.job_id}/download?format=csv`];
      try { return [fmt, (await get(`/jobs/${job.job_id}/download?format=${fmt}`)).download_url]; } catch { return [fmt, null]; }
    }));
    const waterfall = links.find(([f]) => f === "waterfall");
    fill(results,
      h("div", { class: "grid" },
        h("div", { class: "span-6" },
          h("dl", { class: "kv" },
            h("dt", null, "Job"), h("dd", { class: "mono" }, job.job_id),
            h("dt", null, "Hits"), h("dd", null, `${res.raw_hits ?? "—"} raw · ${res.filtered_hits ?? "—"} after RFI filter · ${res.candidates ?? "—"} candidates`),
            h("dt", null, "Processing"), h("dd", null, `${num(res.processing_time_seconds, 1)} s`),
            h("dt", null, "Downloads"), h("dd", { id: "downloads" }, links.filter(([, u]) => u).map(([f, u], i) =>
              [i ? " · " : "", h("a", { href: u, download: "", dataset: { format: f } }, f)]))),
          h("table", { id: "hits", style: "margin-top:10px" }, h("thead", null, h("tr", null, h("th", { class: "num" }, "frequency (MHz)"),
            h("th", { class: "num" }, "drift (Hz/s)"), h("th", { class: "num" }, "S/N"), h("th", null, "class"), h("th", { class: "num" }, "interest"))),
          h("tbody", null, top.length ? top.map((c) => h("tr", null, h("td", { class: "num mono" }, num(c.frequency_hz / 1e6, 6)),
            h("td", { class: "num" }, num(c.drift_rate, 3)), h("td", { class: "num" }, num(c.snr, 1)), h("td", null, c.classification),
            h("td", { class: "num" }, num(c.interestingness, 2)))) : h("tr", null, h("td", { colspan: 5, class: "empty" }, "No candidates above the threshold"))))),
        h("div", { class: "span-6 waterfall" }, waterfall && waterfall[1]
          ? h("img", { src: waterfall[1], alt: "waterfall of the strongest hits", id: "waterfall" })
          : h("div", { class: "empty" }, "The waterfall is written shortly after completion…"))));
  }

  async function loadJobs() {
    try {
      const jobs = await get("/jobs?limit=50");
      fill(jobsBody, jobs.length ? jobs.map((j) => h("tr", { class: `clickable ${j.job_id === watching ? "selected" : ""}`, onclick: () => watch(j.job_id) },
        h("td", { class: "mono" }, j.job_id), h("td", null, j.filename), h("td", null, j.source_name), h("td", { class: "num" }, bytes(j.file_size)),
        h("td", null, when(j.created_at)), h("td", null, stateBadge(j.status))))
        : h("tr", null, h("td", { colspan: 6, class: "empty" }, "No jobs yet")));
    } catch { /* signed out */ }
  }

  async function loadUsage() {
    try {
      const u = await get("/usage");
      const pct = (100 * u.usage_this_month) / Math.max(1, u.limit);
      fill(usageEl, h("dl", { class: "kv" },
        h("dt", null, "Tier"), h("dd", null, h("span", { class: "pill" }, u.tier), ` · ${u.tier_details.price}`),
        h("dt", null, "This month"), h("dd", { id: "usage-count" }, `${u.usage_this_month} of ${u.limit} files (${u.remaining} left)`,
          h("div", { class: `meter ${pct >= 100 ? "full" : pct > 80 ? "hi" : ""}` }, h("div", { style: `width:${Math.min(100, pct)}%` }))),
        h("dt", null, "Largest file"), h("dd", null, `${u.tier_details.max_file_mb} MB`),
        h("dt", null, "Results kept"), h("dd", null, `${u.tier_details.retention_days} days`)));
    } catch { /* signed out */ }
  }

  async function loadKeys() {
    try {
      const { keys } = await get("/api-keys");
      fill(keysBody, keys.map((k) => h("tr", { dataset: { key: k.key_id } }, h("td", null, k.name), h("td", { class: "mono" }, k.key_id),
        h("td", null, when(k.created_at)), h("td", null, when(k.expires_at)),
        h("td", null, stateBadge(k.active ? "ok" : k.expired ? "expired" : "revoked")),
        h("td", null, k.active ? h("button", { class: "danger", onclick: () => revoke(k.key_id) }, "Revoke") : ""))));
    } catch (err) { fill(keysBody, h("tr", null, h("td", { colspan: 6, class: "empty" }, err.message))); }
  }

  async function createKey() {
    try {
      const r = await post("/api-keys", { name: keyName.value.trim() || "dashboard" });
      fill(newKey, h("p", { class: "warn" }, r.warning || "Copy this key now: it is shown once."), h("div", { class: "secret" }, r.api_key));
      loadKeys();
    } catch (err) { ctx.toast(err.message); }
  }

  async function revoke(keyId) {
    try { await del(`/api-keys/${encodeURIComponent(keyId)}`); loadKeys(); } catch (err) { ctx.toast(err.message); }
  }

  function refresh() {
    signedOut.hidden = !!ctx.user;
    content.hidden = !ctx.user;
    if (ctx.user && !el.hidden) { loadJobs(); loadUsage(); loadKeys(); }
    if (!ctx.user) { newKey.replaceChildren(); results.replaceChildren(); }
  }

  return { el, show: refresh, session: refresh, render() {} };
}
