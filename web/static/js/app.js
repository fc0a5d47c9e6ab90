// The dashboard's entry point: session (API key exchanged for an HttpOnly cookie, never stored
// by the page), tab routing, the live connection and render scheduling.
//
// Live messages only update `ctx.state`; the visible view re-renders at most every RENDER_MS from
// the latest state, so 200 events/s cost the page a handful of renders per second and nothing
// accumulates (no per-event DOM, no unbounded arrays).

import { api, get, setCsrf, ApiError } from "./api.js";
import { Live } from "./live.js";
import { throttle } from "./dom.js";
import { pipelineView } from "./views/pipeline.js";
import { imagesView } from "./views/images.js";
import { sourcesView } from "./views/sources.js";
import { alertsView } from "./views/alerts.js";
import { setiView } from "./views/seti.js";

const RENDER_MS = 250;

const ctx = {
  state: { status: null, metrics: null, ese: null, alerts: null, cursor: null, lastMessageAt: 0 },
  user: null,
  get operator() { return !!this.user && this.user.role === "operator"; },
  toast,
  stats: { renders: 0, messages: 0, lastRender: 0, firstData: 0 },
};
window.__dashboard = ctx; // for the benchmark and tests: counters only, no secrets

// Views are built the first time they are shown: the first paint builds one view, not five.
const factories = { pipeline: pipelineView, images: imagesView, sources: sourcesView, alerts: alertsView, seti: setiView };
const views = {};
function view(name) {
  if (!views[name]) views[name] = factories[name](ctx, document.getElementById(`view-${name}`));
  return views[name];
}
let current = null;

function render() {
  if (!current) return;
  views[current].render();
  ctx.stats.renders++;
  ctx.stats.lastRender = performance.now();
  if (!ctx.stats.firstData && ctx.state.status) ctx.stats.firstData = ctx.stats.lastRender; // ms since navigation
}
const scheduleRender = throttle(render, RENDER_MS);
ctx.rerender = scheduleRender;

function onMessage(msg) {
  ctx.stats.messages++;
  const s = ctx.state;
  s.lastMessageAt = Date.now();
  if (msg.cursor) s.cursor = msg.cursor;
  switch (msg.type) {
    case "status_update":
      s.status = msg.data.pipeline_status;
      if (msg.data.metrics) s.metrics = msg.data.metrics;
      if (msg.data.ese_candidates) s.ese = msg.data.ese_candidates;
      break;
    case "metrics_update": s.metrics = msg.data; break;
    case "ese_update": s.ese = msg.data; break;
    case "alert_update": s.alerts = msg.data; break;
    default: return;
  }
  updateBadges();
  for (const v of Object.values(views)) if (v.live) v.live(msg);
  scheduleRender();
}

let seenEse = null;
function updateBadges() {
  const ese = ctx.state.ese;
  const active = ese ? ese.candidates.filter((c) => c.status === "active").length : 0;
  const badge = document.getElementById("ese-badge");
  badge.textContent = active;
  badge.hidden = active === 0;
  if (seenEse !== null && ese && ese.total > seenEse && current !== "sources") toast(`New ESE candidate (${ese.candidates[0].source_id})`, "info");
  if (ese) seenEse = ese.total;
}

const liveEl = document.getElementById("live");
const live = new Live(onMessage, (state) => {
  liveEl.className = `live ${state}`;
  liveEl.textContent = state === "on" ? "● live" : state === "wait" ? "● connecting" : "● offline";
});

function show(name) {
  if (!factories[name]) name = "pipeline";
  if (current === name) return;
  if (current) { views[current].hide?.(); views[current].el.hidden = true; }
  current = name;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === name);
  const v = view(name);
  v.el.hidden = false;
  v.show?.();
  render();
}
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

// -- session --------------------------------------------------------------------------------
function applySession(user) {
  ctx.user = user;
  setCsrf(user ? user.csrf_token : null);
  document.getElementById("login").hidden = !!user;
  document.getElementById("whoami").hidden = !user;
  document.body.classList.toggle("is-operator", ctx.operator);
  if (user) {
    document.getElementById("who-email").textContent = user.email;
    const role = document.getElementById("who-role");
    role.textContent = `${user.role} · ${user.tier}`;
    role.className = `pill ${user.role}`;
  }
  for (const v of Object.values(views)) v.session?.();
  render();
}

document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("login-key");
  const key = input.value.trim();
  if (!key) return;
  try {
    const user = await api("POST", "/api/session", { api_key: key });
    input.value = "";
    applySession(user);
    live.restart(); // the live view now runs under the session
  } catch (err) {
    toast(err instanceof ApiError ? `Sign-in failed: ${err.message}` : String(err));
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("DELETE", "/api/session"); } catch { /* the cookie is gone either way */ }
  applySession(null);
  live.restart();
});

let toastTimer = null;
function toast(message, kind = "error") {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 6000 : 3500);
}

async function boot() {
  show(location.hash.slice(1) || "pipeline");
  // All at once: the live socket (the browser sends the session cookie by itself), the session
  // check, and the current status over plain HTTP so the first render need not wait for the socket.
  live.start();
  (window.__firstStatus || get("/api/status")).then((status) => {
    if (!ctx.state.status) { ctx.state.status = status; scheduleRender(); }
  }).catch(() => {});
  try {
    applySession(await api("GET", "/api/session"));
  } catch {
    applySession(null);
  }
}
boot();
