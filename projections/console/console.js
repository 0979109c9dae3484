// The Switchboard console: finds messages and recipients, draws the funnel, latencies and live throughput.
// Plain browser JavaScript, no build step, no third-party code; every value is put on the page as text.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const FUNNEL_STAGES = ["requested", "accepted", "sent", "delivered", "read", "failed", "fell_back", "suppressed",
                       "deferred", "expired", "dead_lettered"];
const FAILURES = new Set(["failed", "dead_lettered", "expired", "suppressed"]);
// A message's statuses in pipeline order: steps recorded in the same instant are shown in this order.
const ORDER = ["requested", "deferred", "rendered", "routed", "dispatching", "failed", "error", "retry_scheduled",
               "falling_back", "accepted", "sent", "delivered", "read", "suppressed", "expired", "dead_lettered"];
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    if (response.status === 401) notice("Your console session has ended: open a new console URL from `switchboard api`.");
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return body;
}

// --- the session: the one-time token travels in the URL's fragment (never sent to a server), traded once for a cookie
async function openSession() {
  const found = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (found) {
    history.replaceState(null, "", location.pathname + location.search);  // the token leaves the address bar
    const response = await fetch("/console/session", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: found[1] }) });
    if (!response.ok) {
      notice("This console link was used already or has expired: restart `switchboard api` for a new one.");
      return null;
    }
    return (await response.json()).tenant;
  }
  const response = await fetch("/console/session", { credentials: "same-origin" });
  if (!response.ok) {
    notice("No console session: open the console URL that `switchboard api --console-tenant TENANT` prints.");
    return null;
  }
  return (await response.json()).tenant;
}

// --- formatting
function formatMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

function instant(iso) {
  // Milliseconds since the epoch; the projection keeps microseconds, which Date does not promise to read.
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
}

function clock(iso) {
  const at = new Date(instant(iso));
  return Number.isNaN(at.getTime()) ? iso : at.toISOString().slice(11, 23) + " UTC";
}

function isoDay(date) { return date.toISOString().slice(0, 10); }

// --- a message: its summary and timeline
function timelineOf(row) {
  const steps = Object.entries(row.times || {}).map(([status, at]) => ({ status, at, failure: FAILURES.has(status) }));
  for (const error of row.errors || []) {
    steps.push({ status: `error ${error.code || ""}`.trim(), at: error.at, failure: true,
                 detail: [error.class, error.detail, error.attempt ? `attempt ${error.attempt}` : ""]
                   .filter(Boolean).join(" · ") });
  }
  const rank = (step) => ORDER.indexOf(step.status.split(" ")[0]);
  steps.sort((a, b) => instant(a.at) - instant(b.at) || rank(a) - rank(b));
  return steps;
}

function showMessage(row) {
  const result = $("result");
  result.replaceChildren();
  const facts = [["message", row.message_id], ["status", el("span", { class: `badge ${row.status}` }, row.status)],
    ["template", row.template || "–"], ["category", row.category || "–"],
    ["channels", (row.channels || []).join(" → ") || "–"], ["sender", row.sender || "–"],
    ["attempts", row.attempts], ["provider ids", (row.provider_message_ids || []).join(", ") || "–"],
    ["contact", row.contact_id || "–"]];
  if (row.reason) facts.push(["reason", row.reason]);
  const summary = el("dl", { class: "summary" });
  for (const [name, value] of facts) summary.append(el("dt", {}, name), el("dd", {}, value));
  const steps = timelineOf(row);
  const start = steps.length ? instant(steps[0].at) : 0;
  const list = el("ol", { class: "timeline", id: "timeline" });
  for (const step of steps) {
    const item = el("li", { class: step.failure ? "failure" : "", "data-status": step.status },
      el("time", { datetime: step.at }, clock(step.at)), el("span", { class: "status" }, step.status),
      el("span", { class: "delta" }, `+${formatMs(instant(step.at) - start)}`));
    if (step.detail) item.append(el("span", { class: "detail" }, step.detail));
    list.append(item);
  }
  result.append(summary, el("h3", {}, "Timeline"), list);
}

function showRecipient(contact, rows) {
  const result = $("result");
  const body = el("tbody");
  for (const row of rows) {
    const link = el("a", { role: "button", tabindex: "0" }, row.message_id);
    link.addEventListener("click", () => showMessage(row));
    body.append(el("tr", {}, el("td", { class: "id" }, link), el("td", {}, row.template || "–"),
      el("td", {}, (row.channels || []).join(" → ")), el("td", {}, el("span", { class: `badge ${row.status}` },
        row.status)), el("td", {}, clock((row.times || {}).requested || ""))));
  }
  result.replaceChildren(el("p", {}, `${rows.length} message(s) for contact `, el("code", {}, contact),
    ", newest first:"), el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "message"), el("th", {}, "template"),
    el("th", {}, "channels"), el("th", {}, "status"), el("th", {}, "requested"))), body));
}

async function find(event) {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const id = encodeURIComponent(query);
  $("result").replaceChildren(el("p", { class: "muted" }, "looking…"));
  try {
    showMessage(await api(`/v1/messages/${id}`));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) return showFailure(error);
    try {
      const found = await api(`/v1/recipients/${id}/messages?limit=100`);
      showRecipient(found.contact_id, found.messages);
    } catch (again) {
      showFailure(again.status === 404 ? new Error(`No message or recipient ${query}.`) : again);
    }
  }
}

function showFailure(error) {
  $("result").replaceChildren(el("p", { class: "error" }, error.message));
}

