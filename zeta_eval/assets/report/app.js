/* zeta_eval report page: draws four views from window.ZETA_REPORT (report_data.js, written by
   `python -m zeta_eval report`). Plain JavaScript, no dependencies, nothing loaded from the network. */
(function () {
  "use strict";

  const D = window.ZETA_REPORT;
  const PAGE_COMPARE = 24;
  const PAGE_GALLERY = 20;

  // ------------------------------------------------------------------------------------------ helpers
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }
  // children for append(): nested lists flattened, absent parts dropped
  const nodes = (...kids) => kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false);
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const fixed = (v, digits) => (isNum(v) ? v.toFixed(digits) : "–");
  const sig3 = (v) => (isNum(v) ? String(Number(v.toPrecision(3))) : "–");
  const plain = (v) => (isNum(v) ? String(Number(v.toPrecision(6))) : "–");
  const signed = (text, v) => (isNum(v) && v > 0 ? "+" + text : text);
  const metricTitle = (m) => m.name + (m.scale !== 1 ? " ×" + m.scale : "") + (m.lower_is_better ? " ↓" : " ↑");
  const scaledText = (v, m, digits) => (isNum(v) ? (v * m.scale).toFixed(digits === undefined ? 2 : digits) : "–");
  const bounds = (lo, hi, m, digits) =>
    isNum(lo) && isNum(hi) ? "[" + scaledText(lo, m, digits) + ", " + scaledText(hi, m, digits) + "]" : "";
  const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");
  const settingLabel = (k) => D.settings[k].label;
  const count = (v) => (isNum(v) ? v.toLocaleString("en-US") : "?");
  const pct = (v) => (isNum(v) ? (100 * v).toFixed(1) + "%" : "–");

  function select(id, label, options, value, onchange) {
    const sel = h("select", { id: id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) }, text)));
    return h("label", { for: id }, label, sel);
  }

  // a table whose every column sorts on a click of its header: first click descending for numbers (ascending for
  // text), second click the other way; missing values always last; ties keep the table's own order
  function sortableTable(id, columns, rows, rowAttrs) {
    let sortCol = -1;
    let dir = 1;
    const tbody = h("tbody");
    const heads = columns.map((c, i) => h("th", {
      class: "sortable" + (c.text ? " text" : ""), title: c.title || "sort by " + c.label, "data-col": i,
      onclick: () => {
        dir = sortCol === i ? -dir : (c.text ? 1 : -1);
        sortCol = i;
        heads.forEach((th, j) => (j === i ? th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending")
          : th.removeAttribute("aria-sort")));
        draw();
      },
    }, c.label));
    function draw() {
      const order = rows.map((_, i) => i);
      if (sortCol >= 0) {
        const key = columns[sortCol].key;
        const missing = (v) => v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v));
        order.sort((a, b) => {
          const va = key(rows[a]);
          const vb = key(rows[b]);
          if (missing(va) || missing(vb)) return missing(va) === missing(vb) ? a - b : (missing(va) ? 1 : -1);
          const c = typeof va === "string" ? va.localeCompare(vb) : va - vb;
          return c !== 0 ? dir * c : a - b;
        });
      }
      tbody.replaceChildren(...order.map((i) => h("tr", rowAttrs ? rowAttrs(rows[i]) : {},
        columns.map((c) => h("td", { class: (c.text ? "text " : "") + (c.cls ? c.cls(rows[i]) : "") },
          c.cell(rows[i]))))));
    }
    draw();
    return h("div", { class: "table-wrap" }, h("table", { class: "data", id: id }, h("thead", {}, h("tr", {}, heads)), tbody));
  }

  function valueWithBounds(v, lo, hi, m, digits, sign) {
    const text = scaledText(v, m, digits);
    return [sign ? signed(text, v) : text, " ", h("span", { class: "ci" }, bounds(lo, hi, m, digits))];
  }

  // ------------------------------------------------------------------------------------------ items and media
  const nItems = D ? D.items.id.length : 0;
  const rowIndex = {}; // setting -> Int32Array(item -> row of that setting, or -1)
  function rowsOf(k) {
    if (!rowIndex[k]) {
      const idx = new Int32Array(nItems).fill(-1);
      D.settings[k].item.forEach((it, j) => { idx[it] = j; });
      rowIndex[k] = idx;
    }
    return rowIndex[k];
  }
  const itemPrompt = (i) => D.items.prompts[D.items.prompt[i]];
  const itemCategory = (i) => (D.items.category[i] >= 0 ? D.items.category_names[D.items.category[i]] : "");
  function itemMeta(i) {
    const parts = [];
    if (itemCategory(i)) parts.push(itemCategory(i));
    parts.push(D.items.id[i], "seed " + D.items.seed[i]);
    if (D.items.index[i]) parts.push("sample " + D.items.index[i]);
    if (D.items.prompt_sets.length > 1) parts.unshift(D.items.prompt_sets[D.items.set[i]]);
    return parts.join(" · ");
  }

  // the picture of one sample: an image; for a video its frame strip, which plays the MP4 on a click
  function mediaEl(k, j, alt) {
    const s = D.settings[k];
    const media = s.media[j];
    const strip = s.strip[j];
    if (!media && !strip) return h("div", { class: "missing" }, "no media");
    if (strip && media) {
      const img = h("img", { class: "media strip clickable", src: encodePath(s.dir + strip), alt: alt, loading: "lazy",
        title: "frame strip: click to play the video" });
      img.addEventListener("click", () => {
        img.replaceWith(h("video", { class: "media", src: encodePath(s.dir + media), controls: true, autoplay: true,
          loop: true, muted: true, playsinline: true }));
      });
      return img;
    }
    return h("img", { class: "media", src: encodePath(s.dir + (media || strip)), alt: alt, loading: "lazy" });
  }

  function scoreText(m, v) {
    if (!isNum(v)) return h("span", { class: "muted" }, m.name + " –");
    if (m.binary) return h("span", { class: v === 1 ? "ok" : "fail" }, m.name + " " + (v === 1 ? "✓" : "✗"));
    return h("span", {}, m.name + " " + plain(v * m.scale));
  }

  // the gallery's short form: a mark for 0/1 scores, the number otherwise; the metric's name on hover
  function compactScore(m, v) {
    const text = !isNum(v) ? "–" : m.binary ? (v === 1 ? "✓" : "✗") : plain(v * m.scale);
    return h("span", { class: isNum(v) && m.binary ? (v === 1 ? "ok" : "fail") : "", title: m.name }, text + " ");
  }

  function pager(page, pages, total, what, go) {
    return h("div", { class: "pager" },
      h("button", { class: "prev", disabled: page <= 0, onclick: () => go(page - 1) }, "‹ previous"),
      h("span", { class: "page-info" }, total ? "page " + (page + 1) + " of " + pages + " (" + total + " " + what + ")"
        : "no " + what),
      h("button", { class: "next", disabled: page >= pages - 1, onclick: () => go(page + 1) }, "next ›"));
  }

  // ------------------------------------------------------------------------------------------ results
  function completenessNote() {
    const c = D.completeness;
    const out = [];
    if (isNum(c.expected) && c.present < c.expected) {
      const short = c.settings.filter((s) => s.present < s.expected);
      const same = short.length === c.settings.length && short.every((s) => s.present === short[0].present);
      const missing = same ? ["each of the " + short.length + " sampler settings has " + count(short[0].present) +
        " of its " + count(short[0].expected) + " items"]
        : short.map((s) => s.label + ": " + count(s.expected - s.present) + " of " + count(s.expected) + " items missing");
      const tasks = D.run.array_tasks.length === 1 && D.run.array_task.length < D.run.array_tasks[0]
        ? "array tasks present: " + D.run.array_task.join(", ") + " of " + D.run.array_tasks[0] + " (0-based)" : null;
      out.push(h("div", { class: "note warn", id: "incomplete" },
        h("b", {}, "Incomplete run: " + count(c.present) + " of " + count(c.expected) + " samples"),
        " (" + (100 * c.present / c.expected).toFixed(1) + "%); the numbers below cover the samples present. ",
        h("span", { class: "small" }, nodes(missing.join("; "), tasks).join("; ") + ".")));
    }
    if (c.skipped_parts.length) {
      out.push(h("div", { class: "note bad" }, "Unreadable part files were skipped: " + c.skipped_parts.join(", ")));
    }
    return out;
  }

  function summaryTable() {
    const multiModel = D.run.models.length > 1;
    const rows = D.summary;
    const anyNonfinite = rows.some((r) => r.nonfinite > 0);
    const cols = [{ label: "sampler", text: true, key: (r) => settingLabel(r.setting), cell: (r) => settingLabel(r.setting) }];
    if (multiModel) cols.push({ label: "model", text: true, key: (r) => D.settings[r.setting].model, cell: (r) => D.settings[r.setting].model });
    cols.push(
      { label: "n", key: (r) => r.n, cell: (r) => r.n },
      { label: "γ_eff", key: (r) => r.gamma_eff, cell: (r) => plain(r.gamma_eff) },
      { label: "NFE", key: (r) => r.nfe, cell: (r) => plain(r.nfe) },
      { label: "s/sample", key: (r) => r.seconds_per_sample, cell: (r) => sig3(r.seconds_per_sample) });
    D.metrics.forEach((m) => {
      const c = (r) => r.metrics[m.name];
      cols.push(
        { label: metricTitle(m), title: m.name + ": mean (sort)", key: (r) => c(r).mean, cell: (r) => scaledText(c(r).mean, m) },
        { label: "95% interval", title: m.name + ": 95% interval (sort by its lower bound)", key: (r) => c(r).lo,
          cell: (r) => h("span", { class: "ci" }, bounds(c(r).lo, c(r).hi, m)) });
      if (rows.some((r) => c(r).n !== r.n)) {
        cols.push({ label: "scored", title: m.name + ": samples with a finite score", key: (r) => c(r).n, cell: (r) => c(r).n });
      }
    });
    if (anyNonfinite) cols.push({ label: "non-finite", key: (r) => r.nonfinite, cell: (r) => r.nonfinite });
    return sortableTable("summary-table", cols, rows, (r) => ({
      class: r.setting === D.baseline ? "baseline" : null, "data-setting": r.setting }));
  }

  function pairedSection() {
    if (D.baseline === null || D.settings.length < 2 || !D.metrics.length) return null;
    const rows = D.summary.filter((r) => r.setting !== D.baseline);
    const cols = [{ label: "sampler", text: true, key: (r) => settingLabel(r.setting), cell: (r) => settingLabel(r.setting) }];
    D.metrics.forEach((m) => {
      const c = (r) => r.metrics[m.name];
      const tone = (v) => (isNum(v) && v > 0 ? "pos" : isNum(v) && v < 0 ? "neg" : "");
      cols.push(
        { label: "Δ " + metricTitle(m), key: (r) => c(r).delta, cls: (r) => tone(c(r).delta),
          cell: (r) => signed(scaledText(c(r).delta, m), c(r).delta) },
        { label: "95% interval", title: "95% interval of the mean paired difference (sort by its lower bound)",
          key: (r) => c(r).delta_lo, cell: (r) => h("span", { class: "ci" }, bounds(c(r).delta_lo, c(r).delta_hi, m)) },
        { label: "win rate", key: (r) => c(r).winrate, cell: (r) => pct(c(r).winrate) },
        { label: "95% interval", title: "95% interval of the win rate (sort by its lower bound)", key: (r) => c(r).winrate_lo,
          cell: (r) => h("span", { class: "ci" }, isNum(c(r).winrate_lo) ? "[" + pct(c(r).winrate_lo) + ", " + pct(c(r).winrate_hi) + "]" : "") },
        { label: "pairs", key: (r) => c(r).pairs, cell: (r) => (c(r).pairs === undefined ? "–" : c(r).pairs) });
    });
    return [h("h2", {}, "Paired against " + settingLabel(D.baseline)),
      h("p", { class: "muted small" }, "Same prompt and seed. Δ = sampler − baseline, signed so that > 0 is better; " +
        "win rate counts ties as half. Pick another baseline with `report --baseline LABEL`."),
      sortableTable("paired-table", cols, rows, (r) => ({ "data-setting": r.setting }))];
  }

  function categorySection() {
    if (!D.categories.length || !D.metrics.length) return null;
    const out = [h("h2", {}, "Per category")];
    D.metrics.forEach((m) => {
      const rows = D.settings.map((s, k) => {
        const cells = D.categories.map((cat) => {
          const entry = D.category_summary[cat].find((e) => e.setting === k);
          return entry ? entry.metrics[m.name] : null;
        });
        const means = cells.filter((c) => c && isNum(c.mean)).map((c) => c.mean);
        return { setting: k, cells: cells, overall: means.length ? means.reduce((a, b) => a + b, 0) / means.length : null };
      });
      const cols = [{ label: "sampler", text: true, key: (r) => settingLabel(r.setting), cell: (r) => settingLabel(r.setting) }];
      D.categories.forEach((cat, ci) => cols.push({
        label: cat, title: m.name + " in " + cat + " (sort)", key: (r) => (r.cells[ci] ? r.cells[ci].mean : null),
        cell: (r) => (r.cells[ci] ? [valueWithBounds(r.cells[ci].mean, r.cells[ci].lo, r.cells[ci].hi, m, 1),
          h("span", { class: "ci" }, " n=" + r.cells[ci].n)] : "–"),
      }));
      cols.push({ label: "mean of categories", key: (r) => r.overall, cell: (r) => scaledText(r.overall, m) });
      out.push(h("h3", {}, metricTitle(m) + " per category"),
        sortableTable("category-table-" + m.name, cols, rows, (r) => ({ class: r.setting === D.baseline ? "baseline" : null })));
    });
    return out;
  }

  // the fair comparison with CFG (zeta_eval.fair): one row per guidance method and metric, first on the page
  function fairSection() {
    const F = D.fair;
    if (!F) return null;
    const out = [h("h2", {}, "Fair comparison with CFG"),
      h("p", { class: "muted small" }, "CFG curve: standard CFG at " + F.steps + " steps, γ = " + F.grid.join(", ") +
        ". Each cell: mean over items of (method − CFG) with its 95% interval clustered by prompt, > 0 better; † holds " +
        "after Holm's correction over the table; a reference between two CFG scales is interpolated per item " +
        "(linear in log γ), none beyond the grid.")];
    D.metrics.forEach((m) => {
      const rows = F.tables[m.name] || [];
      const cell = (c) => (!c || !isNum(c.estimate) ? "–" : [signed(scaledText(c.estimate, m), c.estimate), " ",
        h("span", { class: "ci" }, bounds(c.lo, c.hi, m)), c.holm ? " †" : ""]);
      const cols = [{ label: "method", text: true, key: (r) => r.label, cell: (r) => r.label },
        { label: "guidance", key: (r) => r.guidance, cell: (r) => sig3(r.guidance) + " (" + r.guidance_kind + ")" },
        { label: "NFE", key: (r) => r.nfe, cell: (r) => plain(r.nfe) },
        { label: "s/sample", key: (r) => r.seconds, cell: (r) => sig3(r.seconds) }];
      Object.entries(F.columns).forEach(([kind, title]) => cols.push({
        label: title, title: title + " (" + m.name + ")", key: (r) => (r.comparisons[kind] || {}).estimate,
        cell: (r) => cell(r.comparisons[kind]) }));
      if (D.metrics.length > 1) out.push(h("h3", {}, metricTitle(m)));
      out.push(sortableTable("fair-table-" + m.name, cols, rows),
        h("ul", { class: "small" }, rows.map((r) => h("li", {}, r.verdict))));
    });
    return out;
  }

  function renderResults(root) {
    const ex = D.run.experiment || {};
    const data = ex.data || {};
    root.append(...nodes(
      h("p", {}, count(D.run.samples) + " samples from " + D.settings.length + " sampler settings; model(s): " +
        D.run.models.join(", ") + ". " + (ex.fingerprint ? "Prompts: " + (data.prompt_set || data.source || "?") +
        " (" + count(ex.items) + " items); experiment fingerprint " + ex.fingerprint + "." : "")),
      completenessNote(),
      fairSection(),
      h("h2", {}, "Summary"),
      h("p", { class: "muted small" }, "Mean of each metric with its 95% interval; n samples; NFE network evaluations " +
        "per sample; s/sample sampling wall time; γ_eff the first-order equivalent CFG scale. Click a column to sort."),
      summaryTable(), pairedSection(), categorySection()));
  }

  // ------------------------------------------------------------------------------------------ compare
  const cmp = { a: null, b: null, metric: 0, filter: "all", category: -1, page: 0 };

  function defaultPair() {
    const base = D.baseline !== null ? D.baseline : 0;
    let a = D.settings.findIndex((s, k) => k !== base && s.name === "zeta");
    if (a < 0) a = D.settings.findIndex((s, k) => k !== base);
    return [a < 0 ? base : a, base];
  }

  // items with both samples, the advantage of A on the chosen metric (> 0: A better), sorted largest first
  function comparePairs() {
    const m = D.metrics[cmp.metric];
    const sign = m && m.lower_is_better ? -1 : 1;
    const ofB = rowsOf(cmp.b);
    const A = D.settings[cmp.a];
    const out = [];
    A.item.forEach((it, ja) => {
      const jb = ofB[it];
      if (jb < 0) return;
      if (cmp.category >= 0 && D.items.category[it] !== cmp.category) return;
      const va = m ? A.values[m.name][ja] : null;
      const vb = m ? D.settings[cmp.b].values[m.name][jb] : null;
      const adv = isNum(va) && isNum(vb) ? sign * (va - vb) : null;
      out.push({ item: it, ja: ja, jb: jb, adv: adv });
    });
    out.sort((x, y) => (x.adv === null || y.adv === null ? (x.adv === null) - (y.adv === null) : y.adv - x.adv) || x.item - y.item);
    const keep = { all: () => true, a: (p) => p.adv > 0, b: (p) => p.adv < 0, tie: (p) => p.adv === 0,
      differ: (p) => p.adv !== null && p.adv !== 0 }[cmp.filter];
    return { all: out, shown: out.filter(keep) };
  }

  function compareCard(p) {
    const it = p.item;
    const side = (which, k, j) => h("div", { class: "side", "data-side": which },
      h("div", { class: "who", title: settingLabel(k) }, h("b", {}, which.toUpperCase() + ": "), settingLabel(k)),
      mediaEl(k, j, settingLabel(k) + ": " + itemPrompt(it)),
      h("div", { class: "scores" }, D.metrics.map((m) => scoreText(m, D.settings[k].values[m.name][j]))));
    const diffs = D.metrics.map((m) => {
      const va = D.settings[cmp.a].values[m.name][p.ja];
      const vb = D.settings[cmp.b].values[m.name][p.jb];
      const d = isNum(va) && isNum(vb) ? (va - vb) * m.scale : null;
      return h("span", {}, "A − B " + m.name + (m.scale !== 1 ? " ×" + m.scale : "") + ": " +
        (d === null ? "–" : signed(plain(d), d)) + "  ");
    });
    return h("div", { class: "card" + (p.adv > 0 ? " a-better" : p.adv < 0 ? " b-better" : ""), "data-item": it,
      "data-prompt-id": D.items.id[it], "data-seed": D.items.seed[it], "data-sample-index": D.items.index[it] },
      h("div", { class: "prompt" }, itemPrompt(it)), h("div", { class: "meta" }, itemMeta(it)),
      h("div", { class: "pair" }, side("a", cmp.a, p.ja), side("b", cmp.b, p.jb)), h("div", { class: "diff" }, diffs));
  }

  function renderCompare(root) {
    if (cmp.a === null) [cmp.a, cmp.b] = defaultPair();
    const { all, shown } = comparePairs();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_COMPARE));
    cmp.page = Math.min(cmp.page, pages - 1);
    const redraw = (change) => { Object.assign(cmp, change); root.replaceChildren(); renderCompare(root); };
    const settingOptions = D.settings.map((s, k) => [k, s.label]);
    const m = D.metrics[cmp.metric];
    const controls = h("div", { class: "controls" },
      select("cmp-a", "sampler A", settingOptions, cmp.a, (v) => redraw({ a: +v, page: 0 })),
      select("cmp-b", "sampler B", settingOptions, cmp.b, (v) => redraw({ b: +v, page: 0 })),
      D.metrics.length ? select("cmp-metric", "sort by A − B of", D.metrics.map((x, i) => [i, x.name]), cmp.metric,
        (v) => redraw({ metric: +v, page: 0 })) : null,
      select("cmp-filter", "show", [["all", "all items"], ["a", "A wins"], ["b", "B wins"], ["tie", "ties"],
        ["differ", "A or B wins (results differ)"]], cmp.filter, (v) => redraw({ filter: v, page: 0 })),
      D.items.category_names.length ? select("cmp-category", "category",
        [[-1, "all categories"]].concat(D.items.category_names.map((c, i) => [i, c])), cmp.category,
        (v) => redraw({ category: +v, page: 0 })) : null);
    const wins = all.filter((p) => p.adv > 0).length;
    const losses = all.filter((p) => p.adv < 0).length;
    const ties = all.filter((p) => p.adv === 0).length;
    const summary = h("p", { id: "cmp-summary" }, all.length + " items with both samples" +
      (m ? ": A wins " + wins + ", B wins " + losses + ", ties " + ties + " on " + m.name +
        (m.lower_is_better ? " (lower is better)" : "") : "") + ". Showing " + shown.length + ", sorted by A − B, largest first.");
    const go = (page) => redraw({ page: page });
    const start = cmp.page * PAGE_COMPARE;
    root.append(...nodes(controls, summary, pager(cmp.page, pages, shown.length, "items", go),
      h("div", { class: "cards", id: "cmp-cards" }, shown.slice(start, start + PAGE_COMPARE).map(compareCard)),
      shown.length > PAGE_COMPARE ? pager(cmp.page, pages, shown.length, "items", go) : null));
  }

  // ------------------------------------------------------------------------------------------ gallery
  const gal = { text: "", category: -1, page: 0 };

  function galleryItems() {
    const q = gal.text.trim().toLowerCase();
    const out = [];
    for (let i = 0; i < nItems; i++) {
      if (gal.category >= 0 && D.items.category[i] !== gal.category) continue;
      if (q && !itemPrompt(i).toLowerCase().includes(q) && !D.items.id[i].toLowerCase().includes(q)) continue;
      out.push(i);
    }
    return out;
  }

  function renderGallery(root) {
    const binary = D.metrics.find((m) => m.binary);
    const body = h("div", { id: "gal-body" });
    function drawBody() {
      const items = galleryItems();
      const pages = Math.max(1, Math.ceil(items.length / PAGE_GALLERY));
      gal.page = Math.min(gal.page, pages - 1);
      const go = (page) => { gal.page = page; drawBody(); };
      const start = gal.page * PAGE_GALLERY;
      const head = h("tr", {}, h("th", { class: "prompt" }, "prompt"), D.settings.map((s) => h("th", { title: s.label }, s.label)));
      const rows = items.slice(start, start + PAGE_GALLERY).map((it) => h("tr", { "data-item": it },
        h("td", { class: "prompt" }, h("div", {}, itemPrompt(it)), h("div", { class: "muted small" }, itemMeta(it))),
        D.settings.map((s, k) => {
          const j = rowsOf(k)[it];
          if (j < 0) return h("td", { class: "cell" }, h("div", { class: "missing" }, "not run"));
          const v = binary ? s.values[binary.name][j] : null;
          return h("td", { class: "cell" + (isNum(v) ? (v === 1 ? " good" : " poor") : ""), "data-setting": k },
            mediaEl(k, j, s.label + ": " + itemPrompt(it)),
            h("div", { class: "score" }, D.metrics.map((m) => compactScore(m, s.values[m.name][j]))));
        })));
      body.replaceChildren(pager(gal.page, pages, items.length, "items", go),
        h("div", { class: "table-wrap" }, h("table", { class: "gallery", id: "gallery-table" }, h("thead", {}, head),
          h("tbody", {}, rows))),
        items.length > PAGE_GALLERY ? pager(gal.page, pages, items.length, "items", go) : null);
    }
    const input = h("input", { id: "gal-text", type: "search", placeholder: "words of the prompt or its id", value: gal.text,
      oninput: (e) => { gal.text = e.target.value; gal.page = 0; drawBody(); } });
    root.append(...nodes(h("div", { class: "controls" }, h("label", { for: "gal-text" }, "filter prompts", input),
      D.items.category_names.length ? select("gal-category", "category",
        [[-1, "all categories"]].concat(D.items.category_names.map((c, i) => [i, c])), gal.category,
        (v) => { gal.category = +v; gal.page = 0; drawBody(); }) : null,
      binary ? h("span", { class: "muted small" }, "outline: " + binary.name + " right (green) or wrong (red)") : null),
    body));
    drawBody();
  }

  // ------------------------------------------------------------------------------------------ run
  function kvTable(pairs) {
    return h("table", { class: "data kv" }, h("tbody", {}, pairs.filter((p) => p).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v)))));
  }
  const listText = (xs) => (xs && xs.length ? xs.join(", ") : "not recorded");

  function renderRun(root) {
    const r = D.run;
    const ex = r.experiment || {};
    const data = ex.data || {};
    const packages = {};
    r.versions.forEach((v) => Object.entries(v || {}).forEach(([k, x]) => {
      (packages[k] = packages[k] || new Set()).add(String(x));
    }));
    const commits = Object.keys(packages).filter((k) => /commit|git/i.test(k));
    root.append(...nodes(
      h("h2", {}, "Experiment"),
      kvTable([
        ["name", D.name], ["fingerprint", h("code", {}, ex.fingerprint || "not recorded")],
        ["prompts", (data.prompt_set || data.source || "?") + (ex.items !== undefined ? " (" + ex.items + " items)" : "")],
        ["steps, schedule", (ex.steps !== undefined ? ex.steps : "?") + ", " + JSON.stringify(ex.schedule)],
        ["model(s)", r.models.join(", ")],
        ["samples here", String(r.samples) + (isNum(D.completeness.expected) ? " of " + D.completeness.expected : "")],
      ]),
      h("h3", {}, "Sampler settings"),
      sortableTable("settings-table", [
        { label: "label", text: true, key: (s) => s.label, cell: (s) => s.label },
        { label: "key", text: true, key: (s) => s.key, cell: (s) => h("code", {}, s.key) },
        { label: "sampler", text: true, key: (s) => s.name, cell: (s) => s.name },
        { label: "parameters", text: true, key: (s) => JSON.stringify(s.params), cell: (s) => h("code", {}, JSON.stringify(s.params)) },
      ], D.settings),
      h("h2", {}, "Provenance"),
      kvTable([
        ["commit", commits.length ? commits.map((k) => k + " " + [...packages[k]].join(", ")).join("; ") : "not recorded in the rows"],
        ["hosts", listText(r.hosts)], ["world sizes (ranks per job)", listText(r.world_sizes)],
        ["ranks that wrote rows", listText(r.ranks)], ["array tasks", listText(r.array_task) + " of " + listText(r.array_tasks)],
        ["written", r.created ? r.created[0] + " … " + r.created[1] : "not recorded"],
      ]),
      h("h3", {}, "Package versions"),
      kvTable(Object.keys(packages).sort().map((k) => [k, [...packages[k]].join(", ")])),
      h("h3", {}, "Metric conventions"),
      h("pre", {}, r.conventions.length ? r.conventions.map((c) => JSON.stringify(c, null, 1)).join("\n") : "none recorded"),
      h("h2", {}, "Figures"),
      r.figures.length ? r.figures.map((f) => [h("h3", {}, f), h("img", { class: "figure", src: f, alt: f, loading: "lazy" })])
        : h("p", { class: "muted" }, "no figures"),
      h("h2", {}, "config.yaml"),
      h("pre", { id: "config-text" }, r.config || "no config.yaml in this folder"),
      h("details", {}, h("summary", {}, "experiment.json"), h("pre", {}, JSON.stringify(ex, null, 2)))));
  }

  // ------------------------------------------------------------------------------------------ routing
  const views = { results: renderResults, compare: renderCompare, gallery: renderGallery, run: renderRun };
  const drawn = {};
  function show() {
    const wanted = (location.hash || "#results").slice(1);
    const name = views[wanted] ? wanted : "results";
    Object.keys(views).forEach((v) => { document.getElementById("view-" + v).hidden = v !== name; });
    document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
    if (!drawn[name]) {
      const start = performance.now();
      views[name](document.getElementById("view-" + name));
      drawn[name] = performance.now() - start; // ms to build the view (benchmarks/html_report_load.py reads it)
      window.ZETA_VIEW_MS = drawn;
    }
  }

  if (!D || D.version !== 1) {
    const box = document.getElementById("load-error");
    box.textContent = !D ? "report_data.js did not load: it must lie next to index.html (rebuild both with " +
      "`python -m zeta_eval report OUT_DIR`)." : "report_data.js has layout version " + D.version +
      "; this page reads version 1: rebuild with `python -m zeta_eval report OUT_DIR`.";
    box.hidden = false;
    return;
  }
  window.addEventListener("hashchange", show);
  show();
  window.ZETA_READY_MS = performance.now();
  document.body.setAttribute("data-ready", "true");
})();
