// Pipeline: queue counts and history, observation groups moving through their states live,
// Measurement Sets by stage, calibration sets and validity, actors, system metrics, streaming.

import { get, post, ApiError } from "../api.js";
import { h, fill, card, stateBadge, num, ago, when, mjd, bytes, throttle } from "../dom.js";
import { timeSeries, loadUplot } from "../charts.js";

const STATES = ["collecting", "pending", "in_progress", "completed", "failed"];
const CONFIG_FIELDS = [
  ["input_dir", "Input directory", "text"],
  ["output_dir", "Output directory", "text"],
  ["batch_size", "Batch size", "number"],
  ["poll_interval", "Poll interval (s)", "number"],
];

export function pipelineView(ctx, el) {
  const stats = h("div", { class: "stats" });
  const groupsBody = h("tbody");
  const msBody = h("tbody");
  const msStages = h("div", { class: "row", id: "ms-stages" });
  const calBody = h("tbody");
  const actorsBody = h("tbody");
  const metricsEl = h("dl", { class: "kv" });
  const streamEl = h("dl", { class: "kv" });
  const historyEl = h("div", { class: "plot" });
  const controls = h("div", { class: "row", id: "streaming-controls" },
    h("button", { class: "primary", "data-op": "", onclick: () => control("start") }, "Start"),
    h("button", { "data-op": "", onclick: () => control("restart") }, "Restart"),
    h("button", { class: "danger", "data-op": "", onclick: () => control("stop") }, "Stop"));
  const form = h("form", { id: "streaming-config", onsubmit: saveConfig });
  const inputs = {};
  for (const [name, label, type] of CONFIG_FIELDS) {
    const input = h("input", { name, type, step: type === "number" ? "any" : undefined, id: `cfg-${name}` });
    const err = h("div", { class: "err", id: `cfg-${name}-error` });
    inputs[name] = { input, err };
    form.append(h("div", { class: "field" }, h("label", { for: `cfg-${name}` }, label), input, err));
  }
  const saveBtn = h("button", { class: "primary", type: "submit", "data-op": "" }, "Save configuration");
  form.append(h("div", { class: "row end" }, saveBtn));

  el.append(h("div", { class: "grid" },
    card("Queue", { span: 7, aside: h("span", { class: "muted", id: "cursor" }) }, stats,
      h("div", { style: "margin-top:10px" }, historyEl)),
    card("Observation groups", { span: 5, aside: "last 20, live" },
      h("div", { class: "scroll", style: "max-height:330px" }, h("table", { id: "groups" },
        h("thead", null, h("tr", null, h("th", null, "group"), h("th", null, "state"), h("th", null, "subbands"), h("th", null, "cal"))),
        groupsBody))),
    card("Measurement Sets by stage", { span: 7 }, msStages,
      h("div", { class: "scroll", style: "max-height:260px" }, h("table", { id: "ms" },
        h("thead", null, h("tr", null, h("th", null, "path"), h("th", null, "field"), h("th", null, "stage"),
          h("th", null, "status"), h("th", { class: "num" }, "mid MJD"))), msBody))),
    card("Calibration sets", { span: 5 },
      h("div", { class: "scroll", style: "max-height:300px" }, h("table", { id: "calsets" },
        h("thead", null, h("tr", null, h("th", null, "set"), h("th", null, "calibrator"),
          h("th", { class: "num" }, "targets"), h("th", null, "valid (MJD)"), h("th", null, ""))), calBody))),
    card("Actors", { span: 7, aside: "heartbeats" },
      h("div", { class: "scroll" }, h("table", { id: "actors" },
        h("thead", null, h("tr", null, h("th", null, "role"), h("th", null, "instance"), h("th", { class: "num" }, "pid"),
          h("th", { class: "num" }, "last seen"), h("th", { class: "num" }, "handled"), h("th", { class: "num" }, "failed"),
          h("th", { class: "num" }, "in flight"))), actorsBody))),
    card("System", { span: 5 }, metricsEl),
    card("Streaming service", { span: 12, id: "streaming" },
      h("div", { class: "grid" },
        h("div", { class: "span-5" }, streamEl, h("div", { style: "margin-top:10px" }, controls)),
        h("div", { class: "span-7" }, form)))));

  let history = null;
  let historyLoading = null;
  const prevState = new Map();
  let timers = [];
  let configLoaded = false;

  function renderQueue() {
    const st = ctx.state.status;
    if (!st) return;
    const q = st.queue;
    fill(stats, ...["total", ...STATES].map((k) =>
      h("div", { class: `stat ${k}`, dataset: { queue: k } }, h("div", { class: "n" }, q[k] ?? 0), h("div", { class: "l" }, k.replace("_", " ")))));
    const c = ctx.state.cursor;
    document.getElementById("cursor").textContent = c ? `event #${c.seq}` : "";
    const rows = st.recent_groups.map((g) => {
      const changed = prevState.has(g.group_id) && prevState.get(g.group_id) !== g.state;
      prevState.set(g.group_id, g.state);
      return h("tr", { class: changed ? "flash" : null, dataset: { group: g.group_id, state: g.state } },
        h("td", { class: "mono" }, g.group_id), h("td", null, stateBadge(g.state)),
        h("td", null, `${g.subbands_present}/${g.expected_subbands}`,
          h("div", { class: "meter" }, h("div", { style: `width:${(100 * g.subbands_present) / Math.max(1, g.expected_subbands)}%` }))),
        h("td", null, g.has_calibrator ? "★" : ""));
    });
    if (prevState.size > 200) prevState.clear();
    fill(groupsBody, rows.length ? rows : h("tr", null, h("td", { colspan: 4, class: "empty" }, "No observation groups yet")));
    const nowMjd = Date.now() / 86400000 + 40587;
    fill(calBody, st.calibration_sets.length ? st.calibration_sets.map((cs) => {
      const has = cs.valid_from_mjd !== undefined;
      const valid = has && cs.valid_from_mjd <= nowMjd && nowMjd <= cs.valid_to_mjd;
      return h("tr", null, h("td", { class: "mono", title: `solved ${when(cs.created_at)}` }, cs.cal_group_id),
        h("td", null, cs.calibrator || "—"), h("td", { class: "num" }, cs.num_targets),
        h("td", { class: "mono", title: has ? `${mjd(cs.valid_from_mjd)} – ${mjd(cs.valid_to_mjd)}` : "" },
          has ? `${num(cs.valid_from_mjd, 2)}–${num(cs.valid_to_mjd, 2)}` : "—"),
        h("td", null, has ? h("span", { class: `state ${valid ? "ok" : "false_positive"}` }, valid ? "valid now" : "outside") : ""));
    }) : h("tr", null, h("td", { colspan: 5, class: "empty" }, "No calibration sets yet")));
  }

  function renderMetrics() {
    const m = ctx.state.metrics;
    if (!m) return;
    const meter = (p) => h("div", { class: `meter ${p > 90 ? "full" : p > 70 ? "hi" : ""}` }, h("div", { style: `width:${p}%` }));
    fill(metricsEl,
      h("dt", null, "CPU"), h("dd", null, `${num(m.cpu_percent, 1)} %`, meter(m.cpu_percent)),
      h("dt", null, "Memory"), h("dd", null, `${num(m.mem_percent, 1)} %`, meter(m.mem_percent)),
      h("dt", null, "Disk"), h("dd", null, `${bytes(m.disk_used)} of ${bytes(m.disk_total)}`, meter((100 * m.disk_used) / Math.max(1, m.disk_total))),
      h("dt", null, "Load"), h("dd", null, `${num(m.load_1)} ${num(m.load_5)} ${num(m.load_15)}`),
      h("dt", null, "Sampled"), h("dd", null, when(m.ts)));
  }

  let lastSample = 0;
  function sampleHistory() {
    const st = ctx.state.status;
    if (!st || !history) return;
    const now = Date.now() / 1000;
    if (now - lastSample < 1) return;
    lastSample = now;
    const q = st.queue;
    history.push(now, [q.collecting, q.pending, q.in_progress, q.completed, q.failed]);
  }

  const loadMs = throttle(async () => {
    try {
      const [all, ...stages] = await Promise.all([get("/api/control/ms/list?limit=50"),
        ...["converted", "calibrated", "imaged"].map((s) => get(`/api/control/ms/list?stage=${s}&limit=1`))]);
      fill(msStages, h("span", { class: "pill" }, `all ${all.total}`),
        ...["converted", "calibrated", "imaged"].map((s, i) => h("span", { class: "pill", dataset: { stage: s } }, `${s} ${stages[i].total}`)));
      fill(msBody, all.ms_list?.length || all.items?.length ? (all.ms_list || all.items).map((m) =>
        h("tr", null, h("td", { class: "mono", title: m.path }, m.path.split("/").pop()), h("td", null, m.field_name),
          h("td", null, stateBadge(m.stage)), h("td", null, stateBadge(m.status)), h("td", { class: "num mono" }, mjd(m.mid_mjd))))
        : h("tr", null, h("td", { colspan: 5, class: "empty" }, "No Measurement Sets yet")));
    } catch (err) { /* shown again at the next change */ }
  }, 2000);

  async function loadActors() {
    try {
      const { actors } = await get("/api/actors");
      fill(actorsBody, actors.length ? actors.map((a) => h("tr", null,
        h("td", null, h("span", { class: `dot ${a.alive ? "alive" : ""}` }), a.role), h("td", { class: "mono" }, a.instance),
        h("td", { class: "num" }, a.pid), h("td", { class: "num" }, ago(a.last_seen_s)), h("td", { class: "num" }, a.handled),
        h("td", { class: `num ${a.failed ? "bad" : ""}` }, a.failed), h("td", { class: "num" }, a.in_flight)))
        : h("tr", null, h("td", { colspan: 7, class: "empty" }, "No actor heartbeats")));
    } catch { /* next poll */ }
  }

  async function loadStreaming() {
    try {
      const s = await get("/api/streaming/status");
      fill(streamEl,
        h("dt", null, "State"), h("dd", { id: "streaming-state" }, h("span", { class: `state ${s.running ? "ok" : "failed"}` }, s.running ? "running" : "stopped")),
        h("dt", null, "PID"), h("dd", null, s.pid ?? "—"),
        h("dt", null, "Uptime"), h("dd", null, ago(s.uptime_seconds)),
        h("dt", null, "CPU / memory"), h("dd", null, `${num(s.cpu_percent, 1)} % · ${num(s.memory_mb, 0)} MB`),
        h("dt", null, "Queue"), h("dd", null, `${s.queue_stats.total} total · ${s.queue_stats.pending} pending · ${s.queue_stats.processing} processing`));
      if (!configLoaded) {
        const cfg = await get("/api/streaming/config");
        for (const [name] of CONFIG_FIELDS) inputs[name].input.value = cfg[name] ?? "";
        configLoaded = true;
      }
    } catch { /* next poll */ }
  }

  async function control(action) {
    try {
      const r = await post(`/api/streaming/${action}`);
      ctx.toast(r.message || `${action}: ${r.status}`, "info");
      loadStreaming();
    } catch (err) { ctx.toast(err.message); }
  }

  async function saveConfig(e) {
    e.preventDefault();
    for (const { input, err } of Object.values(inputs)) { input.classList.remove("invalid"); err.textContent = ""; }
    const body = {};
    for (const [name, , type] of CONFIG_FIELDS) {
      const v = inputs[name].input.value.trim();
      if (v !== "") body[name] = type === "number" ? Number(v) : v;
    }
    try {
      const r = await post("/api/streaming/config", body);
      ctx.toast(r.message || "Configuration updated", "info");
    } catch (err) {
      const field = err instanceof ApiError && err.field ? String(err.field).split(".").pop() : null;
      if (field && inputs[field]) {
        inputs[field].input.classList.add("invalid");
        inputs[field].err.textContent = err.message;
      } else ctx.toast(err.message);
    }
  }

  function applyRole() {
    for (const b of el.querySelectorAll("[data-op]")) b.hidden = !ctx.operator;
    for (const { input } of Object.values(inputs)) input.disabled = !ctx.operator;
  }
  applyRole();

  return {
    el,
    show() {
      if (!historyLoading) {
        historyLoading = loadUplot().then(() => { history = timeSeries(historyEl, [
          { label: "collecting", color: "#8593a3" }, { label: "pending", color: "#d29922" },
          { label: "in progress", color: "#4aa3ff" }, { label: "completed", color: "#3fb950" }, { label: "failed", color: "#f85149" },
        ], { height: 170, yLabel: "groups" }); });
      }
      loadMs(); loadActors(); loadStreaming();
      timers = [setInterval(loadActors, 2000), setInterval(loadStreaming, 5000), setInterval(() => { if (history) { sampleHistory(); history.draw(); } }, 1000)];
    },
    hide() { timers.forEach(clearInterval); timers = []; },
    live(msg) { if (msg.type === "status_update") { sampleHistory(); if (!el.hidden) loadMs(); } },
    render() { renderQueue(); renderMetrics(); },
    session() { applyRole(); },
  };
}
