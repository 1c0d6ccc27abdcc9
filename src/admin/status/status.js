// The status page: reads /v1/stats and /v1/history every 5 s and draws them. No library, no
// resource from elsewhere; text from the gateway goes in with textContent, never as HTML.
"use strict";

const REFRESH_MS = 5000;
const HOUR_MS = 3600 * 1000;
const SVG = "http://www.w3.org/2000/svg";

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function rate(n) { return bytes(n) + "/s"; }

function duration(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600);
  const m = Math.floor(secs % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
}

function ago(unixSecs) {
  if (!unixSecs) return "never";
  return duration(Math.max(0, Date.now() / 1000 - unixSecs)) + " ago";
}

function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + b, 0); }

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    if (c instanceof Node) { const td = el("td"); td.append(c); tr.append(td); }
    else if (typeof c === "object" && c !== null) tr.append(el("td", c.text, c.cls));
    else tr.append(el("td", String(c)));
  }
  return tr;
}

function ratio(a, b) { return b > 0 ? (a / b).toFixed(2) + "×" : "n/a"; }

function renderStats(s) {
  document.getElementById("summary").textContent =
    `version ${s.version} · up ${duration(s.uptime_secs)} · scheme ${s.scheme} ` +
    `(minimum/repair/success/total) · ${s.nodes.length} nodes`;

  const st = s.stored;
  const cards = [
    ["objects", st.objects.toLocaleString()],
    ["stored (plaintext)", bytes(st.plain_bytes)],
    ["on nodes", bytes(st.encoded_bytes)],
    ["expansion factor (kept)", ratio(st.encoded_bytes, st.plain_bytes)],
    ["expansion factor (uploaded, long tail included)", ratio(st.uploaded_bytes, st.plain_bytes)],
    ["long tail", st.uploaded_bytes > 0
      ? (100 * st.long_tail_bytes / st.uploaded_bytes).toFixed(1) + " % of uploads" : "n/a"],
    ["segments", st.segments.toLocaleString()],
    ["peak node connections", String(s.traffic.peak_connections)],
  ];
  const dl = document.getElementById("stored");
  dl.replaceChildren(...cards.map(([k, v]) => {
    const div = el("div");
    div.append(el("dt", k), el("dd", v));
    return div;
  }));

  const tbody = document.querySelector("#nodes tbody");
  tbody.replaceChildren(...s.nodes.map((n) => {
    const t = (s.traffic.nodes || {})[n.id] || {};
    let free = "-";
    if (n.free_bytes !== null && n.free_bytes !== undefined) {
      const span = el("span", bytes(n.free_bytes) +
        (n.total_bytes ? ` of ${bytes(n.total_bytes)} ` : " "));
      if (n.total_bytes) {
        const bar = el("span", undefined, "bar");
        bar.style.width = Math.round(60 * n.free_bytes / n.total_bytes) + "px";
        span.append(bar);
      }
      free = span;
    }
    const state = n.backoff_remaining_ms > 0
      ? `${n.state} ${(n.backoff_remaining_ms / 1000).toFixed(1)}s` : n.state;
    return row([
      n.id, n.kind, n.domain || "-",
      { text: state, cls: "state-" + n.state },
      { text: n.latency_ms == null ? "-" : n.latency_ms.toFixed(1) + " ms", cls: "num" },
      free instanceof Node ? free : { text: free, cls: "num" },
      { text: bytes(sum(t.sent_bytes)), cls: "num" },
      { text: bytes(sum(t.received_bytes)), cls: "num" },
      { text: String(t.requests_error || 0), cls: "num" },
      n.last_error || "",
    ]);
  }));

  const h = s.health;
  const seg = document.querySelector("#segments tbody");
  if (!h) { seg.replaceChildren(row(["n/a", "", ""])); return; }
  const total = h.segments.reduce((a, c) => a + c.segments, 0);
  seg.replaceChildren(...h.segments.map((c) => {
    let what = c.healthy >= h.full ? "full health" : "degraded";
    if (h.repair_threshold !== null && c.healthy <= h.repair_threshold) what = "queued for repair";
    const pct = total > 0 ? ` (${(100 * c.segments / total).toFixed(1)} %)` : "";
    return row([`${c.healthy} of ${h.full}`, { text: c.segments + pct, cls: "num" }, what]);
  }));
  if (h.segments.length === 0) seg.replaceChildren(row(["no erasure-coded segments yet", "", ""]));
  const notOk = h.pieces_not_ok.map((p) => `${p.pieces} ${p.state} on ${p.node}`).join(", ");
  const r = h.repair;
  document.getElementById("repair").textContent =
    (h.repair_threshold === null ? "Background repair: off. " : "Repair: ") +
    `${r.segments} segments repaired (${r.pieces} pieces, ${bytes(r.bytes)}), ` +
    `${r.failed} failed, ${r.pending} pending, ${r.passes} passes, last ${ago(r.last_pass_secs)}` +
    (notOk ? `. Pieces not ok: ${notOk}.` : ".");
  const a = h.audit;
  document.getElementById("audit").textContent = a
    ? `Audit (every ${duration(a.interval_secs)}): ${a.pieces_listed.toLocaleString()} pieces ` +
      `checked against listings, ${a.pieces_sampled.toLocaleString()} sampled ` +
      `(${bytes(a.bytes_verified)} verified); found ${a.missing} missing, ${a.corrupt} corrupt; ` +
      `${a.passes} passes, last ${ago(a.last_pass_secs)}.`
    : "Audit: off.";
  const rep = s.replication;
  document.getElementById("replication").textContent = rep
    ? `Metadata on the nodes (${rep.mode}): change ${rep.shipped_seq} of ${rep.last_seq} shipped` +
      `, snapshot ${rep.snapshot}, ${rep.batches_since_snapshot} batches since.`
    : "";
}

