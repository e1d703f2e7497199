// guardproxy review queue: reads /ui/api/review, posts verdicts to /v1/feedback. No framework; every
// value from the server goes in with textContent (never as HTML).
(function () {
  "use strict";
  const key = new URLSearchParams(location.search).get("key");
  const auth = () => (key ? { Authorization: "Bearer " + key } : {});
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
  const when = (ts) => new Date(ts * 1000).toLocaleString();

  function banner(text) {
    $("banner").hidden = !text;
    $("banner").textContent = text || "";
  }
  function setStatus(kind, text) {
    $("status").className = "pill pill-" + kind;
    $("status").textContent = text;
  }

  function showOutput(output) {
    if (!output) return "(none)";
    const parts = [];
    if (output.content !== null && output.content !== undefined) parts.push(output.content);
    for (const call of output.tool_calls || []) {
      const fn = call.function || {};
      parts.push("tool " + fn.name + "(" + (typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments)) + ")");
    }
    return parts.join("\n") || "(empty)";
  }
  function showRequest(request) {
    const lines = (request.messages || []).map((m) => {
      const c = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
      return m.role + ": " + c;
    });
    if (request.response_format) lines.push("response_format: " + JSON.stringify(request.response_format));
    if (request.tools) lines.push("tools: " + request.tools.length);
    return lines.join("\n");
  }

  function rates(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows.map((r) =>
      el("tr", { "data-name": r.name },
        el("td", {}, r.name || "–"),
        el("td", { class: "num" }, String(r.recorded)),
        el("td", { class: "num" }, String(r.rated)),
        el("td", { class: "num" }, String(r.bad)),
        el("td", { class: "num", "data-col": "bad-rate" }, pct(r.bad_rate)))));
  }

  function options(id, names) {
    const select = $(id), current = select.value;
    select.replaceChildren(el("option", { value: "" }, "all"), ...names.map((n) => el("option", { value: n }, n)));
    select.value = names.includes(current) ? current : "";
  }

  async function send(item, score, correctionBox, note) {
    const body = { request_id: item.id, score: score };
    const text = correctionBox.value.trim();
    if (text) {
      try { body.correction = JSON.parse(text); } catch (e) { body.correction = text; }
    }
    note.textContent = "saving…";
    const res = await fetch("../v1/feedback", {
      method: "POST", headers: { ...auth(), "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (!res.ok) {
      note.textContent = "failed: HTTP " + res.status;
      return;
    }
    note.textContent = "saved: " + (score > 0 ? "good" : "bad");
    await load();
  }

  function card(item) {
    const verdicts = (item.feedback || []).map((f) => el("span", { class: "tag tag-" + f.verdict, "data-verdict": f.verdict },
      f.verdict + (f.key_name ? " · " + f.key_name : "")));
    const box = el("textarea", { placeholder: "expected output (optional: text or JSON)", class: "correction" });
    const mine = (item.feedback || []).find((f) => f.correction !== null && f.correction !== undefined);
    if (mine) box.value = typeof mine.correction === "string" ? mine.correction : JSON.stringify(mine.correction);
    const note = el("span", { class: "saved" });
    const good = el("button", { class: "good", type: "button" }, "Good");
    const bad = el("button", { class: "bad", type: "button" }, "Bad");
    good.addEventListener("click", () => send(item, 1, box, note));
    bad.addEventListener("click", () => send(item, -1, box, note));
    const violations = el("ul", { class: "violations" },
      ...(item.violations || []).map((v) => el("li", {}, v.validator + (v.path ? " at " + v.path : "") + ": " + v.message)));
    return el("article", { class: "item", "data-id": item.id, "data-outcome": item.outcome },
      el("div", { class: "item-head" },
        el("span", { class: "tag tag-" + item.outcome }, item.outcome),
        el("strong", {}, item.alias), el("span", { class: "muted" }, "policy " + item.policy),
        el("span", { class: "muted" }, item.deployment), el("span", { class: "muted" }, when(item.created)),
        el("code", {}, item.id), ...verdicts),
      el("div", { class: "sides" },
        el("div", {}, el("h4", {}, "request (redacted)"), el("pre", { class: "request" }, showRequest(item.request || {}))),
        el("div", {}, el("h4", {}, "raw output"), el("pre", { class: "raw" }, showOutput(item.raw_output))),
        el("div", {}, el("h4", {}, "final output"), el("pre", { class: "final" },
          item.final_output ? showOutput(item.final_output) : "(rejected: 422)"))),
      violations,
      el("div", { class: "actions" }, box, good, bad, note));
  }

  async function load() {
    const params = new URLSearchParams();
    if ($("filter-alias").value) params.set("alias", $("filter-alias").value);
    if ($("filter-policy").value) params.set("policy", $("filter-policy").value);
    try {
      const res = await fetch("api/review?" + params, { headers: auth(), cache: "no-store" });
      if (res.status === 401 || res.status === 403) {
        setStatus("bad", "HTTP " + res.status);
        banner("The review queue needs an admin key (admin: true in config.yaml): open /ui/review?key=YOUR_KEY.");
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      rates("rates-alias", data.rates.alias);
      rates("rates-policy", data.rates.policy);
      rates("rates-deployment", data.rates.deployment);
      options("filter-alias", data.aliases);
      options("filter-policy", data.policies);
      $("queue").replaceChildren(...data.items.map(card));
      $("count").textContent = data.items.length + " to review · recording: " + data.record;
      banner(data.record === "none" ? "Nothing is recorded (record: none in config.yaml)." : "");
      setStatus("ok", "loaded");
      document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
    } catch (err) {
      setStatus("bad", "error");
      banner("Cannot load the queue (" + (err && err.message ? err.message : "error") + ").");
    }
  }
  $("filter-alias").addEventListener("change", load);
  $("filter-policy").addEventListener("change", load);
  if (key) $("to-dashboard").href = "../ui?key=" + encodeURIComponent(key);
  load();
})();
