// peftbench report page: the table (sort, filter, drill-down) and the charts (Chart.js, inlined above).
// The numbers come from the JSON in #data (peftbench/report/pagedata.py); nothing here computes a score.
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
Chart.register(ChartErrorBars.ScatterWithErrorBarsController, ChartErrorBars.PointWithErrorBar);
Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
Chart.defaults.animation = false;

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};
const fmt = (v, d = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const human = (n) => {
  for (const [u, s] of [["B", 1e9], ["M", 1e6], ["K", 1e3]]) if (n >= s) return (n / s).toFixed(1) + u;
  return String(Math.round(n));
};
const colourOf = (family) => DATA.families[family] || "#bcbd22";
const swatch = (family) => el("span", { class: "swatch", style: `background:${colourOf(family)}` });

// ---- the table ----------------------------------------------------------------------------------------
const COLUMNS = [
  { key: "label", title: DATA.row_keys.join(" / "), value: (r) => r.label },
  { key: "family", title: "family", value: (r) => r.family, cell: (r) => [swatch(r.family), r.family] },
  { key: "task", title: "task", value: (r) => r.task },
  { key: "budget", title: "budget", value: (r) => r.budget },
  { key: "tuned", title: DATA.tuned, value: (r) => r.tuned },
  { key: "score", title: "score", num: true, value: (r) => r.score.mean, cell: scoreCell },
  { key: "std", title: "± std", num: true, value: (r) => r.score.std, cell: (r) => fmt(r.score.std) },
  { key: "n", title: "n", num: true, value: (r) => r.score.n, cell: (r) => String(r.score.n) },
  { key: "metrics", title: "metrics", value: (r) => metricText(r), cell: (r) => metricText(r) },
  { key: "params", title: "params", num: true, value: (r) => r.params, cell: (r) => human(r.params) },
  { key: "params_pct", title: "params %", num: true, value: (r) => r.params_pct, cell: (r) => fmt(r.params_pct, 2) },
  { key: "memory", title: "peak mem (MB)", num: true, value: (r) => r.memory && r.memory.mean,
    cell: (r) => (r.memory ? fmt(r.memory.mean, 0) : "–") },
  { key: "throughput", title: "samples/s", num: true, value: (r) => r.throughput && r.throughput.mean,
    cell: (r) => (r.throughput ? fmt(r.throughput.mean, 1) : "–") },
];
function metricText(r) {
  const names = Object.keys(r.metrics);
  if (names.length < 2) return "";
  return names.map((m) => `${m.replace(r.task + " ", "")} ${fmt(r.metrics[m].mean)}`).join(" · ");
}
function scoreCell(r) {
  const out = [fmt(r.score.mean)];
  if (r.tie_p !== undefined) out.push(el("span", { class: "tie", title: `p = ${r.tie_p} against the best`, text: " ≈" }));
  return out;
}

const state = { sort: "task", dir: 1, open: new Set(), filters: { task: "", family: "", budget: "", text: "" } };

function visibleRows() {
  const f = state.filters, text = f.text.trim().toLowerCase();
  const rows = DATA.rows.map((r, i) => ({ ...r, id: i })).filter((r) =>
    (!f.task || r.task === f.task) && (!f.family || r.family === f.family) && (!f.budget || r.budget === f.budget)
    && (!text || [r.label, r.task, r.tuned, r.family].join(" ").toLowerCase().includes(text)));
  const col = COLUMNS.find((c) => c.key === state.sort);
  return rows.sort((a, b) => {
    const va = col.value(a), vb = col.value(b);
    if (va === vb) return (b.score.mean - a.score.mean) || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);  // ties: best first
    if (va === null || va === undefined || va === "") return 1;  // missing values last, either way
    if (vb === null || vb === undefined || vb === "") return -1;
    return (va < vb ? -1 : 1) * state.dir;
  });
}

function renderHead() {
  const tr = $("#table thead tr");
  tr.replaceChildren(...COLUMNS.map((c) => {
    const th = el("th", { class: c.num ? "num" : "", "data-key": c.key, text: c.title, scope: "col" });
    if (c.key === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    th.tabIndex = 0;
    th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); th.click(); } });
    th.addEventListener("click", () => {
      state.dir = state.sort === c.key ? -state.dir : (c.num ? -1 : 1);  // numbers start high
      state.sort = c.key;
      renderHead(); renderBody();
    });
    return th;
  }));
}