// --- charts
function drawFunnel(funnel) {
  const chart = $("funnel");
  chart.replaceChildren();
  const counts = funnel.total.counts;
  const stages = FUNNEL_STAGES.filter((stage) => counts[stage]);
  if (!stages.length) {
    chart.append(svg("text", { x: 10, y: 30 }, `no messages from ${funnel.from} to ${funnel.to}`));
    return;
  }
  const most = Math.max(...stages.map((stage) => counts[stage]));
  const rowHeight = Math.min(40, 230 / stages.length);
  chart.setAttribute("viewBox", `0 0 560 ${Math.ceil(20 + stages.length * rowHeight)}`);
  stages.forEach((stage, index) => {
    const y = 10 + index * rowHeight;
    const width = Math.max(2, (counts[stage] / most) * 330);
    const share = counts.requested ? ` (${Math.round((counts[stage] / counts.requested) * 100)}%)` : "";
    chart.append(svg("text", { x: 100, y: y + rowHeight * 0.62, "text-anchor": "end" }, stage),
      svg("rect", { class: `bar ${stage}`, x: 110, y, width, height: rowHeight * 0.72, rx: 2 }),
      svg("text", { class: "rate", x: 116 + width, y: y + rowHeight * 0.62 }, `${counts[stage]}${share}`));
  });
}

function markAt(value, bounds) {
  // The x position (in buckets) of a latency: linear inside its bucket, as the API's estimate is.
  let lower = 0;
  for (let index = 0; index < bounds.length; index += 1) {
    if (value <= bounds[index]) return index + (value - lower) / (bounds[index] - lower);
    lower = bounds[index];
  }
  return bounds.length;
}

function drawSpan(name, span, bounds) {
  const figure = svg("svg", { class: "chart", viewBox: "0 0 560 120", role: "img", "aria-label": name });
  const buckets = span.counts.length;
  const most = Math.max(1, ...span.counts);
  const step = 520 / buckets;
  figure.append(svg("text", { x: 0, y: 12 }, `${name.replaceAll("_", " ")}: ${span.count} message(s)  ` +
    `p50 ${formatMs(span.p50)} · p90 ${formatMs(span.p90)} · p99 ${formatMs(span.p99)}`));
  span.counts.forEach((count, index) => {
    const height = (count / most) * 70;
    figure.append(svg("rect", { class: "bar", x: 20 + index * step + 1, y: 90 - height, width: step - 2, height }));
    const label = index < bounds.length ? formatMs(bounds[index]) : `>${formatMs(bounds[bounds.length - 1])}`;
    if (index % 2 === 0 || index === buckets - 1) {
      figure.append(svg("text", { x: 20 + (index + 1) * step, y: 108, "text-anchor": "middle" }, label));
    }
  });
  ["p50", "p90", "p99"].forEach((quantile, index) => {
    if (span[quantile] === null) return;
    const x = 20 + markAt(span[quantile], bounds) * step;
    figure.append(svg("line", { class: `mark ${quantile}`, x1: x, x2: x, y1: 18, y2: 92 }),
      svg("text", { x: x + 3, y: 30 + index * 13 }, quantile));  // staggered: close marks stay readable
  });
  return figure;
}

function drawLatency(latency) {
  $("latency-day").textContent = latency.day;
  const box = $("latency");
  const spans = Object.entries(latency.spans);
  box.replaceChildren(...(spans.length ? spans.map(([name, span]) => drawSpan(name, span, latency.buckets_ms))
    : [el("p", { class: "muted" }, "no latencies measured that day")]));
}

function drawUsage(usage) {
  const parts = Object.entries(usage.total).map(([category, count]) => `${category}: ${count}`);
  $("usage").textContent = parts.length ? `billable conversations ${usage.from} to ${usage.to} — ${parts.join(", ")}`
    : "no billable conversations in this range";
}

async function loadStats(event) {
  if (event) event.preventDefault();
  const query = new URLSearchParams({ from: $("from").value, to: $("to").value });
  if ($("template").value.trim()) query.set("template", $("template").value.trim());
  try {
    const [funnel, latency, usage] = await Promise.all([api(`/v1/stats/funnel?${query}`),
      api(`/v1/stats/latency?day=${encodeURIComponent($("to").value)}`),
      api(`/v1/stats/usage?from=${$("from").value}&to=${$("to").value}`)]);
    drawFunnel(funnel);
    drawLatency(latency);
    drawUsage(usage);
  } catch (error) {
    $("usage").textContent = error.message;
  }
}

async function pollThroughput() {
  try {
    const recent = await api("/v1/stats/throughput?seconds=60");
    $("rate").textContent = recent.per_second.toFixed(1);
    const chart = $("throughput");
    const most = Math.max(1, ...recent.seconds.map((second) => second.events));
    const step = 240 / Math.max(1, recent.seconds.length - 1);
    const points = recent.seconds.map((second, index) => `${index * step},${38 - (second.events / most) * 34}`);
    chart.replaceChildren(svg("polygon", { class: "area", points: `0,40 ${points.join(" ")} 240,40` }));
  } catch (error) {
    $("rate").textContent = "–";
  }
}

async function main() {
  const today = new Date();
  $("to").value = isoDay(today);
  $("from").value = isoDay(new Date(today.getTime() - 6 * 86400000));
  $("find").addEventListener("submit", find);
  $("range").addEventListener("submit", loadStats);
  const tenant = await openSession();
  if (tenant === null) return;
  $("tenant").textContent = `tenant ${tenant}`;
  document.body.dataset.ready = "true";
  loadStats();
  pollThroughput();
  setInterval(pollThroughput, 2000);
}

main();
