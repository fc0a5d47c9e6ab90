// Small DOM helpers: h() builds elements, fmt* format numbers and times the way operators read them.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "html") el.innerHTML = v;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, v);
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** Replace an element's children (cheaper and safer than innerHTML for live re-renders). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function card(title, { span = 12, aside = null, id = null } = {}, ...body) {
  return h("div", { class: `card span-${span}`, id }, h("h2", null, title, aside ? h("span", { class: "aside" }, aside) : null), ...body);
}

export function stateBadge(state) {
  return h("span", { class: `state ${state}` }, String(state).replace("_", " "));
}

/** "1 source", "2 sources" (and "1,000 candidates"). */
export function plural(n, word) {
  return `${Number(n).toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

export function num(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  return Number(x).toFixed(digits);
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const u = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toISOString().replace("T", " ").slice(0, 19);
}

/** MJD to an ISO-like UTC string. */
export function mjd(m) {
  if (m === null || m === undefined) return "—";
  return `${Number(m).toFixed(5)}`;
}

export function mjdToDate(m) {
  return new Date((m - 40587) * 86400000).toISOString().replace("T", " ").slice(0, 19);
}

/** Call fn at most once per `ms`, always with the latest arguments (trailing edge). */
export function throttle(fn, ms) {
  let timer = null, last = 0, pending = null;
  return (...args) => {
    pending = args;
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null; last = Date.now();
      const a = pending; pending = null;
      fn(...a);
    }, wait);
  };
}
