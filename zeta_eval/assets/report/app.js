/* zeta_eval report page: draws four views from window.ZETA_REPORT (report_data.js, written by
   `python -m zeta_eval report`). Plain JavaScript, no dependencies, nothing loaded from the network.
   The choices of each view live in the URL's fragment (#compare?a=KEY&b=KEY&metric=NAME&show=differ&category=NAME
   &page=2, #gallery?q=WORDS&category=NAME&page=2): a link or a reload shows the same thing. */
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
  // "1 item", "2 items", "1,440 items"; ``many`` when the plural is not the word and an "s"
  const plural = (n, word, many) => count(n) + " " + (n === 1 ? word : many || word + "s");
  const pct = (v) => (isNum(v) ? (100 * v).toFixed(1) + "%" : "–");

  function select(id, label, options, value, onchange) {
    const sel = h("select", { id: id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, text]) => h("option", { value: v, selected: String(v) === String(value) }, text)));
    return h("label", { for: id }, label, sel);
  }

  // a table whose every column sorts on a click of its header (a button: also Tab, then Enter or Space): first
  // press descending for numbers (ascending for text), second press the other way; missing values always last;
  // ties keep the table's own order
  function sortableTable(id, columns, rows, rowAttrs) {
    let sortCol = -1;
    let dir = 1;
    const tbody = h("tbody");
    const heads = columns.map((c, i) => h("th", { class: "sortable" + (c.text ? " text" : ""), "data-col": i,
      "aria-sort": "none", scope: "col" },
    h("button", { type: "button", title: c.title || "sort by " + c.label, onclick: () => {
      dir = sortCol === i ? -dir : (c.text ? 1 : -1);
      sortCol = i;
      heads.forEach((th, j) => th.setAttribute("aria-sort", j !== i ? "none" : dir > 0 ? "ascending" : "descending"));
      draw();
    } }, c.label)));
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
        columns.map((c) => h("td", Object.assign({ class: (c.text ? "text " : "") + (c.cls ? c.cls(rows[i]) : "") },
          c.attrs ? c.attrs(rows[i]) : {}), c.cell(rows[i]))))));
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

  // a file of media/ that is not in this folder (the committed studies leave their images out; a copied page without
  // its media/): a note where the picture would be, never a broken-image icon
  function missingMedia(path) {
    return h("div", { class: "missing absent", title: path }, "media not in this folder");
  }
  function whenAbsent(el, path) {
    el.addEventListener("error", () => el.replaceWith(missingMedia(path)));
    return el;
  }

  // the picture of one sample: an image, a link to the full-size file; for a video its frame strip, which plays
  // the MP4 on a click
  function mediaEl(k, j, alt) {
    const s = D.settings[k];
    const media = s.media[j];
    const strip = s.strip[j];
    if (!media && !strip) return h("div", { class: "missing" }, "no media");
    if (strip && media) {
      const img = h("img", { class: "media strip clickable", src: encodePath(s.dir + strip), alt: alt, loading: "lazy",
        title: "frame strip: click to play the video" });
      img.addEventListener("click", () => {
        img.replaceWith(whenAbsent(h("video", { class: "media", src: encodePath(s.dir + media), controls: true,
          autoplay: true, loop: true, muted: true, playsinline: true }), s.dir + media));
      });
      return whenAbsent(img, s.dir + strip);
    }
    const path = s.dir + (media || strip);
    const link = h("a", { class: "full", href: encodePath(path), target: "_blank", title: "open the full-size file" },
      h("img", { class: "media", src: encodePath(path), alt: alt, loading: "lazy" }));
    link.firstChild.addEventListener("error", () => link.replaceWith(missingMedia(path)));
    return link;
  }

  // why a 0/1 score is 0 (the metric's ``<name>_reason`` code and its text from the conventions), or null
  function reasonOf(m, k, j) {
    const codes = D.settings[k].reasons && D.settings[k].reasons[m.name];
    const code = codes ? codes[j] : null;
    if (!m.binary || code === null || code === undefined || code === 0) return null;
    return (m.reasons && m.reasons[String(code)]) || "reason " + code;
  }

  function scoreText(m, v, reason) {
    if (!isNum(v)) return h("span", { class: "muted" }, m.name + " –");
    if (m.binary) {
      return h("span", { class: v === 1 ? "ok" : "fail" }, m.name + " " + (v === 1 ? "✓" : "✗"),
        v !== 1 && reason ? [" ", h("span", { class: "reason" }, reason)] : null);
    }
    return h("span", {}, m.name + " " + plain(v * m.scale));
  }

  // the gallery's short form: a mark for 0/1 scores (with the reason of a failure), the number otherwise; the
  // metric's name on hover
  function compactScore(m, v, reason) {
    const text = !isNum(v) ? "–" : m.binary ? (v === 1 ? "✓" : "✗") : plain(v * m.scale);
    return h("span", { class: isNum(v) && m.binary ? (v === 1 ? "ok" : "fail") : "",
      title: m.name + (reason && v !== 1 ? ": " + reason : "") }, text + " ",
    reason && isNum(v) && v !== 1 ? h("span", { class: "reason" }, reason) : null);
  }

  function pager(page, pages, total, what, go) {
    return h("div", { class: "pager" },
      h("button", { class: "prev", disabled: page <= 0, onclick: () => go(page - 1) }, "‹ previous"),
      h("span", { class: "page-info" }, total ? "page " + (page + 1) + " of " + pages + " (" + plural(total, what) + ")"
        : "no " + what + "s"),
      h("button", { class: "next", disabled: page >= pages - 1, onclick: () => go(page + 1) }, "next ›"));
  }

  // ------------------------------------------------------------------------------------------ results
  // what an incomplete run means for each view (the note stands at the top of every view)
  const INCOMPLETE = {
    results: "the numbers below cover the samples present.",
    compare: "differences and items below cover only the items both samplers have.",
    gallery: "a cell without a sample says \"not run\".",
    run: "the provenance below is that of the samples present.",
  };
  function completenessNote(view) {
    const c = D.completeness;
    const out = [];
    if (isNum(c.expected) && c.present < c.expected) {
      const short = c.settings.filter((s) => s.present < s.expected);
      const same = short.length === c.settings.length && short.every((s) => s.present === short[0].present);
      const missing = same ? [(short.length === 1 ? "the sampler setting has " : "each of the " + short.length +
        " sampler settings has ") + count(short[0].present) + " of its " + plural(short[0].expected, "item")]
        : short.map((s) => s.label + ": " + count(s.expected - s.present) + " of " + plural(s.expected, "item") + " missing");
      const tasks = D.run.array_tasks.length === 1 && D.run.array_tasks[0] > 1 &&
        D.run.array_task.length < D.run.array_tasks[0]
        ? "array tasks present: " + D.run.array_task.join(", ") + " of " + D.run.array_tasks[0] + " (0-based)" : null;
      out.push(h("div", { class: "note warn incomplete", id: "incomplete-" + view },
        h("b", {}, "Incomplete run: " + count(c.present) + " of " + plural(c.expected, "sample")),
        " (" + (100 * c.present / c.expected).toFixed(1) + "%); " + INCOMPLETE[view] + " ",
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
      { label: "n", title: "samples", key: (r) => r.n, cell: (r) => count(r.n) },
      { label: "prompts", title: "distinct prompts among the samples: the unit of every interval", key: (r) => r.n_prompts,
        cell: (r) => count(r.n_prompts) },
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
        { label: "pairs (prompts)", key: (r) => c(r).pairs,
          cell: (r) => (isNum(c(r).pairs) ? count(c(r).pairs) + " (" + count(c(r).pair_prompts) + ")" : "–") },
        { label: "holds (Holm)", title: m.name + ": the difference holds at family-wise 5% (Holm's adjusted p-value; " +
          "sort by it)", key: (r) => c(r).p_holm, cls: (r) => (c(r).holm ? "pos holm" : "holm"),
          cell: (r) => (c(r).holm === true ? "yes" : c(r).holm === false ? "no" : "–") });
    });
    return [h("h2", {}, "Paired against " + settingLabel(D.baseline)),
      h("p", { class: "muted small" }, "Same prompt, seed and sample index. Δ = sampler − baseline, signed so that " +
        "> 0 is better; win rate counts ties as half; intervals are clustered by prompt. \"holds\": the difference " +
        "is not zero at a family-wise error of 5% over every difference of this table (Holm). Pick another baseline " +
        "with `report --baseline LABEL`, or any pair in Compare."),
      sortableTable("paired-table", cols, rows, (r) => ({ "data-setting": r.setting }))];
  }

  function categorySection() {
    if (!D.categories.length || !D.metrics.length) return null;
    const out = [h("h2", {}, "Per category"), h("p", { class: "muted small" }, "Exploratory: many comparisons, " +
      "none corrected for the others; each category's intervals are clustered by prompt.")];
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
          h("span", { class: "ci" }, " n=" + count(r.cells[ci].n) + (isNum(r.cells[ci].prompts) &&
            r.cells[ci].prompts !== r.cells[ci].n ? ", " + plural(r.cells[ci].prompts, "prompt") : ""))] : "–"),
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
      completenessNote("results"),
      h("p", {}, plural(D.run.samples, "sample") + " from " + plural(D.settings.length, "sampler setting") +
        "; model(s): " + D.run.models.join(", ") + ". " + (ex.fingerprint ? "Prompts: " +
        (data.prompt_set || data.source || "?") + " (" + plural(ex.items, "item") + "); experiment fingerprint " +
        ex.fingerprint + "." : "")),
      fairSection(),
      h("h2", {}, "Summary"),
      h("p", { class: "muted small" }, "Mean of each metric with its 95% interval; n samples; NFE network evaluations " +
        "per sample; s/sample sampling wall time; γ_eff the first-order equivalent CFG scale. Click a column's " +
        "header (or Tab to it and press Enter) to sort."),
      summaryTable(), pairedSection(), categorySection()));
  }

  // ------------------------------------------------------------------------------------------ state in the URL
  // each view's choices; the URL's fragment holds the shown view's: settings by key, metric and category by name
  const state = {
    compare: { a: null, b: null, metric: 0, filter: "all", category: -1, page: 0 },
    gallery: { text: "", category: -1, page: 0 },
  };
  const FILTERS = ["all", "a", "b", "tie", "differ"];
  function settingId(k) {
    const s = D.settings[k];
    return D.settings.filter((x) => x.key === s.key).length > 1 ? s.key + "@" + s.model : s.key;
  }
  function settingOf(id) {
    const k = id === null ? -1 : D.settings.findIndex((_, i) => settingId(i) === id);
    return k >= 0 ? k : null;
  }
  const categoryOf = (name) => (name === null ? -1 : D.items.category_names.indexOf(name));
  const pageOf = (text) => Math.max(0, (parseInt(text, 10) || 1) - 1);

  function toParams(view) {
    const p = new URLSearchParams();
    const c = state[view];
    if (view === "compare") {
      if (c.a !== null) { p.set("a", settingId(c.a)); p.set("b", settingId(c.b)); }
      if (D.metrics.length) p.set("metric", D.metrics[c.metric].name);
      if (c.filter !== "all") p.set("show", c.filter);
    } else if (view === "gallery" && c.text) {
      p.set("q", c.text);
    }
    if (c && c.category >= 0) p.set("category", D.items.category_names[c.category]);
    if (c && c.page > 0) p.set("page", c.page + 1);
    return p.toString();
  }

  // a fragment with choices sets all of them (those it leaves out to their defaults); one without keeps the view's
  function fromParams(view, text) {
    const p = new URLSearchParams(text);
    if (view === "compare") {
      const [a0, b0] = defaultPair();
      const a = settingOf(p.get("a"));
      const b = settingOf(p.get("b"));
      const m = D.metrics.findIndex((x) => x.name === p.get("metric"));
      Object.assign(state.compare, { a: a === null ? a0 : a, b: b === null ? b0 : b, metric: Math.max(0, m),
        filter: FILTERS.includes(p.get("show")) ? p.get("show") : "all" });
    } else if (view === "gallery") {
      state.gallery.text = p.get("q") || "";
    }
    if (state[view]) Object.assign(state[view], { category: categoryOf(p.get("category")), page: pageOf(p.get("page")) });
  }

  // ------------------------------------------------------------------------------------------ compare
  function defaultPair() {
    const base = D.baseline !== null ? D.baseline : 0;
    let a = D.settings.findIndex((s, k) => k !== base && s.name === "zeta");
    if (a < 0) a = D.settings.findIndex((s, k) => k !== base);
    return [a < 0 ? base : a, base];
  }

  // the report's paired difference A - B of one metric in one scope (0: all items, 1 + i: category i), with its
  // interval, pairs, prompts and A's wins, ties and losses; the report stores a < b, the other order is its negation
  const pairIndex = {};
  if (D && D.compare) D.compare.pairs.forEach(([a, b], p) => { pairIndex[a + "," + b] = p; });
  function pairStats(a, b, metric, scope) {
    if (a === b) return null;
    const flip = a > b;
    const entry = D.compare.stats[metric][pairIndex[flip ? b + "," + a : a + "," + b]][scope];
    const f = {};
    D.compare.fields.forEach((k, i) => { f[k] = entry[i]; });
    if (!flip) return f;
    const neg = (v) => (isNum(v) ? -v : v);
    return { delta: neg(f.delta), lo: neg(f.hi), hi: neg(f.lo), pairs: f.pairs, prompts: f.prompts, wins: f.losses,
      ties: f.ties, losses: f.wins };
  }

  function differenceSection() {
    const c = state.compare;
    if (c.a === c.b) {
      return h("p", { class: "note", id: "cmp-same" }, "A and B are the same sampler setting: pick two to compare.");
    }
    if (!D.metrics.length) return null;
    const rows = D.compare.scopes.map((name, scope) => ({ scope: scope, name: scope === 0 ? "all items" : name,
      stats: D.metrics.map((m) => pairStats(c.a, c.b, m.name, scope)) })).filter((r) => r.stats.some((x) => x.pairs > 0));
    const cols = [{ label: "items", text: true, key: (r) => (r.scope === 0 ? "" : r.name), cell: (r) => r.name }];
    D.metrics.forEach((m, i) => {
      const st = (r) => r.stats[i];
      const tone = (v) => (isNum(v) && v > 0 ? "pos" : isNum(v) && v < 0 ? "neg" : "");
      cols.push(
        { label: "Δ " + metricTitle(m), title: m.name + ": mean of A − B (> 0: A better)", key: (r) => st(r).delta,
          cls: (r) => tone(st(r).delta) + " delta", attrs: (r) => ({ "data-metric": m.name, "data-value": st(r).delta }),
          cell: (r) => signed(scaledText(st(r).delta, m), st(r).delta) },
        { label: "95% interval", title: m.name + ": 95% interval of the mean difference (sort by its lower bound)",
          key: (r) => st(r).lo, cls: () => "interval",
          attrs: (r) => ({ "data-metric": m.name, "data-lo": st(r).lo, "data-hi": st(r).hi }),
          cell: (r) => h("span", { class: "ci" }, bounds(st(r).lo, st(r).hi, m)) },
        { label: "A wins · ties · B wins", title: m.name + ": pairs A wins, ties and loses (sort by A's wins)",
          key: (r) => st(r).wins, cls: () => "wtl", attrs: (r) => ({ "data-metric": m.name }),
          cell: (r) => count(st(r).wins) + " · " + count(st(r).ties) + " · " + count(st(r).losses) },
        { label: "pairs (prompts)", title: m.name + ": paired samples with both scores, and their distinct prompts",
          key: (r) => st(r).pairs, cls: () => "pairs", attrs: (r) => ({ "data-metric": m.name }),
          cell: (r) => count(st(r).pairs) + " (" + count(st(r).prompts) + ")" });
    });
    return [h("h2", {}, "A − B, paired"),
      h("p", { class: "muted small" }, "A: " + settingLabel(c.a) + "; B: " + settingLabel(c.b) + ". Δ is the mean of " +
        "A − B over the samples both have (same prompt, seed and sample index), signed so that > 0 means A is " +
        "better; its 95% interval and the counts are the report's, computed as summary.csv's paired differences. " +
        (D.compare.method ? D.compare.method + " " : "") + "The per-category rows are exploratory: many " +
        "comparisons, none corrected for the others."),
      sortableTable("cmp-stats", cols, rows, (r) => ({ "data-scope": r.scope === 0 ? "all" : r.name }))];
  }

  // items with both samples, the advantage of A on the chosen metric (> 0: A better), sorted largest first
  function comparePairs() {
    const c = state.compare;
    const m = D.metrics[c.metric];
    const sign = m && m.lower_is_better ? -1 : 1;
    const ofB = rowsOf(c.b);
    const A = D.settings[c.a];
    const out = [];
    A.item.forEach((it, ja) => {
      const jb = ofB[it];
      if (jb < 0) return;
      if (c.category >= 0 && D.items.category[it] !== c.category) return;
      const va = m ? A.values[m.name][ja] : null;
      const vb = m ? D.settings[c.b].values[m.name][jb] : null;
      const adv = isNum(va) && isNum(vb) ? sign * (va - vb) : null;
      out.push({ item: it, ja: ja, jb: jb, adv: adv });
    });
    out.sort((x, y) => (x.adv === null || y.adv === null ? (x.adv === null) - (y.adv === null) : y.adv - x.adv) || x.item - y.item);
    const keep = { all: () => true, a: (p) => p.adv > 0, b: (p) => p.adv < 0, tie: (p) => p.adv === 0,
      differ: (p) => p.adv !== null && p.adv !== 0 }[c.filter];
    return { all: out, shown: out.filter(keep) };
  }

  function compareCard(p) {
    const c = state.compare;
    const it = p.item;
    const side = (which, k, j) => h("div", { class: "side", "data-side": which },
      h("div", { class: "who", title: settingLabel(k) }, h("b", {}, which.toUpperCase() + ": "), settingLabel(k)),
      mediaEl(k, j, settingLabel(k) + ": " + itemPrompt(it)),
      h("div", { class: "scores" }, D.metrics.map((m) => scoreText(m, D.settings[k].values[m.name][j], reasonOf(m, k, j)))));
    const diffs = D.metrics.map((m) => {
      const va = D.settings[c.a].values[m.name][p.ja];
      const vb = D.settings[c.b].values[m.name][p.jb];
      const d = isNum(va) && isNum(vb) ? (va - vb) * m.scale : null;
      return h("span", {}, "A − B " + m.name + (m.scale !== 1 ? " ×" + m.scale : "") + ": " +
        (d === null ? "–" : signed(plain(d), d)) + "  ");
    });
    return h("div", { class: "card" + (p.adv > 0 ? " a-better" : p.adv < 0 ? " b-better" : ""), "data-item": it,
      "data-prompt-id": D.items.id[it], "data-seed": D.items.seed[it], "data-sample-index": D.items.index[it] },
      h("div", { class: "prompt" }, itemPrompt(it)), h("div", { class: "meta" }, itemMeta(it)),
      h("div", { class: "pair" }, side("a", c.a, p.ja), side("b", c.b, p.jb)), h("div", { class: "diff" }, diffs));
  }

  function renderCompare(root) {
    const c = state.compare;
    if (c.a === null) [c.a, c.b] = defaultPair();
    const { all, shown } = comparePairs();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_COMPARE));
    c.page = Math.min(c.page, pages - 1);
    const set = (change) => update("compare", change);
    const settingOptions = D.settings.map((s, k) => [k, s.label]);
    const m = D.metrics[c.metric];
    const controls = h("div", { class: "controls" },
      select("cmp-a", "sampler A", settingOptions, c.a, (v) => set({ a: +v, page: 0 })),
      select("cmp-b", "sampler B", settingOptions, c.b, (v) => set({ b: +v, page: 0 })),
      D.metrics.length ? select("cmp-metric", "sort items by A − B of", D.metrics.map((x, i) => [i, x.name]), c.metric,
        (v) => set({ metric: +v, page: 0 })) : null,
      select("cmp-filter", "show", [["all", "all items"], ["a", "A wins"], ["b", "B wins"], ["tie", "ties"],
        ["differ", "A or B wins (results differ)"]], c.filter, (v) => set({ filter: v, page: 0 })),
      D.items.category_names.length ? select("cmp-category", "category",
        [[-1, "all categories"]].concat(D.items.category_names.map((x, i) => [i, x])), c.category,
        (v) => set({ category: +v, page: 0 })) : null);
    const wins = all.filter((p) => p.adv > 0).length;
    const losses = all.filter((p) => p.adv < 0).length;
    const ties = all.filter((p) => p.adv === 0).length;
    const summary = h("p", { id: "cmp-summary" }, plural(all.length, "item") + " with both samples" +
      (c.category >= 0 ? " in " + D.items.category_names[c.category] : "") +
      (m ? ": A wins " + count(wins) + ", B wins " + count(losses) + ", ties " + count(ties) + " on " + m.name +
        (m.lower_is_better ? " (lower is better)" : "") : "") + ". Showing " + count(shown.length) +
      ", sorted by A − B, largest first.");
    const go = (page) => set({ page: page });
    const start = c.page * PAGE_COMPARE;
    root.append(...nodes(completenessNote("compare"), controls, differenceSection(), h("h2", {}, "Items"), summary,
      pager(c.page, pages, shown.length, "item", go),
      h("div", { class: "cards", id: "cmp-cards" }, shown.slice(start, start + PAGE_COMPARE).map(compareCard)),
      shown.length > PAGE_COMPARE ? pager(c.page, pages, shown.length, "item", go) : null));
  }

  // ------------------------------------------------------------------------------------------ gallery
  function galleryItems() {
    const g = state.gallery;
    const q = g.text.trim().toLowerCase();
    const out = [];
    for (let i = 0; i < nItems; i++) {
      if (g.category >= 0 && D.items.category[i] !== g.category) continue;
      if (q && !itemPrompt(i).toLowerCase().includes(q) && !D.items.id[i].toLowerCase().includes(q)) continue;
      out.push(i);
    }
    return out;
  }

  function renderGallery(root) {
    const g = state.gallery;
    const binary = D.metrics.find((m) => m.binary);
    const body = h("div", { id: "gal-body" });
    function drawBody() {
      const items = galleryItems();
      const pages = Math.max(1, Math.ceil(items.length / PAGE_GALLERY));
      g.page = Math.min(g.page, pages - 1);
      const go = (page) => { g.page = page; drawBody(); settled("gallery"); };
      const start = g.page * PAGE_GALLERY;
      const head = h("tr", {}, h("th", { class: "prompt" }, "prompt"), D.settings.map((s) => h("th", { title: s.label }, s.label)));
      const rows = items.slice(start, start + PAGE_GALLERY).map((it) => h("tr", { "data-item": it },
        h("td", { class: "prompt" }, h("div", {}, itemPrompt(it)), h("div", { class: "muted small" }, itemMeta(it))),
        D.settings.map((s, k) => {
          const j = rowsOf(k)[it];
          if (j < 0) return h("td", { class: "cell" }, h("div", { class: "missing" }, "not run"));
          const v = binary ? s.values[binary.name][j] : null;
          return h("td", { class: "cell" + (isNum(v) ? (v === 1 ? " good" : " poor") : ""), "data-setting": k },
            mediaEl(k, j, s.label + ": " + itemPrompt(it)),
            h("div", { class: "score" }, D.metrics.map((m) => compactScore(m, s.values[m.name][j], reasonOf(m, k, j)))));
        })));
      body.replaceChildren(...nodes(pager(g.page, pages, items.length, "item", go),
        h("div", { class: "table-wrap" }, h("table", { class: "gallery", id: "gallery-table" }, h("thead", {}, head),
          h("tbody", {}, rows))),
        items.length > PAGE_GALLERY ? pager(g.page, pages, items.length, "item", go) : null));
    }
    const input = h("input", { id: "gal-text", type: "search", placeholder: "words of the prompt or its id", value: g.text,
      oninput: (e) => { g.text = e.target.value; g.page = 0; drawBody(); settled("gallery"); } });
    root.append(...nodes(completenessNote("gallery"), h("div", { class: "controls" },
      h("label", { for: "gal-text" }, "filter prompts", input),
      D.items.category_names.length ? select("gal-category", "category",
        [[-1, "all categories"]].concat(D.items.category_names.map((c, i) => [i, c])), g.category,
        (v) => { g.category = +v; g.page = 0; drawBody(); settled("gallery"); }) : null,
      binary ? h("span", { class: "muted small" }, "outline: " + binary.name + " right (green) or wrong (red)" +
        (binary.reasons ? ", with the reason of a wrong one" : "")) : null),
    body));
    drawBody();
  }

  // ------------------------------------------------------------------------------------------ run
  function kvTable(pairs) {
    return h("table", { class: "data kv" }, h("tbody", {}, pairs.filter((p) => p).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", {}, v)))));
  }
  const listText = (xs) => (xs && xs.length ? xs.join(", ") : "not recorded");
  // the array tasks that wrote rows against the size of the array: "none (not an array job)", "0, 1, 3 (0-based) of 4"
  function arrayText(tasks, sizes) {
    if (!sizes.length) return "not recorded";
    if (sizes.every((n) => n === 1)) return "none (not an array job)";
    if (sizes.length === 1 && tasks.length === sizes[0]) return "all " + sizes[0] + " tasks of the array";
    return "tasks " + listText(tasks) + " (0-based) of an array of " + sizes.join(" or ") + " tasks";
  }

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
      completenessNote("run"),
      h("h2", {}, "Experiment"),
      kvTable([
        ["name", D.name], ["fingerprint", h("code", {}, ex.fingerprint || "not recorded")],
        ["prompts", (data.prompt_set || data.source || "?") + (ex.items !== undefined ? " (" + plural(ex.items, "item") + ")" : "")],
        ["steps, schedule", (ex.steps !== undefined ? ex.steps : "?") + ", " + JSON.stringify(ex.schedule)],
        ["model(s)", r.models.join(", ")],
        ["samples here", count(r.samples) + (isNum(D.completeness.expected) ? " of " + count(D.completeness.expected) : "")],
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
        ["ranks that wrote rows", listText(r.ranks)], ["array tasks", arrayText(r.array_task, r.array_tasks)],
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
  const drawn = {}; // view -> ms to build it the first time (benchmarks/html_report_load.py reads it)
  const drawnState = {}; // view -> its choices when last drawn

  // the URL of what is shown: the view and its choices (replaced, not pushed: one history entry per view change)
  function remember(view) {
    const q = toParams(view);
    const want = "#" + view + (q ? "?" + q : "");
    if (location.hash !== want) history.replaceState(null, "", want);
  }
  function settled(view) {
    drawnState[view] = JSON.stringify(state[view] || null);
    remember(view);
  }
  function draw(view) {
    const root = document.getElementById("view-" + view);
    const start = performance.now();
    root.replaceChildren();
    views[view](root);
    if (!(view in drawn)) drawn[view] = performance.now() - start;
    window.ZETA_VIEW_MS = drawn;
    settled(view);
  }
  function update(view, change) {
    Object.assign(state[view], change);
    draw(view);
  }
  function show() {
    const hash = (location.hash || "#results").slice(1);
    const cut = hash.indexOf("?");
    const wanted = cut >= 0 ? hash.slice(0, cut) : hash;
    const name = views[wanted] ? wanted : "results";
    if (cut >= 0 && state[name]) fromParams(name, hash.slice(cut + 1));
    Object.keys(views).forEach((v) => { document.getElementById("view-" + v).hidden = v !== name; });
    document.querySelectorAll("#tabs a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
    if (!(name in drawnState) || drawnState[name] !== JSON.stringify(state[name] || null)) draw(name);
    else remember(name);
  }

  if (!D || D.version !== 2) {
    const box = document.getElementById("load-error");
    box.textContent = !D ? "report_data.js did not load: it must lie next to index.html (rebuild both with " +
      "`python -m zeta_eval report OUT_DIR`)." : "report_data.js has layout version " + D.version +
      "; this page reads version 2: rebuild with `python -m zeta_eval report OUT_DIR`.";
    box.hidden = false;
    return;
  }
  window.addEventListener("hashchange", show);
  show();
  window.ZETA_READY_MS = performance.now();
  document.body.setAttribute("data-ready", "true");
})();
