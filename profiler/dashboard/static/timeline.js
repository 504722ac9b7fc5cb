// The step timeline: one analysed step (mfu-timeline/1 JSON) as lanes of host threads and device streams, spans
// coloured by category. Wheel zooms around the pointer, dragging pans, a double click shows the whole step.
// Each frame visits only the spans in view; spans narrower than a pixel are pooled into one-pixel columns
// coloured by the category that took most of that pixel's time, so a step of 100,000 spans stays responsive.

import { COLORS, el } from "./charts.js";

const ROW = 16, GUTTER = 160, LANE_GAP = 8, HEADER = 18;

export function stepTimeline(data) {
  const s = data.spans, n = s.start.length;
  const end = Float64Array.from(s.start, (v, i) => v + s.dur[i]);
  // rows: one per (lane, depth), spans by start; reach[k] = the latest end among the row's first k spans
  const rows = [];
  let y = HEADER;
  data.lanes.forEach((label, lane) => {
    const mine = [];
    for (let i = 0; i < n; i++) if (s.lane[i] === lane) mine.push(i);
    const depth = Math.max(0, ...mine.map((i) => s.depth[i]));
    for (let d = 0; d <= depth; d++) {
      const spans = mine.filter((i) => s.depth[i] === d).sort((a, b) => s.start[a] - s.start[b]);
      const reach = new Float64Array(spans.length);
      spans.forEach((i, k) => { reach[k] = Math.max(k ? reach[k - 1] : -Infinity, end[i]); });
      rows.push({ label: d === 0 ? label : "", y, spans, reach });
      y += ROW;
    }
    y += LANE_GAP;
  });
  const categories = data.categories;
  const canvas = el("canvas", { class: "timeline", "data-spans": n });
  const tip = el("div", { class: "tip" });
  const wrap = el("div", { class: "timeline-wrap" },
    el("div", { class: "note", text: `step ${data.step}: ${(data.duration_us / 1000).toFixed(2)} ms, the median step; ${n.toLocaleString()} spans. Wheel to zoom, drag to pan, double-click for the whole step.` }),
    legend(categories), canvas, tip);
  const view = { t0: 0, t1: data.duration_us };
  const height = y + 4;
  let pending = false;

  function draw() {
    pending = false;
    const began = performance.now();
    const width = Math.max(wrap.clientWidth, 300), ratio = window.devicePixelRatio || 1;
    canvas.width = width * ratio; canvas.height = height * ratio;
    canvas.style.width = `${width}px`; canvas.style.height = `${height}px`;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const plot = width - GUTTER, scale = plot / (view.t1 - view.t0);
    const px = (t) => GUTTER + (t - view.t0) * scale;
    axis(g, plot, view);
    let drawn = 0;
    g.font = "11px sans-serif";
    for (const row of rows) {
      g.fillStyle = "#2d3748";
      if (row.label) g.fillText(row.label, 4, row.y + 12);
      // the first span that may reach into view, then every span that starts before its end
      const lo = firstReaching(row, view.t0);
      let column = -1;
      const pooled = new Float64Array(categories.length);
      const flush = () => {
        if (column < 0) return;
        let best = 0;
        for (let c = 1; c < pooled.length; c++) if (pooled[c] > pooled[best]) best = c;
        g.fillStyle = COLORS[categories[best]];
        g.fillRect(column, row.y + 1, 1, ROW - 2);
        pooled.fill(0); column = -1; drawn++;
      };
      for (let k = lo; k < row.spans.length; k++) {
        const i = row.spans[k];
        if (s.start[i] > view.t1) break;
        const x0 = Math.max(px(s.start[i]), GUTTER), x1 = Math.min(px(end[i]), width);
        if (x1 - x0 < 1) {
          const at = Math.floor(x0);
          if (at !== column) { flush(); column = at; }
          pooled[s.category[i]] += s.dur[i];
          continue;
        }
        flush();
        g.fillStyle = COLORS[categories[s.category[i]]];
        g.fillRect(x0, row.y + 1, x1 - x0 - (x1 - x0 > 3 ? 1 : 0), ROW - 2);
        drawn++;
        if (x1 - x0 > 40) {
          g.save(); g.beginPath(); g.rect(x0, row.y, x1 - x0 - 2, ROW); g.clip();
          g.fillStyle = "#fff"; g.fillText(data.names[s.name[i]], x0 + 3, row.y + 12); g.restore();
        }
      }
      flush();
    }
    canvas.dataset.drawn = drawn;  // rectangles drawn: at most a pixel column per row, however many spans
    canvas.dataset.drawMs = (performance.now() - began).toFixed(1);
    canvas.dataset.view = `${view.t0.toFixed(1)}-${view.t1.toFixed(1)}`;  // µs in view, for tests and benches
  }
  const redraw = () => { if (!pending) { pending = true; requestAnimationFrame(draw); } };
  const timeAt = (x) => view.t0 + ((x - GUTTER) / (canvas.clientWidth - GUTTER)) * (view.t1 - view.t0);

  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const at = timeAt(event.offsetX), factor = event.deltaY < 0 ? 1 / 1.25 : 1.25;
    const span = Math.min(Math.max((view.t1 - view.t0) * factor, 0.05), data.duration_us);
    const share = (at - view.t0) / (view.t1 - view.t0);
    view.t0 = Math.min(Math.max(at - share * span, 0), data.duration_us - span);
    view.t1 = view.t0 + span;
    redraw();
  }, { passive: false });
  let dragging = null;
  canvas.addEventListener("mousedown", (event) => { dragging = { x: event.clientX, t0: view.t0, t1: view.t1 }; });
  window.addEventListener("mouseup", () => { dragging = null; });
  canvas.addEventListener("mousemove", (event) => {
    if (dragging) {
      const shift = ((event.clientX - dragging.x) / (canvas.clientWidth - GUTTER)) * (dragging.t1 - dragging.t0);
      const span = dragging.t1 - dragging.t0;
      view.t0 = Math.min(Math.max(dragging.t0 - shift, 0), data.duration_us - span);
      view.t1 = view.t0 + span;
      redraw();
    }
    hover(event);
  });
  canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  canvas.addEventListener("dblclick", () => { view.t0 = 0; view.t1 = data.duration_us; redraw(); });

  function hover(event) {
    const row = rows.find((r) => event.offsetY >= r.y && event.offsetY < r.y + ROW);
    const t = timeAt(event.offsetX), slack = (2 * (view.t1 - view.t0)) / (canvas.clientWidth - GUTTER);
    let i = null;
    for (let k = row ? firstReaching(row, t - slack) : 0; row && k < row.spans.length; k++) {
      if (s.start[row.spans[k]] > t + slack) break;
      if (end[row.spans[k]] >= t - slack) { i = row.spans[k]; break; }
    }
    if (i === null || event.offsetX < GUTTER) { tip.style.display = "none"; return; }
    tip.replaceChildren(...describe(data, i).map((line) => el("div", { text: line })));
    tip.style.left = `${event.offsetX + 14}px`; tip.style.top = `${event.offsetY + 14}px`;
    tip.style.display = "block";
  }
  new ResizeObserver(redraw).observe(wrap);
  redraw();
  return wrap;
}