function renderBody() {
  const rows = visibleRows();
  const body = $("#table tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr", { class: "row" + (state.open.has(r.id) ? " open" : ""), "data-id": String(r.id) });
    for (const c of COLUMNS) {
      const td = el("td", { class: (c.num ? "num" : "") + (c.key === "score" && r.best ? " best" : "") });
      const content = c.cell ? c.cell(r) : c.value(r);
      td.append(...(Array.isArray(content) ? content : [content ?? "–"]));
      tr.append(td);
    }
    tr.addEventListener("click", () => { state.open.has(r.id) ? state.open.delete(r.id) : state.open.add(r.id); renderBody(); });
    body.append(tr);
    if (state.open.has(r.id)) body.append(detailRow(r));
  }
  $("#shown").textContent = `${rows.length} of ${DATA.rows.length} rows`;
}

function setupFilters() {
  const options = { task: DATA.tasks, family: [...new Set(DATA.rows.map((r) => r.family))].sort(),
                    budget: [...new Set(DATA.rows.map((r) => r.budget))].sort() };
  for (const [name, values] of Object.entries(options)) {
    const select = $(`#filter-${name}`);
    for (const v of values) select.append(el("option", { value: v, text: v }));
    select.addEventListener("change", () => { state.filters[name] = select.value; renderBody(); });
  }
  $("#filter-text").addEventListener("input", (e) => { state.filters.text = e.target.value; renderBody(); });
}

// ---- drill-down ---------------------------------------------------------------------------------------
function detailRow(r) {
  const runs = r.runs.map((i) => DATA.runs[i]);
  const grid = el("div", { class: "detail-grid" });
  grid.append(el("div", {}, el("h3", { text: "Training loss" }), chartBox((c) => lossChart(c, runs))));
  const evalCount = Math.max(...runs.map((x) => x.evals.length));
  grid.append(el("div", {}, el("h3", { text: evalCount > 1 ? "Evaluations" : "Final evaluation" }),
    evalCount > 1 ? chartBox((c) => evalChart(c, runs, r)) : el("div"), metricTable(runs)));
  grid.append(el("div", { style: "grid-column: 1 / -1" }, el("h3", { text: "Config" }), configTable(r, runs)));
  const td = el("td", { colspan: String(COLUMNS.length) }, grid);
  return el("tr", { class: "detail", "data-for": String(r.id) }, td);
}
function chartBox(draw) {
  const box = el("div", { class: "mini" }), canvas = el("canvas");
  box.append(canvas);
  requestAnimationFrame(() => draw(canvas));
  return box;
}
const seedColour = (i) => ["#2457c5", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"][i % 6];
function lineOptions(ytitle) {
  return { maintainAspectRatio: false, parsing: false, plugins: { legend: { position: "bottom" } },
           scales: { x: { type: "linear", title: { display: true, text: "step" } },
                     y: { title: { display: true, text: ytitle } } } };
}
function lossChart(canvas, runs) {
  new Chart(canvas, { type: "line", options: lineOptions("mean training loss"), data: { datasets: runs.map((x, i) => ({
    label: `seed ${x.seed}`, data: x.loss.map(([s, l]) => ({ x: s, y: l })), borderColor: seedColour(i),
    backgroundColor: seedColour(i), pointRadius: 0, borderWidth: 1.5 })) } });
}
function evalChart(canvas, runs, r) {
  const metric = (e) => Object.keys(e).find((k) => k !== "step");
  new Chart(canvas, { type: "line", options: lineOptions(`${r.task} (eval)`), data: { datasets: runs.map((x, i) => ({
    label: `seed ${x.seed}`, data: x.evals.map((e) => ({ x: e.step, y: 100 * e[metric(e)] })),
    borderColor: seedColour(i), backgroundColor: seedColour(i), pointRadius: 3, borderWidth: 1.5 })) } });
}
function metricTable(runs) {
  const names = Object.keys(runs[0].metrics);
  const head = el("tr", {}, ...["seed", ...names, "score", "run file"].map((h) => el("th", { text: h })));
  const rows = runs.map((x) => el("tr", {}, el("td", { text: String(x.seed) }),
    ...names.map((m) => el("td", { class: "num", text: fmt(x.metrics[m]) })), el("td", { class: "num", text: fmt(x.score) }),
    el("td", {}, el("a", { href: x.link, text: "run.json" }))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
}
function configTable(r, runs) {
  const show = (v) => (v === null || v === undefined ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v));
  const differing = Object.keys(runs[0].diff);
  const head = el("tr", {}, el("th", { text: "key" }), ...runs.map((x) => el("th", { text: `seed ${x.seed}` })));
  const diffRows = differing.map((k) => el("tr", { class: "differs" }, el("td", { text: k }),
    ...runs.map((x) => el("td", { text: show(x.diff[k]) }))));
  const table = el("table", {}, el("thead", {}, head), el("tbody", {}, ...diffRows));
  const common = Object.entries(r.common).map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: show(v) })));
  const note = el("p", { class: "muted", text: differing.length ? `Highlighted: the ${differing.length} keys that differ between this row's runs.`
    : "The runs share every config key." });
  return el("div", {}, note, differing.length ? table : el("span"),
    el("details", {}, el("summary", { text: `the ${common.length} keys they share` }),
      el("table", { class: "config" }, el("tbody", {}, ...common))));
}

