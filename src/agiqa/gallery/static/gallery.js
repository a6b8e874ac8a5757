// agiqa gallery: the page of `agiqa serve` and the static `agiqa report`. Plain JavaScript, no dependencies.
// The server (or the report's embedded JSON) says what each score means (level word, percentile); this script only
// shows, sorts and asks for explanations. Text from data is always set with textContent, never as HTML.
"use strict";

(function () {
  const state = { mode: "server", model: null, items: [], nextId: 0 };
  const UPLOAD_BATCH = 16;
  const $ = (id) => document.getElementById(id);

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").classList.toggle("error", Boolean(isError));
  }

  async function fetchJSON(url, options) {
    const response = await fetch(url, options);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
      throw new Error(`${response.status}: ${detail}`);
    }
    return body;
  }

  function dims() {
    return state.model ? state.model.dimensions : [];
  }

  // One item per image: name, prompt, thumbnail source, error/warning, annotated scores, where it came from.
  function makeItem(record, src, source) {
    const scores = {};
    for (const d of dims()) {
      scores[d.name] = {
        score: record[d.name] ?? null,
        level: record[`${d.name}_level`] ?? null,
        pct: record[`${d.name}_pct`] ?? null,
      };
    }
    return {
      id: state.nextId++,
      name: String(record.image ?? ""),
      prompt: String(record.prompt ?? ""),
      error: record.error || "",
      warning: record.warning || "",
      extra: record.extra || {},
      scores,
      src,
      source,
    };
  }

  function sortedItems() {
    const key = $("sort-key").value;
    const spec = dims().find((d) => d.name === key);
    const best = $("sort-order").value === "best";
    const sign = (spec && spec.higher_is_better) === best ? -1 : 1;
    return state.items.slice().sort((a, b) => {
      const x = spec ? a.scores[key].score : null;
      const y = spec ? b.scores[key].score : null;
      if (x === null && y === null) return a.id - b.id;
      if (x === null) return 1;
      if (y === null) return -1;
      return sign * (x - y) || a.id - b.id;
    });
  }

  function scoreLine(dim, s) {
    const value = s.score === null ? "–" : s.score.toFixed(2);
    return el(
      "li",
      { "data-dim": dim.name, "data-score": s.score === null ? "" : String(s.score), "data-pct": s.pct === null ? "" : String(s.pct) },
      el("span", { class: "dim", text: dim.name }),
      el("span", { class: "value", text: value }),
      s.level ? el("span", { class: `level level-${s.level}`, text: s.level }) : null,
      s.pct === null ? null : el("span", { class: "pct", text: `p${Math.round(s.pct)}`, title: "percentile against the model's reference" }),
    );
  }

  function render() {
    const gallery = $("gallery");
    gallery.replaceChildren();
    sortedItems().forEach((item, k) => {
      const picture = item.src ? el("img", { src: item.src, alt: item.name, loading: "lazy" }) : el("div", { class: "noimage", text: "no image" });
      const card = el(
        "figure",
        { class: "card", tabIndex: 0, "data-name": item.name, "data-id": String(item.id) },
        picture,
        el(
          "figcaption",
          {},
          el("div", { class: "name", title: item.name }, el("span", { class: "rank", text: `${k + 1}.` }), item.name.split("/").pop()),
          item.prompt ? el("div", { class: "prompt-line", text: item.prompt, title: item.prompt }) : null,
          el("ul", { class: "scores" }, ...dims().map((d) => scoreLine(d, item.scores[d.name]))),
          item.error ? el("div", { class: "error", text: item.error }) : null,
          item.warning ? el("div", { class: "warning", text: item.warning }) : null,
        ),
      );
      card.addEventListener("click", () => openDetail(item));
      card.addEventListener("keydown", (event) => {
        if (event.key === "Enter") openDetail(item);
      });
      gallery.append(card);
    });
  }

  function setupSort() {
    const select = $("sort-key");
    select.replaceChildren(...dims().map((d) => el("option", { value: d.name, text: `${d.name} (${d.higher_is_better ? "higher" : "lower"} is better)` })));
    select.addEventListener("change", render);
    $("sort-order").addEventListener("change", render);
  }

  function scoresTable(item) {
    const rows = dims().map((d) => {
      const s = item.scores[d.name];
      return el(
        "tr",
        {},
        el("th", { text: d.name }),
        el("td", { text: s.score === null ? "–" : s.score.toFixed(3) }),
        el("td", {}, s.level ? el("span", { class: `level level-${s.level}`, text: s.level }) : null),
        el("td", { class: "muted", text: s.pct === null ? "" : `percentile ${s.pct.toFixed(1)}` }),
      );
    });
    return el("table", { class: "scores-table" }, ...rows);
  }

  function openDetail(item) {
    const body = $("detail-body");
    const extra = Object.entries(item.extra);
    body.replaceChildren(
      ...[
      el("h2", { text: item.name }),
      item.prompt ? el("p", { class: "muted", text: item.prompt }) : null,
      item.src ? el("img", { src: item.src, alt: item.name, id: "detail-image" }) : null,
      scoresTable(item),
      item.error ? el("p", { class: "error", text: item.error }) : null,
      extra.length ? el("table", {}, ...extra.map(([k, v]) => el("tr", {}, el("th", { text: k }), el("td", { text: String(v) })))) : null,
      el("div", { id: "explanation" }),
      ].filter(Boolean),
    );
    $("detail").hidden = false;
    if (state.mode === "server" && !item.error) explain(item);
  }

  async function imageBlob(item) {
    if (item.source.kind === "upload") return item.source.file;
    const url = `gallery/image?table=${encodeURIComponent(item.source.table)}&row=${item.source.row}`;
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${response.status}: cannot read the image`);
    return response.blob();
  }

  async function explain(item) {
    const box = $("explanation");
    box.replaceChildren(el("p", { class: "muted", text: "Explaining…" }));
    try {
      const form = new FormData();
      form.append("image", await imageBlob(item), item.name.split("/").pop() || "image");
      form.append("prompt", item.prompt);
      const exp = await fetchJSON("explain", { method: "POST", body: form });
      if ($("explanation") !== box) return; // another image was opened meanwhile
      box.replaceChildren(...explanationNodes(exp));
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", text: `No explanation: ${err.message}` }));
    }
  }

  function explanationNodes(exp) {
    const nodes = [el("h3", { text: "Explanation" })];
    if (exp.phrases && exp.phrases.length) {
      const weakest = new Set(exp.weakest_phrases || []);
      nodes.push(el("p", { class: "muted", text: `Alignment by phrase (${exp.phrase_dimension}, each phrase scored as the prompt):` }));
      nodes.push(
        el(
          "ul",
          { id: "phrases" },
          ...exp.phrases.map((p) =>
            el("li", { class: weakest.has(p.phrase) ? "weakest" : "" }, `${p.score.toFixed(2)} `, el("span", { class: `level level-${p.level}`, text: p.level }), ` ${p.phrase}`, weakest.has(p.phrase) ? " ← weakest" : ""),
          ),
        ),
      );
    }
    if (exp.worst_region) {
      const worst = (exp.regions || []).find((r) => r.name === exp.worst_region);
      const detail = worst ? ` (${worst.score.toFixed(2)}, ${worst.level})` : "";
      nodes.push(el("p", { id: "worst-region", text: `Worst region for ${exp.region_dimension}: ${exp.worst_region}${detail}` }));
    }
    if (exp.heatmap) nodes.push(el("img", { id: "heatmap", src: exp.heatmap, alt: `${exp.region_dimension} by region` }));
    for (const note of exp.notes || []) nodes.push(el("p", { class: "muted", text: note }));
    return nodes;
  }

  async function scoreUploads(event) {
    event.preventDefault();
    const files = Array.from($("files").files);
    const prompt = $("prompt").value;
    if (!files.length) return setStatus("choose one or more images first", true);
    $("score-button").disabled = true;
    try {
      for (let start = 0; start < files.length; start += UPLOAD_BATCH) {
        const batch = files.slice(start, start + UPLOAD_BATCH);
        setStatus(`scoring ${start + 1}–${start + batch.length} of ${files.length}…`);
        const form = new FormData();
        for (const file of batch) form.append("images", file, file.name);
        form.append("prompt", prompt);
        const scored = await fetchJSON("score", { method: "POST", body: form });
        const annotated = await fetchJSON("page/annotate", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ records: scored.results }),
        });
        scored.results.forEach((record, k) => {
          const merged = { ...record, ...annotated.records[k], prompt };
          state.items.push(makeItem(merged, URL.createObjectURL(batch[k]), { kind: "upload", file: batch[k] }));
        });
        render();
      }
      setStatus(`${state.items.length} images`);
    } catch (err) {
      setStatus(`scoring failed: ${err.message}`, true);
    } finally {
      $("score-button").disabled = false;
    }
  }

  async function openTable(event) {
    event.preventDefault();
    const name = $("table-select").value;
    if (!name) return;
    setStatus(`opening ${name}…`);
    try {
      const table = await fetchJSON(`gallery/table?name=${encodeURIComponent(name)}`);
      state.items = table.records.map((r) =>
        makeItem(r, `gallery/thumb?table=${encodeURIComponent(name)}&row=${r.row}`, { kind: "table", table: name, row: r.row }),
      );
      render();
      setStatus(`${name}: ${state.items.length} images`);
    } catch (err) {
      setStatus(`cannot open ${name}: ${err.message}`, true);
    }
  }

  async function setupServer() {
    state.model = await fetchJSON("page/model");
    $("inputs").hidden = false;
    $("upload-form").addEventListener("submit", scoreUploads);
    if (state.model.gallery) {
      const tables = await fetchJSON("gallery/tables");
      $("table-select").replaceChildren(...tables.tables.map((t) => el("option", { value: t, text: t })));
      $("table-form").hidden = false;
      $("table-form").addEventListener("submit", openTable);
    }
  }

  function setupReport(data) {
    state.mode = "report";
    state.model = data.model;
    state.items = data.items.map((r) => makeItem(r, r.thumbnail || null, { kind: "report" }));
    document.title = data.title;
  }

  async function init() {
    $("close-detail").addEventListener("click", () => ($("detail").hidden = true));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") $("detail").hidden = true;
    });
    const embedded = $("agiqa-data");
    try {
      if (embedded) setupReport(JSON.parse(embedded.textContent));
      else await setupServer();
    } catch (err) {
      setStatus(`cannot start: ${err.message}`, true);
      return;
    }
    $("model-name").textContent = state.model.model;
    const ref = state.model.reference_source ? `percentiles against ${state.model.reference_source}` : "no reference distribution: no percentiles";
    $("subtitle").textContent = `${state.mode === "report" ? "report" : "upload images or open a scored table"} · levels: ${state.model.levels.join(", ")} · ${ref}`;
    setupSort();
    render();
    if (state.mode === "report") setStatus(`${state.items.length} images`);
    document.body.dataset.ready = "true";
  }

  init();
})();