// index of the first span of the row that ends at or after t (binary search over the running latest end)
function firstReaching(row, t) {
  let lo = 0, hi = row.spans.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (row.reach[mid] < t) lo = mid + 1; else hi = mid; }
  return lo;
}

function describe(data, i) {
  const s = data.spans, us = s.dur[i];
  const lines = [data.names[s.name[i]], `${data.categories[s.category[i]]}, ${us >= 1000 ? (us / 1000).toFixed(3) + " ms" : us.toFixed(1) + " µs"}, at ${(s.start[i] / 1000).toFixed(3)} ms`];
  if (data.shapes[i]) lines.push(`shapes ${data.shapes[i]}`);
  if (s.flops[i] > 0) lines.push(`${(s.flops[i] / 1e9).toFixed(3)} GFLOP, ${(s.flops[i] / us / 1e6).toFixed(3)} TFLOP/s`);
  return lines;
}

function axis(g, plot, view) {
  g.fillStyle = "#4a5568"; g.font = "10px sans-serif";
  const span = view.t1 - view.t0, step = 10 ** Math.floor(Math.log10(span / 5));
  const tick = [1, 2, 5].map((m) => m * step).find((v) => span / v <= 8) || 10 * step;
  for (let t = Math.ceil(view.t0 / tick) * tick; t <= view.t1; t += tick) {
    const x = GUTTER + ((t - view.t0) / span) * plot;
    g.fillRect(x, 0, 1, HEADER - 4);
    g.fillText(t >= 1000 ? `${(t / 1000).toFixed(tick >= 1000 ? 0 : 3)} ms` : `${t.toFixed(tick >= 1 ? 0 : 2)} µs`, x + 3, 10);
  }
}

function legend(categories) {
  return el("div", { class: "legend" }, ...categories.map((c) =>
    el("span", {}, el("i", { style: `background:${COLORS[c]}` }), c)));
}
