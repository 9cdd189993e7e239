// kassa dashboard: polls the API (ranking every second, the rest less often) and draws with
// the vendored Chart.js. State lives in the URL (?source=&by=&store=&day=) so a view can be shared.
"use strict";

const RANKING_EVERY_MS = 1000;
const CHARTS_EVERY_MS = 10000;
const HEALTH_EVERY_MS = 5000;
const HISTORY_DAYS = 14;

const params = new URLSearchParams(location.search);

// A day from the URL is kept only if it is a real calendar day YYYY-MM-DD; anything else
// (a typo, a hand-edited link) falls back to the default day instead of breaking the page.
function validDay(text) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text || "")) return "";
  const parsed = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().slice(0, 10) === text ? text : "";
}

const state = {
  source: params.get("source") === "daily" ? "daily" : "live",
  by: params.get("by") === "revenue" ? "revenue" : "units",
  store: params.get("store") || "",
  day: validDay(params.get("day")),
  sku: params.get("sku") || "",
  shownDay: "",
};

const $ = (id) => document.getElementById(id);
const charts = {};
let rankingBusy = false;
let previous = new Map();

function query(extra) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(extra)) {
    if (value !== "" && value !== null && value !== undefined) q.set(key, value);
  }
  return q.toString();
}

async function getJSON(path) {
  // Against the origin, not the page's URL: opened as http://user:token@host/, the page's URL
  // holds the password, and fetch refuses a URL with credentials (the browser adds them).
  const response = await fetch(new URL(path, location.origin), { cache: "no-store" });
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  return { ok: response.ok, status: response.status, body };
}

function saveState() {
  const q = query({ source: state.source, by: state.by, store: state.store, day: state.day, sku: state.sku });
  history.replaceState(null, "", q ? `?${q}` : location.pathname);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function lastDays(endIso) {
  const end = validDay(endIso) ? new Date(`${endIso}T00:00:00Z`) : new Date();
  const start = new Date(end.getTime() - (HISTORY_DAYS - 1) * 86400000);
  return { from: isoDay(start), to: isoDay(end) };
}

function money(text) {
  const value = Number(text);
  return Number.isFinite(value)
    ? value.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 })
    : text;
}

function showMessage(text) {
  const message = $("message");
  message.textContent = text || "";
  message.hidden = !text;
}

function renderRanking(body) {
  const tbody = $("ranking").querySelector("tbody");
  const rows = [];
  const seen = new Map();
  for (const item of body.items) {
    const tr = document.createElement("tr");
    tr.dataset.sku = item.sku;
    tr.dataset.units = item.units;
    tr.dataset.revenue = item.revenue;
    const before = previous.get(item.sku);
    if (before && (before.units !== item.units || before.revenue !== item.revenue)) tr.classList.add("changed");
    if (item.sku === state.sku) tr.classList.add("selected");
    const name = (item.name || "").trim() || item.sku;
    tr.innerHTML = `<td class="rank">${item.rank}</td>
      <td class="item"><span class="name"></span><span class="sku"></span></td>
      <td class="num units">${item.units.toLocaleString()}</td>
      <td class="num revenue">${money(item.revenue)}</td>`;
    tr.querySelector(".name").textContent = name;
    tr.querySelector(".sku").textContent = item.sku;
    tr.addEventListener("click", () => selectItem(item.sku));
    rows.push(tr);
    seen.set(item.sku, { units: item.units, revenue: item.revenue });
  }
  tbody.replaceChildren(...rows);
  previous = seen;
  const scope = body.store ? `store ${body.store}` : "all stores";
  const span = body.from === body.to ? body.from : `${body.from} … ${body.to}`;
  $("ranking-title").textContent = `Top ${body.n} · ${body.source} · ${span} · ${scope}`;
  state.shownDay = body.to;
  if (!state.sku && body.items.length) selectItem(body.items[0].sku, false);
}

async function refreshRanking() {
  if (rankingBusy) return;
  rankingBusy = true;
  try {
    const q = query({ source: state.source, by: state.by, store: state.store, day: state.day, n: 10 });
    const { ok, body } = await getJSON(`/api/rankings?${q}`);
    if (ok) {
      showMessage("");
      renderRanking(body);
    } else {
      $("ranking").querySelector("tbody").replaceChildren();
      previous = new Map();
      showMessage(body.detail || "no ranking");
    }
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    showMessage(`API unreachable: ${error}`);
  } finally {
    rankingBusy = false;
  }
}

async function refreshStores() {
  const { ok, body } = await getJSON(`/api/stores?${query({ source: state.source, day: state.day })}`);
  if (!ok) return;
  const select = $("store");
  const known = new Set(body.stores);
  if (state.store) known.add(state.store);
  const options = [new Option("All stores", "")];
  for (const store of [...known].sort()) options.push(new Option(store, store));
  select.replaceChildren(...options);
  select.value = state.store;
}