// ---- the Pareto chart ---------------------------------------------------------------------------------
const X_AXES = {
  params: { title: "trainable parameters, head excluded (log scale)", log: true, lower: true },
  memory: { title: "peak training memory (MB), runs measured alone", log: false, lower: true },
  throughput: { title: "training samples/s, runs measured alone", log: false, lower: false },
};
let paretoChart = null;

function paretoFront(points, lowerIsBetter) {  // points no other beats on both axes, in x order
  const sorted = [...points].sort((a, b) => (lowerIsBetter ? a.x - b.x : b.x - a.x) || b.y - a.y);
  const front = [];
  for (const p of sorted) if (!front.length || p.y > front[front.length - 1].y) front.push(p);
  return front;
}

function paretoPoints(yKey, xKey, budget) {
  const shown = [], missing = [];
  for (const p of DATA.points.filter((q) => q.budget === budget)) {
    const y = yKey === "avg" ? p.avg : p.scores[yKey];
    const x = xKey === "params" ? { mean: Math.max(p.params, 1), std: null } : p[xKey];
    if (!y || !x) { missing.push(p.label); continue; }
    const point = { x: x.mean, y: y.mean, label: p.label, family: p.family, n: y.n, ystd: y.std, xstd: x.std,
                    params: p.params };
    if (y.std !== null) Object.assign(point, { yMin: y.mean - y.std, yMax: y.mean + y.std });  // one seed: no bar
    if (x.std !== null) Object.assign(point, { xMin: x.mean - x.std, xMax: x.mean + x.std });
    shown.push(point);
  }
  return { shown, missing };
}

