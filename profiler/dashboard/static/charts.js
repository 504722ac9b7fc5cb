// The report's charts as SVG, drawn from the mfu-report/1 JSON: the ledger waterfall, the per-step breakdown,
// the top ops' achieved TFLOP/s against the peaks, and MFU and the principal causes from cycle to cycle.

export const COLORS = {
  matmul: "#2b6cb0", other_compute: "#63b3ed", memory: "#d69e2e", communication: "#805ad5",
  data_loading: "#e53e3e", host_overhead: "#ed8936", idle: "#a0aec0", unrecorded: "#805ad5",
};
const SERIES = ["#2b6cb0", "#e53e3e", "#38a169", "#d69e2e", "#805ad5"];
const NS = "http://www.w3.org/2000/svg";

export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function svg(width, height, cls) {
  return el("svg:svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: cls });
}

function text(x, y, value, attrs = {}) {
  return el("svg:text", { x, y, "font-size": 11, ...attrs, text: value });
}

function rect(x, y, w, h, fill, title, cls = "bar") {
  return el("svg:rect", { x, y, width: Math.max(w, 0), height: h, fill, class: cls },
    title ? el("svg:title", { text: title }) : null);
}

const num = (v) => String(Number(v.toPrecision(3)));  // 3 significant digits, for log axes
export const fmt = (v, digits = 2) => (v === null || v === undefined ? "n/a" : Number(v).toFixed(digits));
// bytes in decimal units, as device memory is sold (report/reading.fmt_bytes)
export const fmtBytes = (v) => {
  const [unit, scale] = [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["kB", 1e3]].find(([, s]) => Math.abs(v) >= s) || ["B", 1];
  return `${fmt(v / scale, scale === 1 ? 0 : 2)} ${unit}`;
};
// the MFU the ledger adds up to: analytic, or counted where the model's FLOPs are unknown (the report says so)
export const ledgerMfu = (report) => report.mfu.analytic ?? report.mfu.counted;

// the ledger's unit: points of MFU, or points of the step time where MFU cannot be formed (no FLOPs, no peak)
export const timeLedger = (report) => report.ledger_unit === "step_time";
export const ledgerTitle = (report) => (timeLedger(report) ? "Time ledger: points of the step (MFU cannot be formed)" : "MFU ledger");

// MFU (or the useful work) + the ledger's causes = 100 points: each cause a bar hanging from what is left above it
export function ledgerWaterfall(report) {
  const time = timeLedger(report);
  const entries = (report.ledger || []).filter((e) => e.cause !== "useful");
  const useful = (report.ledger || []).find((e) => e.cause === "useful");
  const mfu = time ? (useful ? useful.points / 100 : 0) : ledgerMfu(report);
  if (mfu === null || !entries.length) return el("p", { class: "note", text: "No ledger: see the warnings." });
  const row = 22, left = 150, width = 420, height = (entries.length + 2) * row + 20;
  const x = (points) => left + (width * points) / 100;
  const chart = svg(left + width + 70, height, "ledger");
  const top = time ? "step" : "peak";
  chart.append(rect(x(0), 4, width, row - 6, "#cbd5e0", `${top}: 100 points`, "peak"), text(4, 4 + row / 2 + 4, top));
  let level = 100;
  entries.forEach((e, i) => {
    const y = (i + 1) * row + 4, from = Math.min(level, level - e.points);
    chart.append(rect(x(from), y, x(Math.abs(e.points)) - left, row - 6, e.points >= 0 ? "#e53e3e" : "#38a169",
      `${e.cause}: ${fmt(e.points)} points, ${fmt(e.ms)} ms/step`),
    text(4, y + row / 2 + 4, e.cause), text(left + width + 6, y + row / 2 + 4, `${fmt(e.points, 1)}`));
    level -= e.points;
  });
  const y = (entries.length + 1) * row + 4;
  const bottom = time ? "useful" : report.mfu.analytic === null ? "MFU (counted)" : "MFU";
  chart.append(rect(x(0), y, x(100 * mfu) - left, row - 6, "#2b6cb0", `${bottom} ${fmt(100 * mfu)}%`, "mfu"),
    text(4, y + row / 2 + 4, bottom, { "font-weight": "bold" }), text(left + width + 6, y + row / 2 + 4, `${fmt(100 * mfu, 1)}%`));
  chart.append(text(left, height - 4, time ? "points of the step time (percent of the step)" : "points of MFU (percent of the peak)", { fill: "#555" }));
  return chart;
}

// one stacked bar per analysed step, ms per category
export function stepBreakdown(report) {
  const steps = report.per_step || [];
  if (!steps.length) return el("p", { class: "note", text: "No steps." });
  // unrecorded (device work the trace lost) only where a step has any, as the report's breakdown shows it
  const categories = Object.keys(COLORS).filter((c) => c !== "unrecorded" || steps.some((s) => s[c] > 0));
  const left = 48, plot = 520, height = 200, top = 10;
  const most = Math.max(...steps.map((s) => s.ms)) || 1;
  const slot = plot / steps.length, bar = Math.min(Math.max(slot * 0.8, 1), 60);
  const chart = svg(left + plot + 10, top + height + 60, "steps");
  for (const tick of [0, 0.5, 1]) {
    const y = top + height * (1 - tick);
    chart.append(el("svg:line", { x1: left, x2: left + plot, y1: y, y2: y, stroke: "#e2e8f0" }),
      text(2, y + 4, `${fmt(most * tick, 1)}`));
  }
  steps.forEach((s, i) => {
    let y = top + height;
    for (const c of categories) {
      const h = (height * (s[c] || 0)) / most;
      y -= h;
      if (h > 0) chart.append(rect(left + i * slot, y, bar, h, COLORS[c], `step ${s.step}: ${c} ${fmt(s[c])} ms`, "step-bar"));
    }
  });
  const span = steps.length > 1 ? `steps ${steps[0].step}-${steps[steps.length - 1].step}` : `step ${steps[0].step}`;
  chart.append(text(left, top + height + 14, `${span} (ms per step)`, { fill: "#555" }));
  categories.forEach((c, i) => {
    const x = left + (i % 4) * 130, y = top + height + 28 + Math.floor(i / 4) * 16;
    chart.append(rect(x, y - 9, 10, 10, COLORS[c], null, "legend"), text(x + 14, y, c));
  });
  return chart;
}

// achieved TFLOP/s of the ops that carried FLOPs, against the peak P and the peak at the run's dtype P_run
export function topOps(report) {
  const ops = (report.top_ops || []).filter((op) => op.tflops_per_s);
  if (!ops.length) return el("p", { class: "note", text: "No op with counted FLOPs." });
  const row = 20, left = 230, plot = 330, top = 8;
  const peaks = [["P", report.device.peak_flops, "6 3"], ["P_run", report.device.peak_flops_run, ""]]
    .filter(([, v]) => v).map(([label, v, dash]) => [label, v / 1e12, dash]);
  const most = Math.max(...ops.map((op) => op.tflops_per_s), ...peaks.map(([, v]) => v));
  const x = (v) => left + (plot * v) / most;
  const chart = svg(left + plot + 80, top + ops.length * row + 40, "ops");
  ops.forEach((op, i) => {
    const y = top + i * row, name = op.name.length > 36 ? `${op.name.slice(0, 17)}…${op.name.slice(-18)}` : op.name;
    chart.append(text(2, y + 13, name), rect(left, y + 2, x(op.tflops_per_s) - left, row - 6, COLORS[op.category] || "#2b6cb0",
      `${op.name}: ${fmt(op.tflops_per_s, 3)} TFLOP/s, ${fmt(op.ms)} ms/step`, "op-bar"),
    text(x(op.tflops_per_s) + 4, y + 13, fmt(op.tflops_per_s, 3)));
  });
  const bottom = top + ops.length * row;
  peaks.forEach(([label, v, dash], i) => chart.append(
    el("svg:line", { x1: x(v), x2: x(v), y1: top, y2: bottom, stroke: "#e53e3e", "stroke-dasharray": dash }),
    text(x(v) - 30, bottom + 14 + 12 * i, `${label} ${fmt(v, 3)}`, { fill: "#e53e3e" })));
  chart.append(text(left, bottom + 38, "TFLOP/s achieved", { fill: "#555" }));
  return chart;
}

// the roofline: ops with counted FLOPs as points (arithmetic intensity, achieved TFLOP/s) under min(P_run, AI x
// bandwidth) on log-log axes; beside it the ops without counted FLOPs, by the bandwidth they reached. Hovering a
// point or a bar names the op.
export function roofline(report) {
  const dev = report.device, ops = (report.top_ops || []).filter((op) => op.roofline);
  if (!dev.bandwidth || !ops.length) return topOps(report);
  const bw = dev.bandwidth / 1e12, peak = (dev.peak_flops_run || 0) / 1e12;
  const flopOps = ops.filter((op) => op.roofline.achieved_tflops).slice(0, 10);
  const memOps = ops.filter((op) => !op.roofline.achieved_tflops).slice(0, 10);
  const left = 50, plot = 300, height = 220, top = 10, barLeft = left + plot + 190, barPlot = 200;
  const chart = svg(barLeft + barPlot + 60, top + height + 50, "roofline");
  const describe = (op) => `${op.name}: ${fmt(op.roofline.intensity, 1)} FLOP/byte, ` +
    (op.roofline.achieved_tflops ? `${fmt(op.roofline.achieved_tflops, 3)} TFLOP/s, ` : "") +
    `${fmt(op.roofline.achieved_tb_s, 3)} TB/s, ${fmt(100 * op.roofline.of_roofline, 0)}% of its ${op.roofline.bound} roofline, ${fmt(op.ms, 3)} ms/step`;
  if (flopOps.length && peak) {
    const ridge = peak / bw, xs = flopOps.map((op) => op.roofline.intensity);
    const x0 = Math.log10(Math.min(...xs, ridge) / 4), x1 = Math.log10(Math.max(...xs, ridge) * 4);
    const ys = flopOps.map((op) => op.roofline.achieved_tflops);
    const y0 = Math.log10(Math.min(...ys, Math.pow(10, x0) * bw) / 2), y1 = Math.log10(peak * 2);
    const x = (v) => left + (plot * (Math.log10(v) - x0)) / (x1 - x0);
    const y = (v) => top + height * (1 - (Math.log10(v) - y0) / (y1 - y0));
    const ceiling = [Math.pow(10, x0), ridge, Math.pow(10, x1)].map((v) => `${x(v)},${y(Math.min(peak, v * bw))}`);
    chart.append(el("svg:rect", { x: left, y: top, width: plot, height, fill: "none", stroke: "#cbd5e0" }),
      el("svg:polyline", { points: ceiling.join(" "), fill: "none", stroke: "#e53e3e", "stroke-width": 2, class: "ceiling" },
        el("svg:title", { text: `min(P_run ${fmt(peak, 3)} TFLOP/s, AI x ${fmt(bw, 3)} TB/s)` })),
      text(x(ridge) + 4, y(peak) - 4, `P_run ${num(peak)} TFLOP/s`, { fill: "#e53e3e" }),
      text(left + 2, top + height + 14, num(Math.pow(10, x0)), { fill: "#555" }),
      text(left + plot - 40, top + height + 14, num(Math.pow(10, x1)), { fill: "#555" }),
      text(left, top + height + 30, "arithmetic intensity (FLOP/byte, log)", { fill: "#555" }),
      text(2, top + 10, num(Math.pow(10, y1)), { fill: "#555" }), text(2, top + height, num(Math.pow(10, y0)), { fill: "#555" }),
      text(2, top + height + 44, "TFLOP/s achieved (log)", { fill: "#555" }));
    flopOps.forEach((op) => chart.append(el("svg:circle", {
      cx: x(op.roofline.intensity), cy: y(op.roofline.achieved_tflops), r: 5, fill: COLORS[op.category] || "#2b6cb0",
      class: "roofline-point" }, el("svg:title", { text: describe(op) }))));
  } else {
    chart.append(text(left, top + 20, "No op with counted FLOPs and a compute ceiling.", { fill: "#555" }));
  }
  const row = Math.min(20, height / Math.max(memOps.length, 1));
  const most = Math.max(bw, ...memOps.map((op) => op.roofline.achieved_tb_s));
  const bx = (v) => barLeft + (barPlot * v) / most;
  memOps.forEach((op, i) => {
    const yy = top + i * row, name = op.name.length > 26 ? `${op.name.slice(0, 25)}…` : op.name;
    chart.append(text(barLeft - 180, yy + 13, name), rect(barLeft, yy + 2, bx(op.roofline.achieved_tb_s) - barLeft, row - 6,
      COLORS[op.category] || "#63b3ed", describe(op), "roofline-bar"));
  });
  chart.append(el("svg:line", { x1: bx(bw), x2: bx(bw), y1: top, y2: top + height, stroke: "#e53e3e" }),
    text(bx(bw) - 40, top + height + 14, `${fmt(bw, 3)} TB/s`, { fill: "#e53e3e" }),
    text(barLeft, top + height + 30, "ops without counted FLOPs: TB/s achieved", { fill: "#555" }));
  return chart;
}

// MFU and the principal causes (largest mean points) per profiler cycle
export function cycleTrend(cycles) {
  if (cycles.length < 2) return el("p", { class: "note", text: cycles.length ? "One cycle so far." : "No profiler cycles in this run." });
  const mean = (cause) => cycles.reduce((s, c) => s + (c.ledger[cause] || 0), 0) / cycles.length;
  const causes = [...new Set(cycles.flatMap((c) => Object.keys(c.ledger)))].sort((a, b) => mean(b) - mean(a)).slice(0, 4);
  const series = [["MFU %", cycles.map((c) => (c.mfu === null ? null : 100 * c.mfu))],
    ...causes.map((cause) => [cause, cycles.map((c) => c.ledger[cause] ?? null)])];
  const left = 40, plot = 480, height = 160, top = 10;
  const most = Math.max(1, ...series.flatMap(([, v]) => v.filter((p) => p !== null)));
  const first = cycles[0].step, span = cycles[cycles.length - 1].step - first || 1;
  const x = (step) => left + (plot * (step - first)) / span, y = (v) => top + height * (1 - v / most);
  const chart = svg(left + plot + 150, top + height + 30, "trend");
  chart.append(el("svg:line", { x1: left, x2: left + plot, y1: top + height, y2: top + height, stroke: "#a0aec0" }),
    text(2, top + 8, fmt(most, 0)), text(2, top + height, "0"),
    text(left, top + height + 16, `training step (cycles ending at ${cycles.map((c) => c.step).join(", ")})`, { fill: "#555" }));
  series.forEach(([label, values], i) => {
    const points = values.map((v, k) => (v === null ? null : `${x(cycles[k].step)},${y(v)}`)).filter(Boolean);
    chart.append(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: SERIES[i], "stroke-width": 2, class: "series" }),
      text(left + plot + 10, top + 12 + 16 * i, `${label} (${fmt(values[values.length - 1], 1)})`, { fill: SERIES[i] }));
  });
  return chart;
}

