// The MFU tab. TensorBoard loads this module into the tab's frame and calls render(). Every request goes to
// this plugin's own routes (runs, report, timeline, trend, diff), relative to the frame's base: nothing leaves the
// machine. A run and one of its reports (a profiler cycle, or the whole run) per pane; a second pane compares.

import { cycleTrend, el, fmt, fmtBytes, ledgerTitle, ledgerWaterfall, memoryChart, roofline, stepBreakdown } from "./charts.js";
import { stepTimeline } from "./timeline.js";

const getJson = async (route, params = {}) => {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `${route}?${query}` : route);
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status}`);
  return response.json();
};

export async function render() {
  document.head.append(el("link", { rel: "stylesheet", href: "dashboard.css" }));
  const root = el("div", { class: "mfu" });
  document.body.replaceChildren(root);
  let runs;
  try {
    runs = await getJson("runs");
  } catch (error) {
    root.append(el("p", { class: "note", text: `Could not list the runs: ${error.message}` }));
    return;
  }
  if (!runs.length) {
    root.append(el("p", { class: "note", text: "No reports in this log directory. Train with scripts/profile_run.py or profiler.profile, or write one with `python -m profiler analyze TRACE --out DIR` under the log directory." }));
    return;
  }
  const panes = el("div", { class: "panes" });
  // the frame's own address may choose: ?run=R&view=V&compare=R2&compare_view=V2 (a link to a comparison)
  const asked = new URLSearchParams(location.search);
  const left = picker(runs, false, asked.get("run"), asked.get("view"));
  const right = picker(runs, true, asked.get("compare"), asked.get("compare_view"));
  root.append(el("div", { class: "pickers" }, left.node, right.node));
  const changes = el("div", { class: "diff" });
  root.append(changes, panes);
  const show = () => {
    const chosen = [left.value(), right.value()].filter(Boolean);
    panes.className = chosen.length > 1 ? "panes two" : "panes";
    panes.replaceChildren(...chosen.map(pane));
    changes.replaceChildren(...(chosen.length > 1 ? [diffPanel(...chosen)] : []));
  };
  left.onchange(show);
  right.onchange(show);
  show();
}

// a run selector and a report selector; the second picker starts at "none" (no comparison)
function picker(runs, optional, run, view) {
  const runSelect = el("select", { class: optional ? "run compare" : "run" });
  const viewSelect = el("select", { class: "view" });
  if (optional) runSelect.append(el("option", { value: "", text: "none" }));
  runs.forEach((r, i) => runSelect.append(el("option", { value: String(i), text: r.run })));
  if (runs.some((r) => r.run === run)) runSelect.value = String(runs.findIndex((r) => r.run === run));
  const fillViews = () => {
    const run = runs[Number(runSelect.value)];
    viewSelect.replaceChildren(...(run && runSelect.value !== "" ? run.views : []).map((v) => el("option", { value: v.id, text: v.label })));
    viewSelect.disabled = !run || runSelect.value === "";
    if (run) viewSelect.value = run.views[run.views.length - 1].id;  // the whole run, else the last cycle
  };
  fillViews();
  if ([...viewSelect.options].some((o) => o.value === view)) viewSelect.value = view;
  let listener = () => {};
  runSelect.addEventListener("change", () => { fillViews(); listener(); });
  viewSelect.addEventListener("change", () => listener());
  const node = el("label", {}, optional ? "compare with " : "run ", runSelect, " report ", viewSelect);
  return {
    node,
    value: () => (runSelect.value === "" ? null : { run: runs[Number(runSelect.value)], view: viewSelect.value }),
    onchange: (f) => { listener = f; },
  };
}

function pane({ run, view }) {
  const node = el("div", { class: "pane" }, el("p", { class: "note", text: "loading…" }));
  const info = run.views.find((v) => v.id === view);
  Promise.all([getJson("report", { run: run.run, view }), getJson("trend", { run: run.run })])
    .then(([report, trend]) => {
      node.replaceChildren(
        el("h2", { text: `${run.run}: ${info.label}` }), health(report), summary(report),
        section(ledgerTitle(report), ledgerWaterfall(report)),
        section("Diagnosis", diagnosis(report)),
        section("Per-step breakdown", stepBreakdown(report)),
        section("Top ops against the roofline: P_run and the memory bandwidth", roofline(report)),
        section("Memory over the median step", memoryChart(report)),
        section("From cycle to cycle", cycleTrend(trend)),
        section("Step timeline", timelinePanel(run, info)));
    })
    .catch((error) => node.replaceChildren(el("p", { class: "note", text: error.message })));
  return node;
}

function section(title, body) {
  return el("section", {}, el("h3", { text: title }), body);
}

// what the trace lacks and lost, before any number (report.health; absent in reports saved before it)
function health(r) {
  const h = r.health;
  if (!h) return el("div");
  const lines = [...h.lost.map((text) => ({ text, cls: "lost" })),
    ...h.lacks.map((l) => ({ text: `no ${l.what}: ${l.costs} (record with ${l.record_with})`, cls: "lacks" }))];
  if (!lines.length) return el("p", { class: "health note", text: "trace health: every optional part recorded, nothing lost" });
  return el("div", { class: "health" }, el("h3", { text: "Trace health" }),
    ...lines.map(({ text, cls }) => el("p", { class: cls, text })));
}

function summary(r) {
  const rows = [
    ["device", `${r.device.name || "unknown"} (${r.device.kind}, ${r.device.dtype || "dtype unknown"})`],
    ["MFU", `${r.mfu.analytic === null ? "n/a (model FLOPs unknown)" : fmt(100 * r.mfu.analytic) + "%"}; counted FLOPs: ${r.mfu.counted === null ? "n/a" : fmt(100 * r.mfu.counted) + "%"}`],
    ["step time", `${fmt(r.step_time_ms.mean)} ms (${fmt(r.step_time_ms.min)}-${fmt(r.step_time_ms.max)}) over ${r.source.steps.length} steps`],
    ["peak", r.device.peak_flops ? `P ${fmt(r.device.peak_flops / 1e12, 3)} TFLOP/s, P_run ${fmt(r.device.peak_flops_run / 1e12, 3)} (${r.device.peak_source})` : "unknown"],
    ["memory", memoryLine(r.memory)],
  ];
  const table = el("table", { class: "summary" }, ...rows.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: v }))));
  if (!r.warnings.length) return table;
  return el("div", {}, table, el("details", { class: "warnings" }, el("summary", { text: `${r.warnings.length} warning(s)` }),
    ...r.warnings.map((w) => el("p", { text: w }))));
}

// a fix's configuration change as the program that ran writes it (report/terminal.change_in_form)
function changeInForm(config, form) {
  const pairs = Object.entries(config);
  if (!form || form === "--key=value") return pairs.map(([k, v]) => `--${k}=${v}`).join(" ");
  const literal = (v) => (typeof v === "string" ? `'${v}'` : typeof v === "boolean" ? (v ? "True" : "False") : `${v}`);
  return `${form}(${pairs.map(([k, v]) => `${k}=${literal(v)}`).join(", ")})`;
}

function diagnosis(r) {
  if (!r.bottlenecks.length) return el("p", { class: "note", text: "No cause reaches the bottleneck threshold." });
  return el("ol", { class: "diagnosis" }, ...r.bottlenecks.map((b) => el("li", {},
    el("strong", { text: `${b.cause}: ${fmt(b.points, 1)} points (${fmt(b.ms)} ms/step)` }),
    b.speedup != null ? el("span", { text: ` → step ${fmt(b.what_if_step_ms)} ms (x${fmt(b.speedup)}) if removed` })
      : b.what_if_mfu === null ? null : el("span", { text: ` → MFU ${fmt(100 * b.what_if_mfu)}% if removed` }),
    el("p", { class: "evidence", text: b.evidence }),
    el("p", { class: "fix", text: `fix: ${b.fix}` }),
    Object.keys(b.fix_config || {}).length
      ? el("p", { class: "try" }, "try: ", el("code", { text: changeInForm(b.fix_config, b.fix_form) }))
      : null)));
}

function timelinePanel(run, info) {
  if (!info.timeline) return el("p", { class: "note", text: "No step timeline was written for this report." });
  const holder = el("div", {}, el("p", { class: "note", text: "loading the step…" }));
  getJson("timeline", { run: run.run, view: info.id })
    .then((data) => holder.replaceChildren(stepTimeline(data)))
    .catch((error) => holder.replaceChildren(el("p", { class: "note", text: error.message })));
  return holder;
}

// the report's memory in a line (report/reading.memory_lines says it at length)
function memoryLine(m) {
  if (!m) return "not recorded (profile_memory=True records it)";
  const level = m.peak_allocated_bytes !== null ? `peak ${fmtBytes(m.peak_allocated_bytes)} allocated, ${fmtBytes(m.transient_peak_bytes)} of it transient`
    : `${fmtBytes(m.transient_peak_bytes)} transient (no absolute level in the trace)`;
  const of = m.capacity_bytes ? ` of ${fmtBytes(m.capacity_bytes)} (${m.capacity_source})` : "";
  return `${m.device}: ${level}${of}` + (m.batch_headroom !== null ? `; the batch can grow x${fmt(m.batch_headroom, 1)}` : "");
}

// what changed from the first pane's report (A) to the second's (B): profiler.diff's verdict on the step time,
// the causes that moved with their intervals, and the ops that moved (python -m profiler diff says the same)
function diffPanel(a, b) {
  const node = el("section", {}, el("p", { class: "note", text: "comparing…" }));
  getJson("diff", { run: a.run.run, view: a.view, compare: b.run.run, compare_view: b.view })
    .then((d) => node.replaceChildren(...diffParts(d)))
    .catch((error) => node.replaceChildren(el("p", { class: "note", text: error.message })));
  return node;
}

const signed = (v, digits = 2) => `${v > 0 ? "+" : ""}${fmt(v, digits)}`;
const interval = (pair, digits = 2) => (pair ? `[${signed(pair[0], digits)}, ${signed(pair[1], digits)}]` : "no interval");

function diffParts(d) {
  const s = d.step_time;
  const words = { slower: "B is slower", faster: "B is faster", "no change": "no change beyond the noise", "no interval": "no verdict (no interval)" }[d.verdict];
  const pct = s.change_pct === null ? "" : ` (${signed(s.change_pct, 1)}%, ${s.interval_pct ? interval(s.interval_pct, 1) + "%" : "no interval"})`;
  const unit = d.unit === "mfu" ? "points of MFU" : "points of the step time";
  const causes = d.causes.slice(0, 6).map((c) => el("tr", {}, el("td", { text: c.cause }), el("td", { text: fmt(c.points.a) }),
    el("td", { text: fmt(c.points.b) }), el("td", { text: signed(c.points.change) }), el("td", { text: interval(c.points.interval) }),
    el("td", { text: c.points.verdict })));
  const opName = (o) => (o.status === "reshaped" ? `${o.name} ${o.shapes_a} → ${o.shapes}` : `${o.name} ${o.shapes}`);
  const ops = d.ops.slice(0, 8).map((o) => el("li", { text: `${opName(o)}${o.status === "changed" ? "" : ` (${o.status})`}: ${fmt(o.ms_a)} → ${fmt(o.ms_b)} ms` }));
  return [
    el("h2", { text: `What changed, B against A: ${words}` }),
    el("p", { text: `step ${fmt(s.a)} → ${fmt(s.b)} ms${pct} at ${fmt(100 * d.level, 0)}%` }),
    ...d.notes.map((n) => el("p", { class: "note", text: n })),
    ...(d.setup.length ? [el("p", { text: "set-up: " + d.setup.map((x) => `${x.key} ${x.a} → ${x.b}`).join("; ") })] : []),
    el("table", { class: "causes" }, el("tr", {}, ...[`cause (${unit})`, "A", "B", "change", "interval", ""].map((h) => el("th", { text: h }))), ...causes),
    ...(ops.length ? [el("h3", { text: "Ops that moved (ms per step)" }), el("ul", { class: "ops" }, ...ops)] : []),
    ...d.conventions.map((c) => el("p", { class: "note", text: c })),
  ];
}