function drawPareto() {
  const yKey = $("#pick-y").value, xKey = $("#pick-x").value, budget = $("#pick-budget").value;
  const axis = X_AXES[xKey], { shown, missing } = paretoPoints(yKey, xKey, budget);
  const families = [...new Set(shown.map((p) => p.family))].sort();
  const datasets = families.map((f) => ({ label: f, data: shown.filter((p) => p.family === f), backgroundColor: colourOf(f),
    borderColor: colourOf(f), errorBarColor: colourOf(f), errorBarWhiskerColor: colourOf(f), pointRadius: 5 }));
  const front = paretoFront(shown, axis.lower);
  if (front.length > 1) datasets.push({ type: "line", label: "Pareto front", data: front.map((p) => ({ x: p.x, y: p.y })),
    stepped: "before", borderColor: "rgba(200,40,40,0.55)", borderDash: [5, 4], pointRadius: 0,
    borderWidth: 1.5, datalabels: { display: false } });
  const yTitle = yKey === "avg" ? `avg over ${DATA.tasks.length} tasks (mean of task scores × 100)` : `${yKey} score × 100`;
  const note = missing.length ? `Not drawn (no ${yKey === "avg" ? "score for every task" : "run"}${xKey === "params" ? "" : " or none measured alone"}): ${missing.join(", ")}. ` : "";
  $("#pareto-hint").textContent = note + "Bars: ± std over seeds (avg: the tasks' std combined; none for one seed). Hover a point for its figures.";
  if (paretoChart) paretoChart.destroy();
  paretoChart = new Chart($("#pareto-chart"), {
    type: "scatterWithErrorBars", data: { datasets }, plugins: [ChartDataLabels],
    options: { maintainAspectRatio: false, layout: { padding: { right: 90 } },  // room for the rightmost labels
      scales: { x: { type: axis.log ? "logarithmic" : "linear", title: { display: true, text: axis.title },
                     ticks: axis.log ? { maxRotation: 0, callback: (v) => (Math.log10(v) % 1 === 0 ? (v === 1 ? "≤1" : human(v)) : "") } : {} },
                y: { title: { display: true, text: yTitle } } },
      plugins: {
        legend: { position: "bottom", labels: { usePointStyle: true } },
        datalabels: { display: "auto", offset: 6, clamp: true,
                      align: (ctx) => (ctx.chart.scales.x.getPixelForValue(ctx.dataset.data[ctx.dataIndex].x)
                                       > ctx.chart.chartArea.right - 160 ? "left" : "right"),  // labels stay inside color: "#1d2330", font: { size: 11 },
                      formatter: (p) => p.label },
        tooltip: { callbacks: { label: (ctx) => tooltip(ctx.raw, xKey) } } } } });
}
function tooltip(p, xKey) {
  if (!p.label) return `Pareto front: ${fmt(p.y)}`;
  const x = xKey === "params" ? `${human(p.params)} trainable params (head excluded)` : `${fmt(p.x, xKey === "memory" ? 0 : 1)}${p.xstd ? " ± " + fmt(p.xstd, 1) : ""} ${xKey === "memory" ? "MB" : "samples/s"}`;
  return [`${p.label} (${p.family})`, `score ${fmt(p.y)}${p.ystd !== null ? " ± " + fmt(p.ystd) : ""} (n=${p.n})`, x];
}

function setupPareto() {
  const y = $("#pick-y"), b = $("#pick-budget");
  if (DATA.tasks.length > 1) y.append(el("option", { value: "avg", text: `avg over ${DATA.tasks.length} tasks` }));
  for (const t of DATA.tasks) y.append(el("option", { value: t, text: t }));
  const budgets = [...new Set(DATA.points.map((p) => p.budget))].sort();
  for (const v of budgets) b.append(el("option", { value: v, text: v }));
  if (budgets.length < 2) $("#pick-budget-label").hidden = true;
  for (const s of [y, $("#pick-x"), b]) s.addEventListener("change", drawPareto);
  drawPareto();
}

// ---- page ---------------------------------------------------------------------------------------------
function setupText() {
  const methods = new Set(DATA.rows.map((r) => r.label)).size;
  const what = DATA.row_keys.length === 1 && DATA.row_keys[0] === "method" ? "methods" : `${DATA.row_keys.join(" / ")} rows`;
  const tasks = `${DATA.tasks.length} task${DATA.tasks.length > 1 ? "s" : ""}`;
  $("#summary").textContent = `${DATA.total} runs: ${methods} ${what} × ${tasks} ` +
    `(${DATA.tasks.join(", ")}). Memory and speed only for rows whose runs were all measured alone: ` +
    `${DATA.rows.filter((r) => r.memory).length} of ${DATA.rows.length} rows (${DATA.alone} of ${DATA.total} runs measured alone).`;
  $("#note-list").replaceChildren(...DATA.notes.map((n) => el("li", { text: n })));
  if (DATA.failed.length) $("#failed").replaceChildren(el("p", { text: DATA.failed[0] }),
    el("ul", {}, ...DATA.failed.slice(1).map((f) => el("li", { text: f.replace(/^- /, "") }))));
}

setupText();
setupFilters();
renderHead();
renderBody();
setupPareto();