// the median step's allocated and reserved memory over time, against the level a step starts with and the capacity
// (a line where it is within reach of the curve, else its size in the caption); where the trace has no level, what
// was allocated since the step began, on top of our run's model states where it counted them
export function memoryChart(report) {
  const m = report.memory, curve = m && m.median_step;
  if (!curve) return el("p", { class: "note", text: m ? "The median step's memory is unknown." : "The trace records no memory: record with profile_memory=True." });
  const base = curve.relative && m.parts ? m.parts.model_states : 0;
  const allocated = curve.allocated_bytes.map((v) => base + v), reserved = curve.reserved_bytes || [];
  const lives = m.at_step_start_bytes ?? (base || null), cap = m.capacity_bytes || null;
  const curveTop = Math.max(...allocated, ...reserved), showCap = cap !== null && cap <= 3 * curveTop;
  const top = 1.05 * Math.max(curveTop, showCap ? cap : 0);
  const left = 50, plot = 520, height = 160, up = 10, end = curve.t_ms[curve.t_ms.length - 1] || 1;
  const x = (t) => left + (plot * t) / end, y = (v) => up + height * (1 - v / top);
  const steps = (values) => values.map((v, i) => `${x(curve.t_ms[i])},${y(v)} ${x(curve.t_ms[i + 1] ?? end)},${y(v)}`).join(" ");
  const chart = svg(left + plot + 130, up + height + 34, "memory");
  chart.append(el("svg:line", { x1: left, x2: left + plot, y1: up + height, y2: up + height, stroke: "#a0aec0" }),
    text(2, up + 8, fmtBytes(top)), text(2, up + height, "0"),
    text(left, up + height + 16, `ms into step ${curve.step} (the median step), ${fmt(end, 1)} ms` + (cap !== null && !showCap ? `; capacity ${fmtBytes(cap)} (${m.capacity_source})` : ""), { fill: "#555" }),
    el("svg:polyline", { points: steps(allocated), fill: "none", stroke: "#2b6cb0", "stroke-width": 2, class: "series" }),
    text(left + plot + 10, up + 12, base ? "states + allocated" : "allocated", { fill: "#2b6cb0" }));
  if (reserved.length) {
    chart.append(el("svg:polyline", { points: steps(reserved), fill: "none", stroke: "#ed8936", "stroke-width": 2, class: "series" }),
      text(left + plot + 10, up + 28, "reserved", { fill: "#ed8936" }));
  }
  const line = (v, color, label, row) => chart.append(
    el("svg:line", { x1: left, x2: left + plot, y1: y(v), y2: y(v), stroke: color, "stroke-dasharray": "4 3" }),
    text(left + plot + 10, up + 12 + 16 * row, label, { fill: color }));
  if (lives) line(lives, "#718096", curve.relative ? "model states" : "at the step's start", 2);
  if (showCap) line(cap, "#e53e3e", `capacity (${m.capacity_source})`, 3);
  return chart;
}
