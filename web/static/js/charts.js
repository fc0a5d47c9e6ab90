// Plots with uPlot (vendored under /static/vendor/uplot, MIT): the queue history, a source's
// light curve with error bars, baseline and flagged epochs, and a SETI job's progress.

let loading = null;
/** uPlot is loaded on first use, off the first paint's critical path. */
export function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/static/vendor/uplot/uPlot.iife.min.js";
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => reject(new Error("could not load uPlot"));
      document.head.append(s);
    });
  }
  return loading;
}

const AXIS = { stroke: "#8593a3", grid: { stroke: "#2a343f", width: 1 }, ticks: { stroke: "#2a343f" } };

function width(el) { return Math.max(280, el.clientWidth || 600); }

/** A rolling time series: push(values) appends one sample, keeping the last `keep` (no growth). */
export function timeSeries(el, series, { height = 180, keep = 600, yLabel = "" } = {}) {
  const data = [new Float64Array(keep), ...series.map(() => new Float64Array(keep))];
  let n = 0;
  const plot = new uPlot({
    width: width(el), height,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [{ ...AXIS }, { ...AXIS, label: yLabel, size: 50 }],
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, points: { show: false } }))],
  }, [[], ...series.map(() => [])], el);
  const ro = new ResizeObserver(() => plot.setSize({ width: width(el), height }));
  ro.observe(el);
  return {
    push(t, values) {
      if (n === keep) { for (const a of data) a.copyWithin(0, 1); n--; }
      data[0][n] = t;
      values.forEach((v, i) => { data[i + 1][n] = v; });
      n++;
    },
    draw() { plot.setData(data.map((a) => a.subarray(0, n))); },
    destroy() { ro.disconnect(); plot.destroy(); },
  };
}

/** Error bars for series 1 from `errs`; flagged epochs (series 3) drawn over them. */
function errorBars(errs) {
  return (u) => {
    const ctx = u.ctx;
    const xs = u.data[0], ys = u.data[1];
    ctx.save();
    ctx.strokeStyle = "rgba(74,163,255,.75)";
    ctx.lineWidth = 1 * devicePixelRatio;
    ctx.beginPath();
    for (let i = 0; i < xs.length; i++) {
      if (ys[i] === null || errs[i] === null) continue;
      const x = u.valToPos(xs[i], "x", true);
      const y0 = u.valToPos(ys[i] - errs[i], "y", true);
      const y1 = u.valToPos(ys[i] + errs[i], "y", true);
      const cap = 3 * devicePixelRatio;
      ctx.moveTo(x, y0); ctx.lineTo(x, y1);
      ctx.moveTo(x - cap, y0); ctx.lineTo(x + cap, y0);
      ctx.moveTo(x - cap, y1); ctx.lineTo(x + cap, y1);
    }
    ctx.stroke();
    ctx.restore();
  };
}

/**
 * A light curve: flux (mJy) against MJD with 1σ error bars, the baseline as a dashed line and the
 * flagged epochs (|flux − baseline| ≥ threshold σ) as red diamonds.
 */
export function lightCurve(el, epochs, baselineMjy, threshold = 5) {
  const xs = epochs.map((e) => e.mjd);
  const ys = epochs.map((e) => e.flux_mjy);
  const errs = epochs.map((e) => e.error_mjy);
  const flagged = epochs.map((e) => (baselineMjy !== null && e.error_mjy > 0 &&
    Math.abs(e.flux_mjy - baselineMjy) / e.error_mjy >= threshold ? e.flux_mjy : null));
  const base = xs.map(() => baselineMjy);
  let lo = Infinity, hi = -Infinity;
  epochs.forEach((e) => { lo = Math.min(lo, e.flux_mjy - e.error_mjy); hi = Math.max(hi, e.flux_mjy + e.error_mjy); });
  if (baselineMjy !== null) { lo = Math.min(lo, baselineMjy); hi = Math.max(hi, baselineMjy); }
  const pad = (hi - lo) * 0.1 || 1;
  const plot = new uPlot({
    width: width(el), height: 260,
    scales: { x: { time: false }, y: { range: [lo - pad, hi + pad] } },
    axes: [
      { ...AXIS, label: "MJD", space: 90, values: (u, v) => v.map((x) => x.toFixed(3)) },
      { ...AXIS, label: "flux density (mJy)", size: 60 },
    ],
    series: [
      { label: "MJD", value: (u, v) => (v === null ? "—" : v.toFixed(5)) },
      { label: "flux (mJy)", stroke: "#4aa3ff", width: 0, paths: () => null, points: { show: true, size: 6, fill: "#4aa3ff" } },
      { label: "baseline", stroke: "#d29922", width: 1.5, dash: [6, 4], points: { show: false } },
      { label: "flagged", stroke: "#f85149", width: 0, paths: () => null, points: { show: true, size: 11, fill: "#f85149" } },
    ],
    hooks: { drawSeries: [(u, i) => { if (i === 1) errorBars(errs)(u); }] },
  }, [xs, ys, base, flagged], el);
  const ro = new ResizeObserver(() => plot.setSize({ width: width(el), height: 260 }));
  ro.observe(el);
  return { plot, flaggedCount: flagged.filter((f) => f !== null).length, destroy() { ro.disconnect(); plot.destroy(); } };
}