function chart(id, type, label) {
  if (charts[id] || !window.Chart) return charts[id];
  charts[id] = new window.Chart($(id), {
    type,
    data: { labels: [], datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true, title: { display: true, text: label } } },
    },
  });
  return charts[id];
}

function measure(row) {
  return state.by === "revenue" ? Number(row.revenue) : row.units;
}

async function refreshTotals() {
  const range = lastDays(state.day || state.shownDay);
  const [daily, live] = await Promise.all(
    ["daily", "live"].map((source) => getJSON(`/api/totals?${query({ source, store: state.store, ...range })}`)),
  );
  const target = chart("totals-chart", "bar", state.by);
  if (!target || !daily.ok || !live.ok) return;
  target.data.labels = daily.body.days.map((d) => d.day.slice(5));
  target.data.datasets = [
    { label: `daily ${state.by}`, data: daily.body.days.map(measure), backgroundColor: "#0f766e" },
    { label: `live ${state.by}`, data: live.body.days.map(measure), type: "line", borderColor: "#f59e0b", backgroundColor: "#f59e0b" },
  ];
  target.options.scales.y.title.text = state.by;
  target.update("none");
  $("totals-title").textContent = `Day totals · ${state.store || "all stores"}`;
}

async function refreshItem() {
  if (!state.sku) return;
  const range = lastDays(state.day || state.shownDay);
  const q = query({ source: state.source, store: state.store, ...range });
  const { ok, body } = await getJSON(`/api/items/${encodeURIComponent(state.sku)}?${q}`);
  const target = chart("item-chart", "line", state.by);
  if (!target || !ok) return;
  target.data.labels = body.days.map((d) => d.day.slice(5));
  target.data.datasets = [
    { label: `${state.source} ${state.by}`, data: body.days.map(measure), borderColor: "#0f766e", backgroundColor: "#0f766e", tension: 0.2 },
  ];
  target.options.scales.y.title.text = state.by;
  target.update("none");
  const name = (body.name || "").trim();
  $("item-title").textContent = `Item trend · ${body.sku}${name ? ` · ${name}` : ""}`;
}

async function refreshHealth() {
  const pill = $("health");
  try {
    const { status, body } = await getJSON("/health");
    pill.textContent = status === 200 ? "healthy" : "Redis down";
    pill.className = `pill ${status === 200 ? "ok" : "bad"}`;
    pill.title = body.reason || "Redis reachable";
    const kafka = body.kafka || {};
    const daily = body.daily;
    const rows = [
      ["Redis", body.redis && body.redis.reachable ? "reachable" : body.reason],
      ["Kafka", kafka.reachable ? "reachable" : kafka.reason || "unknown"],
      ["Stream lag", kafka.lag === null || kafka.lag === undefined ? "unknown" : `${kafka.lag} messages (${body.stream.consumer_group})`],
      ["Last daily run", daily ? `${daily.day} · ${daily.complete ? "complete" : "forced"} · ${daily.finished_at || ""}` : "none yet"],
    ];
    const list = $("status");
    list.replaceChildren();
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      list.append(dt, dd);
    }
  } catch (error) {
    pill.textContent = "API unreachable";
    pill.className = "pill bad";
  }
}

function selectItem(sku, save = true) {
  state.sku = sku;
  for (const tr of $("ranking").querySelectorAll("tbody tr")) tr.classList.toggle("selected", tr.dataset.sku === sku);
  if (save) saveState();
  refreshItem();
}

function refreshAll() {
  saveState();
  refreshRanking().then(() => Promise.all([refreshTotals(), refreshItem()]));
  refreshStores();
}

function bindSwitch(id, key) {
  for (const button of $(id).querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset[key] === state[key]);
    button.addEventListener("click", () => {
      state[key] = button.dataset[key];
      for (const other of $(id).querySelectorAll("button")) other.classList.toggle("active", other === button);
      previous = new Map();
      refreshAll();
    });
  }
}

function start() {
  bindSwitch("source-switch", "source");
  bindSwitch("by-switch", "by");
  $("day").value = state.day;
  $("day").addEventListener("change", (event) => {
    state.day = event.target.value;
    refreshAll();
  });
  $("store").addEventListener("change", (event) => {
    state.store = event.target.value;
    previous = new Map();
    refreshAll();
  });
  refreshAll();
  refreshHealth();
  setInterval(refreshRanking, RANKING_EVERY_MS);
  setInterval(() => { refreshStores(); refreshTotals(); refreshItem(); }, CHARTS_EVERY_MS);
  setInterval(refreshHealth, HEALTH_EVERY_MS);
}

start();
