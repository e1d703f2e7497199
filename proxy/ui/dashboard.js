// guardproxy live dashboard: polls ui/api/snapshot, keeps a small ring of samples, draws SVG by hand.
// Every text from the server is set with textContent (never innerHTML): excerpts are model output.
"use strict";

(function () {
  const POLL_MS = 1000;
  const WINDOW_S = 300;          // charts show the last 5 minutes (the last minute while younger)
  const BINS = 30;               // bars per chart: 2 s bins over the last minute, 10 s over 5 minutes
  const RATE_WINDOW_S = 10;      // "requests / s now" is averaged over 10 s
  const MAX_SAMPLES = 420;
  const OUTCOMES = ["pass", "repaired", "reasked", "fallback", "redacted", "flagged", "streaming", "rejected", "error"];
  const OUTCOME_COLORS = {
    pass: "#1f9d55", repaired: "#2f6fde", reasked: "#7c5ce0", fallback: "#e08a00", redacted: "#d4469b",
    flagged: "#f2b600", streaming: "#17a2b8", rejected: "#d64545", error: "#5d6778",
  };
  const PALETTE = ["#2f6fde", "#1f9d55", "#e08a00", "#7c5ce0", "#d4469b", "#17a2b8", "#d64545", "#8a6d3b"];
  const SVGNS = "http://www.w3.org/2000/svg";
  const NO_ALIAS = "(no alias)";
  const NO_ALIAS_TITLE = "requests refused before a model alias was resolved: 400, 401, 404, 413…";
  const samples = [];            // {ts, byAlias: {alias: total}, byOutcome: {outcome: total}}

  // ---- small helpers ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "style") Object.assign(node.style, v); else node.setAttribute(k, v);
    }
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const fmtInt = (n) => Math.round(n || 0).toLocaleString("en-US");
  const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
  const fmtPct = (x) => (x === null || x === undefined || !isFinite(x) ? "–" : (100 * x).toFixed(1) + "%");
  function fmtSec(s) {
    if (s === null || s === undefined) return "–";
    if (s < 0.01) return (s * 1000).toFixed(1) + " ms";
    if (s < 1) return (s * 1000).toFixed(0) + " ms";
    return s.toFixed(2) + " s";
  }
  function fmtTime(ts) {
    if (typeof ts !== "number") return String(ts || "");
    return new Date(ts * 1000).toLocaleTimeString("en-GB", { hour12: false });
  }
  const sum = (obj) => Object.values(obj || {}).reduce((a, b) => a + b, 0);
  function setKpi(id, value, sub) {
    const card = document.getElementById(id);
    card.querySelector("[data-value]").textContent = value;
    card.querySelector("[data-sub]").textContent = sub || "";
  }
  function rows(tableId, list, emptyText, columns) {
    const body = document.querySelector("#" + tableId + " tbody");
    if (!list.length) {
      body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, emptyText)));
      return;
    }
    body.replaceChildren(...list);
  }
  function outcomeOrder(keys) {
    const extra = keys.filter((k) => !OUTCOMES.includes(k)).sort();
    return OUTCOMES.concat(extra);
  }
  const colorOf = (outcome) => OUTCOME_COLORS[outcome] || "#999";

  // ---- authentication: the admin key travels in the URL of the page, and as a header on the polls ---
  function authHeaders() {
    const key = new URLSearchParams(location.search).get("key");
    return key ? { Authorization: "Bearer " + key } : {};
  }

  // ---- rates from the ring of samples -----------------------------------------------------------
  function record(snap) {
    const byAlias = {}, byOutcome = {};
    for (const r of snap.requests) {
      byAlias[r.alias] = (byAlias[r.alias] || 0) + r.count;
      byOutcome[r.outcome] = (byOutcome[r.outcome] || 0) + r.count;
    }
    samples.push({ ts: snap.ts, total: snap.requests_total, byAlias, byOutcome });
    while (samples.length > MAX_SAMPLES || (samples.length && samples[0].ts < snap.ts - WINDOW_S - 30)) {
      samples.shift();
    }
  }
  const delta = (now, before) => Math.max(0, (now || 0) - (before || 0)); // a restart resets counters
  function rateOver(seconds, pick) {
    if (samples.length < 2) return null;
    const last = samples[samples.length - 1];
    let first = samples[0];
    for (const s of samples) { if (s.ts >= last.ts - seconds) { first = s; break; } }
    if (first === last) first = samples[samples.length - 2];
    const dt = last.ts - first.ts;
    return dt > 0 ? delta(pick(last), pick(first)) / dt : null;
  }

  // ---- charts -------------------------------------------------------------------------------------
  const W = 640, H = 190, ML = 46, MR = 10, MT = 10, MB = 22;
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function span() {
    return samples.length && samples[samples.length - 1].ts - samples[0].ts > 55 ? WINDOW_S : 60;
  }
  const binSeconds = () => span() / BINS;
  function frame(root, now, yMax, yFmt) {
    const win = span(), tick = win > 60 ? 60 : 10;
    for (const note of document.querySelectorAll("[data-window]")) {
      note.textContent = win > 60 ? "· last 5 min" : "· last minute";
    }
    for (const note of document.querySelectorAll("[data-bin]")) note.textContent = "· requests per " + win / BINS + " s";
    const x = (t) => ML + ((t - (now - win)) / win) * (W - ML - MR);
    const y = (v) => H - MB - (v / yMax) * (H - MT - MB);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4;
      root.append(svg("line", { class: "grid", x1: ML, x2: W - MR, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "axis", x: ML - 6, y: y(v) + 3, "text-anchor": "end" }, yFmt(v)));
    }
    for (let m = 0; m * tick <= win; m++) {
      const label = m === 0 ? "now" : tick === 60 ? "-" + m + "m" : "-" + m * tick + "s";
      root.append(svg("text", { class: "axis", x: x(now - m * tick), y: H - 6,
        "text-anchor": m === 0 ? "end" : m * tick === win ? "start" : "middle" }, label));
    }
    return { x, y, win };
  }
  function emptyNote(root, text) {
    root.append(svg("text", { class: "empty", x: (W + ML) / 2, y: H / 2, "text-anchor": "middle" }, text));
  }

  // [binStart, count, seconds covered] per bin, from the deltas between successive samples
  function binned(count) {
    const bins = new Map(), size = binSeconds();
    for (let j = 1; j < samples.length; j++) {
      const a = samples[j - 1], b = samples[j];
      const bin = Math.floor(b.ts / size) * size;
      const row = bins.get(bin) || [bin, 0, 0];
      row[1] += count(a, b);
      row[2] += b.ts - a.ts;
      bins.set(bin, row);
    }
    return Array.from(bins.values()).filter((row) => row[2] > 0);
  }

  function drawRateChart(snap) {
    const box = document.getElementById("chart-rate");
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "requests per second" });
    const aliases = Array.from(new Set(samples.flatMap((s) => Object.keys(s.byAlias)))).sort();
    const series = aliases.map((alias, i) => {
      const points = binned((a, b) => delta(b.byAlias[alias], a.byAlias[alias]))
        .filter(([bin]) => bin >= snap.ts - span()).map(([bin, n, seconds]) => [bin + binSeconds() / 2, n / seconds]);
      return { name: alias || NO_ALIAS, color: PALETTE[i % PALETTE.length], points };
    });
    const peak = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
    const { x, y } = frame(root, snap.ts, niceMax(peak), (v) => String(+v.toFixed(2)));
    if (!series.some((s) => s.points.length)) emptyNote(root, "waiting for a second sample…");
    for (const s of series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join("");
      root.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 2, "stroke-linejoin": "round" }));
      const [lt, lv] = s.points[s.points.length - 1];
      root.append(svg("circle", { cx: x(lt), cy: y(lv), r: 3, fill: s.color }));
    }
    box.replaceChildren(root);
    document.getElementById("legend-rate").replaceChildren(...series.map((s) => el("span", { class: "item" },
      el("span", { class: "swatch", style: { background: s.color } }), s.name)));
  }

  function drawOutcomeChart(snap) {
    const box = document.getElementById("chart-outcomes");
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "outcomes over time" });
    const bins = new Map(), size = binSeconds();
    for (let j = 1; j < samples.length; j++) {
      const a = samples[j - 1], b = samples[j];
      const bin = Math.floor(b.ts / size) * size;
      if (bin < snap.ts - span()) continue;
      const counts = bins.get(bin) || {};
      for (const o of Object.keys(b.byOutcome)) counts[o] = (counts[o] || 0) + delta(b.byOutcome[o], a.byOutcome[o]);
      bins.set(bin, counts);
    }
    const order = outcomeOrder(Object.keys(snap.outcomes));
    const peak = Math.max(0, ...Array.from(bins.values()).map(sum));
    const yMax = niceMax(Math.max(peak, 1));
    const { x, y, win } = frame(root, snap.ts, yMax, (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
    const barW = Math.max(1, ((W - ML - MR) * size) / win - 1.5);
    for (const [bin, counts] of bins) {
      let base = 0;
      for (const o of order) {
        const n = counts[o] || 0;
        if (!n) continue;
        root.append(svg("rect", { x: x(bin), y: y(base + n), width: Math.max(1, Math.min(barW, W - MR - x(bin))),
          height: y(base) - y(base + n), fill: colorOf(o) }));
        base += n;
      }
    }
    if (!peak) emptyNote(root, samples.length < 2 ? "waiting for a second sample…" : "no requests in the window");
    box.replaceChildren(root);
    const present = order.filter((o) => snap.outcomes[o] !== undefined);
    document.getElementById("legend-outcomes").replaceChildren(...present.map((o) => el("span", { class: "item" },
      el("span", { class: "swatch", style: { background: colorOf(o) } }), o + " ",
      el("b", { id: "outcome-total-" + o, "data-outcome": o }, fmtInt(snap.outcomes[o])))));
  }

  // ---- tables ---------------------------------------------------------------------------------------
  function stackBar(counts, order) {
    const total = sum(counts);
    const bar = el("div", { class: "stack", title: order.filter((o) => counts[o]).map((o) => o + " " + counts[o])
      .join(", ") });
    for (const o of order) {
      if (counts[o]) bar.append(el("span", { style: { width: (100 * counts[o]) / total + "%", background: colorOf(o) } }));
    }
    return bar;
  }

  function drawAliases(snap) {
    const perAlias = {};
    for (const r of snap.requests) {
      const a = (perAlias[r.alias] = perAlias[r.alias] || { total: 0, errors: 0, outcomes: {} });
      a.total += r.count;
      if (!r.status.startsWith("2")) a.errors += r.count;
      a.outcomes[r.outcome] = (a.outcomes[r.outcome] || 0) + r.count;
    }
    const names = Array.from(new Set([...snap.aliases_configured, ...Object.keys(perAlias)])).sort();
    const order = outcomeOrder(Object.keys(snap.outcomes));
    rows("table-aliases", names.map((alias) => {
      const a = perAlias[alias] || { total: 0, errors: 0, outcomes: {} };
      const lat = snap.latency[alias] || {};
      const rate = rateOver(RATE_WINDOW_S, (s) => s.byAlias[alias]);
      return el("tr", { "data-alias": alias },
        el("td", { class: "mono", title: alias ? "" : NO_ALIAS_TITLE }, alias || NO_ALIAS),
        el("td", { class: "num", "data-col": "requests" }, fmtInt(a.total)),
        el("td", { class: "num" }, rate === null ? "–" : fmtRate(rate)),
        el("td", { class: "num" }, fmtSec(lat.p50)), el("td", { class: "num" }, fmtSec(lat.p95)),
        el("td", { class: "num" }, fmtSec(lat.p99)),
        el("td", { class: "num" }, a.total ? fmtPct(a.errors / a.total) : "–"),
        el("td", {}, stackBar(a.outcomes, order)));
    }), "no aliases configured", 8);
  }

  function drawViolations(snap) {
    const top = snap.violations.slice(0, 10);
    const peak = Math.max(1, ...top.map((v) => v.count));
    rows("table-violations", top.map((v) => el("tr", {},
      el("td", { class: "mono" }, v.policy), el("td", { class: "mono" }, v.validator),
      el("td", { class: "num" }, fmtInt(v.count)),
      el("td", {}, el("div", { class: "hbar", style: { width: (100 * v.count) / peak + "%" } })))),
    "no violations yet", 4);
    chips("repairs", Object.entries(snap.repairs).sort((a, b) => b[1] - a[1]), "none yet", "repair-");
    const steps = {};
    for (const s of snap.steps) steps[s.step] = (steps[s.step] || 0) + s.count;
    chips("steps", Object.entries(steps).sort((a, b) => b[1] - a[1]), "none yet", "step-");
  }

  function chips(id, entries, emptyText, prefix) {
    const box = document.getElementById(id);
    if (!entries.length) { box.replaceChildren(el("span", { class: "muted" }, emptyText)); return; }
    box.replaceChildren(...entries.map(([name, n]) => el("span", { class: "chip" }, name + " ",
      el("b", { id: prefix + name }, typeof n === "number" ? fmtInt(n) : n))));
  }

  function drawDeployments(snap) {
    const names = Object.keys(snap.deployments).sort();
    rows("table-deployments", names.map((name) => {
      const d = snap.deployments[name];
      const reasons = Object.entries(d.retry_reasons).map(([k, v]) => k + " " + v).join(", ");
      return el("tr", { "data-deployment": name },
        el("td", { class: "mono", title: Object.entries(d.results).map(([k, v]) => k + " " + v).join(", ") }, name),
        el("td", { class: "num" }, fmtInt(d.calls)),
        el("td", { class: "num" }, d.calls ? fmtPct(d.errors / d.calls) : "–"),
        el("td", { class: "num", title: reasons }, fmtInt(d.retries)),
        el("td", {}, el("span", { class: "badge " + (d.cooling ? "badge-cool" : "badge-ok") },
          d.cooling ? "cooling down" : "ok")));
    }), "no upstream calls yet", 5);
    const cache = snap.cache.results;
    const order = ["hit", "miss", "refresh", "bypass", "store", "error"];
    const names2 = order.filter((k) => k in cache).concat(Object.keys(cache).filter((k) => !order.includes(k)));
    chips("cache", names2.map((k) => [k, cache[k]]).concat([["hit ratio", fmtPct(snap.cache.hit_ratio)],
      ["tokens saved", fmtInt(snap.tokens.saved)]]), "no cache lookups yet", "cache-");
  }

  function drawRecent(snap) {
    const list = snap.recent.map((e) => el("tr", { "data-request-id": e.request_id },
      el("td", { class: "num" }, e.ts === null ? "" : fmtTime(e.ts)),
      el("td", { class: "mono" }, e.request_id),
      el("td", {}, el("span", { class: "badge " + (e.kind === "rejection" ? "badge-reject" : "badge-ev") },
        e.kind || "event")),
      el("td", { class: "mono" }, e.policy),
      el("td", { class: "mono", title: [e.message, e.path].filter(Boolean).join(" at ") },
        e.validator || e.repairs.join(", ")),
      el("td", { class: "mono" }, e.deployment),
      el("td", { class: "excerpt" }, e.excerpt)));
    rows("table-recent", list, snap.audit_log ? "no events in the audit log yet" : "no audit log file yet", 7);
  }

  function drawKpis(snap) {
    const total = snap.requests_total;
    setKpi("kpi-requests", fmtInt(total), "since start");
    const rate = rateOver(RATE_WINDOW_S, (s) => s.total);
    setKpi("kpi-rate", rate === null ? "–" : fmtRate(rate), "all aliases");
    const guarded = ["repaired", "reasked", "fallback", "redacted"].reduce((n, o) => n + (snap.outcomes[o] || 0), 0);
    setKpi("kpi-guarded", fmtInt(guarded), total ? fmtPct(guarded / total) + " of requests · "
      + fmtInt(snap.outcomes.flagged || 0) + " flagged" : "");
    const rejected = snap.outcomes.rejected || 0;
    setKpi("kpi-rejected", fmtInt(rejected), total ? fmtPct(rejected / total) + " of requests" : "");
    const c = snap.cache.results;
    setKpi("kpi-cache", fmtPct(snap.cache.hit_ratio),
      fmtInt(c.hit || 0) + " hits / " + fmtInt((c.hit || 0) + (c.miss || 0)) + " lookups");
    setKpi("kpi-tokens", fmtInt(snap.tokens.spent),
      snap.tokens.cost_usd ? "$" + snap.tokens.cost_usd.toFixed(4) + " · all attempts" : "all attempts");
    setKpi("kpi-saved", fmtInt(snap.tokens.saved), "not spent thanks to cache hits");
    setKpi("kpi-inflight", fmtInt(snap.in_flight), "requests being served");
  }

  // ---- the poll loop --------------------------------------------------------------------------------
  function setStatus(kind, text) {
    const pill = document.getElementById("status");
    pill.className = "pill pill-" + kind;
    pill.textContent = text;
  }
  function banner(text) {
    const box = document.getElementById("banner");
    box.hidden = !text;
    box.textContent = text || "";
  }

  async function poll() {
    if (document.hidden) return;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 5000);
    try {
      const res = await fetch("ui/api/snapshot", { headers: authHeaders(), cache: "no-store",
        signal: controller.signal });
      if (res.status === 401 || res.status === 403) {
        setStatus("bad", "HTTP " + res.status);
        banner("The dashboard needs an admin key (admin: true in config.yaml): open /ui?key=YOUR_KEY.");
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const snap = await res.json();
      record(snap);
      drawKpis(snap); drawRateChart(snap); drawOutcomeChart(snap); drawAliases(snap);
      drawViolations(snap); drawDeployments(snap); drawRecent(snap);
      banner("");
      setStatus("ok", "live");
      document.getElementById("updated").textContent = "updated " + fmtTime(snap.ts);
      document.body.dataset.snapshots = String(Number(document.body.dataset.snapshots || 0) + 1);
    } catch (err) {
      setStatus("bad", "disconnected");
      banner("Cannot reach guardproxy (" + (err && err.message ? err.message : "error") + "); retrying.");
    } finally {
      clearTimeout(timer);
    }
  }

  async function loop() {
    await poll();
    setTimeout(loop, POLL_MS);
  }
  const pageKey = new URLSearchParams(location.search).get("key");  // the review queue needs it too
  if (pageKey) document.getElementById("to-review").href = "ui/review?key=" + encodeURIComponent(pageKey);
  loop();
})();
