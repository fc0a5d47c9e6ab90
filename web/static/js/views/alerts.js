// Alerts: every Slack delivery attempt, newest first; new ones appear live and are highlighted.

import { get, qs } from "../api.js";
import { h, fill, card, when, throttle, plural } from "../dom.js";

const TYPES = ["", "ese_candidate", "calibrator_missing", "system_error"];

export function alertsView(ctx, el) {
  const body = h("tbody");
  const type = h("select", { id: "alert-type", onchange: () => load() }, TYPES.map((t) => h("option", { value: t }, t || "all types")));
  el.append(h("div", { class: "grid" },
    card("Alert history", { span: 12, aside: h("span", { class: "row" }, h("span", { class: "muted", id: "alerts-total" }), type) },
      h("div", { class: "scroll", style: "max-height:none" }, h("table", { id: "alerts" }, h("thead", null, h("tr", null,
        h("th", null, "sent"), h("th", null, "type"), h("th", null, "severity"), h("th", null, "source"), h("th", null, "channel"),
        h("th", null, "delivered"), h("th", null, "message"))), body)))));

  const seen = new Set();
  let latestTotal = null;
  let unread = 0;

  async function load() {
    try {
      const r = await get(`/api/alerts/history${qs({ limit: 200, alert_type: type.value })}`);
      document.getElementById("alerts-total").textContent = `${plural(r.total, "delivery attempt")}`;
      const first = seen.size === 0;
      fill(body, r.alerts.length ? r.alerts.map((a) => {
        const fresh = !first && !seen.has(a.id);
        seen.add(a.id);
        return h("tr", { class: fresh ? "flash" : null, dataset: { alert: a.id } },
          h("td", null, when(a.sent_at)), h("td", null, a.alert_type),
          h("td", null, h("span", { class: `state ${a.severity === "critical" || a.severity === "high" ? "failed" : a.severity === "warning" ? "pending" : "queued"}` }, a.severity)),
          h("td", { class: "mono" }, a.source_id || "—"), h("td", null, a.channel),
          h("td", null, a.success ? h("span", { class: "ok" }, "✓") : h("span", { class: "bad" }, "✗")),
          h("td", { style: "white-space:normal" }, a.message));
      }) : h("tr", null, h("td", { colspan: 7, class: "empty" }, "No alerts sent")));
      if (seen.size > 5000) seen.clear();
    } catch (err) { ctx.toast(err.message); }
  }
  const reload = throttle(load, 1500);

  function badge() {
    const b = document.getElementById("alert-badge");
    b.textContent = unread;
    b.hidden = unread === 0;
  }

  return {
    el,
    show() { unread = 0; badge(); load(); },
    live(msg) {
      // alert_update carries {alerts, total}; without it, any change may have sent one: re-read.
      const total = msg.type === "alert_update" ? msg.data.total : null;
      if (total !== null) {
        if (latestTotal !== null && total > latestTotal && el.hidden) { unread += total - latestTotal; badge(); }
        latestTotal = total;
      }
      if (!el.hidden && (msg.type === "alert_update" || msg.type === "ese_update" || msg.type === "status_update")) reload();
    },
    render() {},
  };
}
