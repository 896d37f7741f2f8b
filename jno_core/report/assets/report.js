/* jno report: draws the charts described by the JSON in <script id="jno-spec"> with BokehJS
 * (inlined above this script), and the tables as plain HTML. Everything it needs is in the file:
 * no network request. window.jnoReport says how it went: {ready, errors, charts}. */
(function () {
  "use strict";
  const state = { ready: false, errors: [], charts: [] };
  window.jnoReport = state;
  const spec = JSON.parse(document.getElementById("jno-spec").textContent);
  if (Bokeh.set_log_level) Bokeh.set_log_level("warn");
  const ndarray = Bokeh.require("core/util/ndarray").ndarray;
  const P = Bokeh.Palettes;
  const hex = (c) => "#" + (c >>> 8).toString(16).padStart(6, "0");
  const PALETTE = P.Category10_10.map((c) => (typeof c === "number" ? hex(c) : c));
  const VIRIDIS = P.Viridis256;
  const DIVERGING = P.interp_palette(P.RdBu11.slice().reverse(), 256);
  const DASHES = ["solid", "dashed", "dotted", "dotdash", "dashdot"];
  const multi = spec.runs.length > 1;
  const runColor = (i) => PALETTE[i % PALETTE.length];
  const W = 470, H = 290;
  const pending = [];

  // ------------------------------------------------------------------ helpers
  function decode(p) {
    const bin = atob(p.b64);
    const u8 = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) u8[i] = bin.charCodeAt(i);
    const T = { f4: Float32Array, f8: Float64Array, i4: Int32Array }[p.dtype];
    return new T(u8.buffer);
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (!isFinite(v)) return String(v);
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(+v.toPrecision(4));
    }
    return String(v);
  }
  // BokehJS typesets $$...$$, \[...\] and \(...\) in text with MathJax fetched from a CDN: break those
  // delimiters in every text this page shows (metric keys and run names are the user's text)
  const plain = (t) => String(t).replace(/\$\$/g, "$\u200b$").replace(/\\([[(\])])/g, "\\\u200b$1");
  function figure(title, opts) {
    const tools = "pan,box_zoom,wheel_zoom,reset,save";
    if (opts && opts.x_axis_label) opts.x_axis_label = plain(opts.x_axis_label);
    if (opts && opts.y_axis_label) opts.y_axis_label = plain(opts.y_axis_label);
    return Bokeh.Plotting.figure(Object.assign({ title: title ? plain(title) : null, width: W, height: H, tools: tools,
      toolbar_location: "right", x_axis_label: "step" }, opts || {}));
  }
  function show(fig, target) { pending.push(Bokeh.Plotting.show(fig, target)); }
  function slider(n, onChange, labelOf) {
    const input = el("input", { type: "range", min: "0", max: String(Math.max(0, n - 1)), value: String(Math.max(0, n - 1)),
      step: "1", class: "step-slider", "aria-label": "step" });
    const label = el("span", { class: "step-label" });
    const update = () => { const k = +input.value; label.textContent = labelOf(k); onChange(k); };
    input.addEventListener("input", update);
    label.textContent = labelOf(n - 1);
    return el("div", { class: "slider-row" }, input, label);
  }
  function notes(item) {
    if (!item.notes || !item.notes.length) return null;
    return el("ul", { class: "notes" }, ...item.notes.map((t) => el("li", { text: t })));
  }
  function maxOf(arr) { let m = 1; for (let i = 0; i < arr.length; i++) if (arr[i] > m) m = arr[i]; return m; }
  function positive(arr) { return arr.map((v) => (v > 0 ? v : NaN)); }

  // ------------------------------------------------------------------ charts
  function lines(item, box) {
    const p = figure(null, { y_axis_type: item.log ? "log" : "linear" });
    const keys = [...new Set(item.series.map((s) => s.key))];
    let lo = Infinity, hi = -Infinity;
    item.series.forEach((s, i) => {
      const x = decode(s.x);
      let y = decode(s.y);
      if (item.log) y = positive(y);
      for (const v of y) if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
      const color = multi ? runColor(s.run) : PALETTE[i % PALETTE.length];
      const dash = multi ? DASHES[keys.indexOf(s.key) % DASHES.length] : "solid";
      const src = new Bokeh.ColumnDataSource({ data: { x: Array.from(x), y: Array.from(y) } });
      p.line({ field: "x" }, { field: "y" }, { source: src, line_color: color, line_width: 1.7, line_dash: dash,
        legend_label: plain(s.label), name: plain(s.label) });
      if (x.length <= 60) {
        p.scatter({ field: "x" }, { field: "y" }, { source: src, size: 4, fill_color: color, line_color: color,
          legend_label: plain(s.label) });
      }
    });
    if (lo === hi) {  // a constant series: centre it instead of Bokeh's default span around it
      const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
      p.y_range = new Bokeh.Range1d({ start: item.log ? lo / 2 : lo - d, end: item.log ? lo * 2 : lo + d });
    }
    p.add_tools(new Bokeh.HoverTool({ tooltips: [["", "$name"], ["step", "@x"], ["value", "@y{0.000e}"]] }));
    if (item.series.length > 6) {  // many entries: the legend goes right of the plot, not over the data
      const leg = p.legend;
      p.center = p.center.filter((r) => r !== leg);
      p.add_layout(leg, "right");
      p.width = W + 170;
    }
    if (p.legend) {
      p.legend.click_policy = "hide";
      p.legend.label_text_font_size = "8pt";
      p.legend.background_fill_alpha = 0.6;
      p.legend.spacing = 0;
      p.legend.padding = 4;
    }
    show(p, box);
    return { colors: item.series.map((s, i) => (multi ? runColor(s.run) : PALETTE[i % PALETTE.length])) };
  }

  function colorMapper(c) {
    if (c.scale === "log") return new Bokeh.LogColorMapper({ palette: VIRIDIS, low: c.low, high: c.high });
    if (c.scale === "diverging") return new Bokeh.LinearColorMapper({ palette: DIVERGING, low: c.low, high: c.high });
    return new Bokeh.LinearColorMapper({ palette: VIRIDIS, low: c.low, high: c.high });
  }

  function heatmap(item, box, card) {
    const steps = decode(item.steps), frames = decode(item.frames);
    const [F, h, w] = item.frames.shape;
    const img = (k) => ndarray(frames.slice(k * h * w, (k + 1) * h * w), { shape: [h, w] });
    const src = new Bokeh.ColumnDataSource({ data: { image: [img(F - 1)] } });
    const mapper = colorMapper(item.color);
    const p = figure(null, { x_range: new Bokeh.Range1d({ start: 0, end: w }),
      y_range: new Bokeh.Range1d({ start: h, end: 0 }), x_axis_label: "column", y_axis_label: "row",
      width: Math.min(W, 260 + 16 * w), height: Math.min(H + 40, 200 + 16 * h) });
    p.image({ image: { field: "image" }, x: 0, y: 0, dw: w, dh: h, source: src, color_mapper: mapper });
    p.add_layout(new Bokeh.ColorBar({ color_mapper: mapper, width: 10 }), "right");
    p.add_tools(new Bokeh.HoverTool({ tooltips: [["row, column", "$y{0}, $x{0}"], ["value", "@image{0.000e}"]] }));
    show(p, box);
    card.insertBefore(slider(F, (k) => { src.data = { image: [img(k)] }; },
      (k) => `step ${steps[k]} (${k + 1} of ${F})`), box.nextSibling);
    return { colors: [] };
  }

  function histogram(item, box, card) {
    // left: the distribution over steps (percentile bands); right: the histogram at the slider's step
    const steps = decode(item.steps), edges = decode(item.edges), counts = decode(item.counts);
    const qs = decode(item.quantiles);
    const [S, B] = item.counts.shape;
    const Q = item.quantiles.shape[1];
    const col = (j) => { const out = new Array(S); for (let k = 0; k < S; k++) { const v = qs[k * Q + j]; out[k] = item.log && !(v > 0) ? NaN : v; } return out; };
    const xs = Array.from(steps);
    const dist = new Bokeh.ColumnDataSource({ data: { x: xs, q0: col(0), q5: col(1), q25: col(2), q50: col(3),
      q75: col(4), q95: col(5), q100: col(6) } });
    const p = figure("distribution over steps", { y_axis_type: item.log ? "log" : "linear", y_axis_label: "value",
      width: 390 });
    p.varea({ x: { field: "x" }, y1: { field: "q5" }, y2: { field: "q95" }, source: dist, fill_color: PALETTE[0],
      fill_alpha: 0.18, legend_label: "5-95%" });
    p.varea({ x: { field: "x" }, y1: { field: "q25" }, y2: { field: "q75" }, source: dist, fill_color: PALETTE[0],
      fill_alpha: 0.4, legend_label: "25-75%" });
    p.line({ field: "x" }, { field: "q50" }, { source: dist, line_color: PALETTE[0], line_width: 1.8, legend_label: "median" });
    p.line({ field: "x" }, { field: "q0" }, { source: dist, line_color: "#888", line_width: 1, line_dash: "dotted",
      legend_label: "min / max" });
    p.line({ field: "x" }, { field: "q100" }, { source: dist, line_color: "#888", line_width: 1, line_dash: "dotted",
      legend_label: "min / max" });
    const mark = new Bokeh.Span({ location: steps[S - 1], dimension: "height", line_color: "#d62728", line_width: 1.5 });
    p.add_layout(mark);
    if (p.legend) { p.legend.label_text_font_size = "8pt"; p.legend.background_fill_alpha = 0.6; p.legend.spacing = 0;
      p.legend.padding = 4; p.legend.location = "top_right"; }
    const bars = (k) => ({ left: Array.from(edges.slice(k * (B + 1), k * (B + 1) + B)),
      right: Array.from(edges.slice(k * (B + 1) + 1, (k + 1) * (B + 1))), top: Array.from(counts.slice(k * B, (k + 1) * B)) });
    const src = new Bokeh.ColumnDataSource({ data: bars(S - 1) });
    const q = figure("at step " + steps[S - 1], { x_axis_label: item.log ? "log10(value)" : "value", y_axis_label: "count",
      width: 330 });
    q.quad({ left: { field: "left" }, right: { field: "right" }, top: { field: "top" }, bottom: 0, source: src,
      fill_color: PALETTE[0], line_color: "white", line_width: 0.5 });
    q.xaxis.each((a) => { a.ticker.desired_num_ticks = 4; });
    q.add_tools(new Bokeh.HoverTool({ tooltips: [["from", "@left{0.000e}"], ["to", "@right{0.000e}"], ["count", "@top"]] }));
    show(new Bokeh.Row({ children: [p, q] }), box);
    card.insertBefore(slider(S, (k) => { src.data = bars(k); mark.location = steps[k]; q.title.text = "at step " + steps[k]; },
      (k) => `step ${steps[k]} (${k + 1} of ${S})`), box.nextSibling);
    return { colors: [PALETTE[0]] };
  }

  function profile(item, box, card) {
    const steps = decode(item.steps), frames = decode(item.frames);
    const [F, n] = item.frames.shape;
    const xs = Array.from({ length: n }, (_, i) => i);
    const row = (k) => { const r = Array.from(frames.slice(k * n, (k + 1) * n)); return item.log ? positive(r) : r; };
    const src = new Bokeh.ColumnDataSource({ data: { x: xs, y: row(F - 1) } });
    const p = figure(null, { x_axis_label: "index", y_axis_type: item.log ? "log" : "linear" });
    p.line({ field: "x" }, { field: "y" }, { source: src, line_color: PALETTE[0], line_width: 1.7 });
    p.scatter({ field: "x" }, { field: "y" }, { source: src, size: 4, fill_color: PALETTE[0], line_color: PALETTE[0] });
    show(p, box);
    card.insertBefore(slider(F, (k) => { src.data = { x: xs, y: row(k) }; },
      (k) => `step ${steps[k]} (${k + 1} of ${F})`), box.nextSibling);
    return { colors: [PALETTE[0]] };
  }

  function scatter(item, box) {
    const opts = { x_axis_label: item.param, y_axis_label: "best " + item.metric, y_axis_type: item.ylog ? "log" : "linear" };
    if (item.categorical) opts.x_range = [...new Set(item.x)].sort();
    else opts.x_axis_type = item.xlog ? "log" : "linear";
    const p = figure(null, opts);
    const src = new Bokeh.ColumnDataSource({ data: { x: item.x, y: item.y, trial: item.trials } });
    p.scatter({ field: "x" }, { field: "y" }, { source: src, size: 9, fill_color: PALETTE[0], line_color: "#333" });
    for (const r of [p.x_range, p.y_range]) if (r instanceof Bokeh.DataRange1d) r.range_padding = 0.15;
    if (item.y.length) {  // the best trial (the table's first row) in red
      const best = new Bokeh.ColumnDataSource({ data: { x: [item.x[0]], y: [item.y[0]], trial: [item.trials[0]] } });
      p.scatter({ field: "x" }, { field: "y" }, { source: best, size: 13, fill_color: "#d62728", line_color: "#333" });
    }
    p.add_tools(new Bokeh.HoverTool({ tooltips: [["trial", "@trial"], [item.param, "@x"], [item.metric, "@y{0.000e}"]] }));
    show(p, box);
    return { colors: [PALETTE[0]] };
  }

  function table(item) {
    const thead = el("tr", {}, ...item.columns.map((c, i) => el("th", { "data-col": String(i), text: c })));
    const tbody = el("tbody");
    const fill = (rows) => {
      tbody.replaceChildren(...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {
        class: typeof v === "number" ? "num" : "", text: fmt(v) })))));
    };
    let rows = item.rows.slice(), dir = 1, last = -1;
    fill(rows);
    thead.addEventListener("click", (ev) => {
      const i = +ev.target.getAttribute("data-col");
      if (Number.isNaN(i)) return;
      dir = i === last ? -dir : 1; last = i;
      rows.sort((a, b) => {
        const x = a[i], y = b[i];
        if (x === y) return 0;
        if (x === null || x === "") return 1;
        if (y === null || y === "") return -1;
        return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
      });
      fill(rows);
    });
    return el("div", { class: "table-wrap" }, el("table", { class: "data", "data-table-id": item.id },
      el("thead", {}, thead), tbody));
  }

  // ------------------------------------------------------------------ layout
  const DRAW = { lines: lines, heatmap: heatmap, histogram: histogram, profile: profile, scatter: scatter };

  function item(it, grid) {
    if (it.type === "table") {
      grid.append(el("div", { class: "card wide" }, el("h4", { text: it.title }), table(it), notes(it)));
      return;
    }
    if (it.type === "json") {
      grid.append(el("div", { class: "card wide" }, el("details", {}, el("summary", { text: it.title }),
        el("pre", { text: it.text }))));
      return;
    }
    const box = el("div", { class: "chart", "data-chart-id": it.id, "data-kind": it.type });
    const card = el("div", { class: "card" }, el("h4", { text: it.title }), box, notes(it));
    grid.append(card);
    try {
      const info = DRAW[it.type](it, box, card);
      state.charts.push({ id: it.id, kind: it.type, title: it.title, colors: info.colors });
    } catch (err) {
      const msg = `chart ${it.title}: ${err && err.message ? err.message : err}`;
      state.errors.push(msg);
      console.error("jno report: " + msg);
      box.append(el("p", { class: "error", text: "could not draw this chart: " + msg }));
    }
  }

  function header() {
    const h = el("header", {}, el("h1", { text: "jno report: " + spec.title }),
      el("p", { class: "meta", text: `generated ${spec.generated} by jno-core ${spec.jno_version || "?"} with ` +
        `BokehJS ${Bokeh.version}; self-contained (opens offline, no network request)` }));
    if (multi) {
      h.append(el("div", { class: "runs" }, ...spec.runs.map((r, i) => el("span", { class: "run", title: r.dir },
        el("span", { class: "swatch", style: `background:${runColor(i)}` }), r.name))));
    }
    if (spec.problems.length) {
      h.append(el("div", { class: "problems" }, el("strong", { text: "Problems reading the input (the rest is shown):" }),
        el("ul", {}, ...spec.problems.map((t) => el("li", { text: t })))));
    }
    if (spec.n_reduced) {
      h.append(el("p", { class: "reduced", text: `${spec.n_reduced} series or histories were reduced for display ` +
        "(large runs are downsampled, never cut off); each chart concerned says how below it." }));
    }
    if (spec.skipped.length) {
      h.append(el("div", { class: "skipped" }, el("strong", { text: "Logged but not displayed:" }),
        el("ul", {}, ...spec.skipped.map((t) => el("li", { text: t })))));
    }
    const nav = el("nav", {}, ...(spec.sweeps.length ? [el("a", { href: "#sec-sweeps", text: "Sweep" })] : []),
      ...spec.sections.map((s) => el("a", { href: "#" + s.id, text: s.title })));
    h.append(nav);
    return h;
  }

  function main() {
    const root = document.getElementById("report");
    root.append(header());
    if (spec.sweeps.length) {
      const sec = el("section", { id: "sec-sweeps" }, el("h2", { text: "Sweep" }));
      for (const sw of spec.sweeps) {
        sec.append(el("h3", { text: `${sw.id}: ${sw.metric || "(no metric)"} (${sw.goal}), ${sw.n_trials} trials` }));
        sec.append(el("p", { class: "meta", text: sw.dir }));
        const grid = el("div", { class: "grid" });
        sec.append(grid);
        item(sw.table, grid);
        sw.scatters.forEach((s) => item(s, grid));
        sec.append(el("p", { class: "reduced", text: sw.overlaid.length < sw.n_trials
          ? `Curves below overlay the ${sw.overlaid.length} best of ${sw.n_trials} trials by ${sw.metric}; ` +
            "the table lists every trial." : `Curves below overlay all ${sw.n_trials} trials.` }));
      }
      root.append(sec);
    }
    for (const s of spec.sections) {
      const n = s.groups.reduce((a, g) => a + g.items.length, 0);
      const sec = el("section", { id: s.id, class: n <= 1 && s.id !== "sec-run" ? "compact" : "" }, el("h2", { text: s.title }));
      const grid = el("div", { class: "grid" });
      sec.append(grid);
      for (const g of s.groups) g.items.forEach((it) => item(it, grid));
      root.append(sec);
    }
    if (!spec.sections.length && !spec.sweeps.length) root.append(el("p", { text: "Nothing to show." }));
    Promise.all(pending).then(() => {
      state.ready = true;
      document.body.setAttribute("data-ready", "1");
    }, (err) => {
      state.errors.push(String(err));
      console.error("jno report: " + err);
      state.ready = true;
      document.body.setAttribute("data-ready", "1");
    });
  }
  main();
})();