// Rates between consecutive samples of columns `a` and `b`: [[t, rate_a, rate_b], ...].
function rates(samples, a, b) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i][0] - samples[i - 1][0]) / 1000;
    if (dt <= 0) continue;
    out.push([samples[i][0],
      Math.max(0, samples[i][a] - samples[i - 1][a]) / dt,
      Math.max(0, samples[i][b] - samples[i - 1][b]) / dt]);
  }
  return out;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function span(ms) {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

// Draws two series into `plot` (viewBox 720×180) as steps (each rate held over its interval,
// with a light fill), over the last hour or, for a younger gateway, since the first sample
// (at least a minute). The y axis runs from 0 to the largest rate seen. data-samples and
// data-max say what was drawn.
function draw(plot, points, first, now) {
  const W = 720, H = 180, L = 70, R = 12, T = 10, B = 22;
  const width = Math.min(HOUR_MS, Math.max(60000, now - first));
  const shown = points.filter((p) => now - p[0] <= width);
  const max = Math.max(1, ...shown.map((p) => Math.max(p[1], p[2])));
  const x = (t) => L + (W - L - R) * (1 - (now - t) / width);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const parts = [];
  for (const f of [0, 0.5, 1]) {
    parts.push(svg("line", { x1: L, x2: W - R, y1: y(max * f), y2: y(max * f), class: "grid" }));
    parts.push(svg("text", { x: L - 4, y: y(max * f) + 4, "text-anchor": "end" }, rate(max * f)));
  }
  for (const [f, anchor] of [[1, "start"], [0.5, "middle"], [0, "end"]]) {
    const label = f === 0 ? "now" : "-" + span(width * f);
    parts.push(svg("text", { x: x(now - width * f), y: H - 6, "text-anchor": anchor }, label));
  }
  for (const [col, cls] of [[1, "up"], [2, "down"]]) {
    const steps = [];
    let prev = null;
    for (const p of shown) {
      const from = prev === null ? p[0] - 5000 : prev;
      steps.push(`${x(Math.max(from, now - width)).toFixed(1)},${y(p[col]).toFixed(1)}`);
      steps.push(`${x(p[0]).toFixed(1)},${y(p[col]).toFixed(1)}`);
      prev = p[0];
    }
    if (steps.length) {
      const base = `${steps[steps.length - 1].split(",")[0]},${y(0)} ${steps[0].split(",")[0]},${y(0)}`;
      parts.push(svg("polygon", { points: steps.join(" ") + " " + base, class: cls + " area" }));
    }
    parts.push(svg("polyline", { points: steps.join(" "), class: cls }));
  }
  plot.replaceChildren(...parts);
  plot.dataset.samples = String(shown.length);
  plot.dataset.max = String(Math.round(Math.max(0, ...shown.map((p) => Math.max(p[1], p[2])))));
}

function renderHistory(h) {
  const now = h.samples.length ? h.samples[h.samples.length - 1][0] : Date.now();
  const first = h.samples.length ? h.samples[0][0] : now;
  draw(document.getElementById("plot-nodes"), rates(h.samples, 1, 2), first, now);
  draw(document.getElementById("plot-clients"), rates(h.samples, 3, 4), first, now);
}

async function refresh() {
  const error = document.getElementById("error");
  try {
    const [stats, history] = await Promise.all([
      fetch("/v1/stats").then((r) => { if (!r.ok) throw new Error("/v1/stats: " + r.status); return r.json(); }),
      fetch("/v1/history").then((r) => { if (!r.ok) throw new Error("/v1/history: " + r.status); return r.json(); }),
    ]);
    renderStats(stats);
    renderHistory(history);
    error.hidden = true;
    document.body.dataset.updated = String(Date.now());
  } catch (e) {
    error.textContent = "cannot reach the gateway: " + e.message;
    error.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
