// Pantau field console: one page, hash routes, plain DOM. Talks only to the API that serves it.
import { currentLang, setLang, t, wita } from "./i18n.js";
import { drawMap } from "./map.js";
import { drawSeries } from "./chart.js";

const TOKEN_KEY = "pantau.token";
const state = { user: null, catalog: null, timer: null, alerts: new Map(), stream: null };

// --- small helpers -------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const token = localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    signOut();
    throw new Error(t("badToken"));
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : body;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    throw error;
  }
  return body;
}

const main = () => document.getElementById("main");
const canManage = () => state.user && ["technician", "admin"].includes(state.user.role);
const canRespond = () => state.user && ["responder", "admin"].includes(state.user.role);

function show(...nodes) {
  main().replaceChildren(...nodes);
}

function errorBox(err) {
  return h("p", { class: "error", role: "alert", text: `${t("error")}: ${err.message}` });
}

function fmtNumber(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) < 10 ? 2 : 1);
}

function unitOf(kind, field) {
  const spec = state.catalog && state.catalog.kinds[kind];
  return spec && spec.fields[field] ? spec.fields[field].unit : "";
}

// --- sign in / out -------------------------------------------------------------------------
function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  state.user = null;
  if (state.stream) state.stream.close();
  state.stream = null;
  state.alerts = new Map();
  render();
}

function signInPage(message) {
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = h("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, input.value.trim());
    await start();
  } },
    h("h1", { text: t("signIn") }),
    h("label", { for: "token", text: t("token") }), input,
    h("p", { class: "help", text: t("tokenHelp") }),
    message ? h("p", { class: "error", role: "alert", text: message }) : null,
    h("button", { type: "submit", text: t("signIn") }));
  show(form);
}

async function start() {
  try {
    state.user = await api("/me");
    state.catalog = await api("/catalog");
  } catch (err) {
    if (err.status !== undefined && err.status !== 401) {
      show(errorBox(err));
      return;
    }
    localStorage.removeItem(TOKEN_KEY);
    state.user = null;
    renderChrome();
    signInPage(t("badToken"));
    return;
  }
  await render();
  if (canRespond()) {
    const spec = await fetch("/openapi.json").then((r) => r.json()).catch(() => ({ paths: {} }));
    if (spec.paths["/alerts/stream"]) connectAlerts(); else state.alertsMissing = true;
  }
}

// --- chrome (header, nav) ------------------------------------------------------------------
function renderChrome() {
  document.title = t("title");
  document.documentElement.lang = currentLang();
  const header = document.getElementById("header");
  const langSelect = h("select", { id: "lang", "aria-label": t("language"), onchange: (e) => { setLang(e.target.value); render(); } },
    h("option", { value: "id", text: "Bahasa Indonesia" }), h("option", { value: "en", text: "English" }));
  langSelect.value = currentLang();
  const links = [];
  if (state.user) {
    links.push(["#/devices", t("devices")]);
    if (canManage()) links.push(["#/register", t("register")]);
    links.push(["#/alerts", t("alerts")], ["#/map", t("map")]);
    links.push(["#/dead-letters", t("deadLetters")]);
    if (canManage()) links.push(["#/import", t("import")]);
  }
  const here = location.hash.split("?")[0] || "#/devices";
  header.replaceChildren(
    h("div", { class: "bar" },
      h("strong", { class: "brand", text: t("title") }),
      langSelect,
      state.user ? h("button", { id: "sign-out", class: "secondary", onclick: signOut, text: t("signOut") }) : null),
    state.user ? h("p", { class: "who", text: `${t("signedInAs")} ${state.user.name} (${state.user.role})` }) : null,
    h("div", { id: "banner", role: "alert" }),
    links.length ? h("nav", { "aria-label": "menu" }, links.map(([href, label]) =>
      h("a", { href, "aria-current": here === href ? "page" : null, text: label }))) : null);
}

// --- devices ------------------------------------------------------------------------------
function filterForm(params) {
  const kinds = Object.keys(state.catalog.kinds);
  const select = (id, label, options, value) => {
    const el = h("select", { id, name: id },
      h("option", { value: "", text: t("any") }), options.map(([v, l]) => h("option", { value: v, text: l })));
    el.value = value || "";
    return h("div", { class: "field" }, h("label", { for: id, text: label }), el);
  };
  return h("form", { class: "filters", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(e.target);
    const query = new URLSearchParams();
    for (const [k, v] of data) if (v) query.set(k, v);
    location.hash = `#/devices?${query}`;
  } },
    h("div", { class: "field" }, h("label", { for: "q", text: t("search") }),
      h("input", { id: "q", name: "q", type: "search", value: params.get("q") || "" })),
    select("kind", t("kind"), kinds.map((k) => [k, k]), params.get("kind")),
    h("div", { class: "field" }, h("label", { for: "district", text: t("district") }),
      h("input", { id: "district", name: "district", value: params.get("district") || "" })),
    select("status", t("status"), ["active", "maintenance", "retired"].map((s) => [s, t(s)]), params.get("status")),
    h("button", { type: "submit", text: t("search") }));
}

const RANK = { waspada: 1, siaga: 2, awas: 3 };

function worstAlert(alerts) {
  return alerts.reduce((worst, a) => (!worst || (RANK[a.level] || 0) > (RANK[worst.level] || 0) ? a : worst), null);
}

function deviceCard(device, latest, alerts = []) {
  const worst = worstAlert(alerts);
  const fields = latest ? latest.fields : {};
  const values = Object.entries(fields)
    .filter(([k]) => k !== "battery_v" && k !== "rssi_dbm")
    .map(([k, v]) => h("li", {}, `${k}: `, h("strong", { text: `${fmtNumber(v)} ${unitOf(device.kind, k)}` })));
  return h("li", { class: "device card", "data-device": device.id },
    h("div", { class: "row" },
      h("a", { href: `#/device/${device.id}`, class: "name", text: device.name }),
      h("span", { class: `badge ${device.status}`, text: t(device.status) })),
    h("p", { class: "meta", text: `${device.id} · ${device.kind}${device.district ? " · " + device.district : ""}` }),
    h("dl", {},
      h("dt", { text: t("lastSeen") }), h("dd", { class: "last-seen", text: latest ? wita(latest.ts) : t("never") }),
      h("dt", { text: t("battery") }), h("dd", { text: fields.battery_v !== undefined ? `${fmtNumber(fields.battery_v)} V` : "–" }),
      h("dt", { text: t("rssi") }), h("dd", { text: fields.rssi_dbm !== undefined ? `${fmtNumber(fields.rssi_dbm)} dBm` : "–" })),
    values.length ? h("ul", { class: "values", "aria-label": t("values") }, values) : null,
    worst ? h("p", { class: "device-alert" }, h("span", { class: `badge ${worst.level}`, text: t(worst.level) }), ` ${alerts.length} ${t("alerts").toLowerCase()} · ${worst.state}`) : null);
}

// Active alerts by device; null when the API has no /alerts (404), remembered for the session.
async function activeAlertsByDevice() {
  if (state.alertsMissing) return null;
  try {
    const page = await api("/alerts?state=active&limit=500");
    const byDevice = {};
    for (const a of page.alerts) (byDevice[a.device_id] ||= []).push(a);
    return byDevice;
  } catch (err) {
    if (err.status === 404) state.alertsMissing = true;
    return null;
  }
}

async function devicesPage(params) {
  const list = h("ul", { id: "device-list", class: "cards", "aria-live": "polite" });
  show(h("h1", { text: t("devices") }), filterForm(params), list);
  const refresh = async () => {
    const query = new URLSearchParams({ limit: "1000" });
    for (const key of ["q", "kind", "district", "status"]) if (params.get(key)) query.set(key, params.get(key));
    try {
      const [page, latest, alerts] = await Promise.all([api(`/devices?${query}`), api("/latest"), activeAlertsByDevice()]);
      const cards = page.items.map((d) => deviceCard(d, latest.devices[d.id], (alerts && alerts[d.id]) || []));
      list.replaceChildren(...(cards.length ? cards : [h("li", { text: t("noDevices") })]));
    } catch (err) {
      list.replaceChildren(h("li", {}, errorBox(err)));
    }
  };
  await refresh();
  state.timer = setInterval(refresh, 3000);
}

// --- register ------------------------------------------------------------------------------
function mosquittoLine(device, password) {
  const broker = state.catalog.broker;
  const host = ["127.0.0.1", "localhost"].includes(broker.host) ? location.hostname : broker.host;
  const fields = Object.entries(state.catalog.kinds[device.kind].fields);
  const [name, spec] = fields[0];
  const value = Math.round((spec.min + (spec.max - spec.min) / 10) * 10) / 10;
  const payload = `{"ts": '$(date +%s%3N)', "seq": 1, "${name}": ${value}}`;
  return `mosquitto_pub -h ${host} -p ${broker.port} -u ${device.id} -P '${password}' ` +
    `-t ${broker.topic_prefix}/${device.id}/telemetry -q 1 -m '${payload}'`;
}

function thresholdInputs(kind) {
  const fields = Object.keys(state.catalog.kinds[kind].fields);
  const fieldSelect = h("select", { id: "th-field", name: "th-field" }, fields.map((f) => h("option", { value: f, text: `${f} (${unitOf(kind, f)})` })));
  return h("fieldset", {},
    h("legend", { text: t("thresholds") }),
    h("div", { class: "field" }, h("label", { for: "th-field", text: t("field") }), fieldSelect),
    ["waspada", "siaga", "awas"].map((level) => h("div", { class: "field" },
      h("label", { for: `th-${level}`, text: t(level) }),
      h("input", { id: `th-${level}`, name: `th-${level}`, type: "number", step: "any", inputmode: "decimal" }))));
}

function registerPage() {
  if (!canManage()) {
    show(h("h1", { text: t("register") }), h("p", { text: t("viewerNote") }));
    return;
  }
  const kinds = Object.keys(state.catalog.kinds);
  const kindSelect = h("select", { id: "kind", name: "kind", required: true }, kinds.map((k) => h("option", { value: k, text: k })));
  kindSelect.value = kinds.includes("water_level") ? "water_level" : kinds[0];
  let thresholds = thresholdInputs(kindSelect.value);
  kindSelect.addEventListener("change", () => {
    const next = thresholdInputs(kindSelect.value);
    thresholds.replaceWith(next);
    thresholds = next;
  });
  const input = (id, label, attrs = {}) => h("div", { class: "field" },
    h("label", { for: id, text: label }), h("input", { id, name: id, ...attrs }));
  const result = h("div", { id: "register-result", "aria-live": "polite" });
  const locate = h("button", { type: "button", class: "secondary", text: t("useLocation"), onclick: () => {
    navigator.geolocation.getCurrentPosition((pos) => {
      document.getElementById("latitude").value = pos.coords.latitude.toFixed(6);
      document.getElementById("longitude").value = pos.coords.longitude.toFixed(6);
    }, (err) => result.replaceChildren(errorBox(err)), { enableHighAccuracy: true, timeout: 10000 });
  } });
  const form = h("form", { id: "register-form", class: "card", onsubmit: async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = { id: data.get("id"), kind: data.get("kind"), name: data.get("name") };
    for (const key of ["site", "district"]) if (data.get(key)) body[key] = data.get(key);
    for (const key of ["latitude", "longitude"]) if (data.get(key)) body[key] = Number(data.get(key));
    const levels = {};
    for (const level of ["waspada", "siaga", "awas"]) if (data.get(`th-${level}`)) levels[level] = Number(data.get(`th-${level}`));
    if (Object.keys(levels).length) body.thresholds = { [data.get("th-field")]: levels };
    try {
      const answer = await api("/devices", { method: "POST", json: body });
      const line = mosquittoLine(answer.device, answer.mqtt_password);
      const copy = h("button", { type: "button", id: "copy-line", text: t("copy"), onclick: async () => {
        try { await navigator.clipboard.writeText(line); } catch (_) { /* selection below still works */ }
        window.getSelection().selectAllChildren(pre);
        copy.textContent = t("copied");
      } });
      const pre = h("pre", { id: "mqtt-line", text: line });
      result.replaceChildren(h("div", { class: "card ok" },
        h("h2", { text: `${t("registered")}: ${answer.device.id}` }),
        h("p", { class: "warn", text: t("passwordOnce") }),
        h("p", {}, "MQTT: ", h("code", { id: "mqtt-user", text: answer.mqtt_username }), " / ", h("code", { id: "mqtt-password", text: answer.mqtt_password })),
        h("p", { text: t("testLine") }), pre, copy,
        h("p", {}, h("a", { href: `#/device/${answer.device.id}`, text: t("detail") }))));
      form.reset();
      result.scrollIntoView();
    } catch (err) {
      result.replaceChildren(errorBox(err));
    }
  } },
    input("id", t("id"), { required: true, pattern: "[a-z0-9][a-z0-9-]*", autocapitalize: "none", placeholder: "wl-malili-03" }),
    h("div", { class: "field" }, h("label", { for: "kind", text: t("kind") }), kindSelect),
    input("name", t("name"), { required: true }),
    input("site", t("site")),
    input("district", t("district"), { list: "districts" }),
    h("datalist", { id: "districts" }, ["Malili", "Wotu", "Tomoni", "Burau", "Nuha", "Towuti", "Angkona", "Mangkutana", "Kalaena", "Tomoni Timur", "Wasuponda"].map((d) => h("option", { value: d }))),
    input("latitude", t("latitude"), { type: "number", step: "any", min: "-90", max: "90", inputmode: "decimal" }),
    input("longitude", t("longitude"), { type: "number", step: "any", min: "-180", max: "180", inputmode: "decimal" }),
    locate, thresholds,
    h("button", { type: "submit", text: t("save") }));
  show(h("h1", { text: t("register") }), form, result);
}

// --- one device ---------------------------------------------------------------------------
async function devicePage(id) {
  const box = h("div", {});
  show(h("h1", { text: id }), box);
  try {
    const device = await api(`/devices/${id}`);
    const series = await api(`/series/${id}`);
    const rate = series.rate_per_h === null ? "–" : `${series.rate_per_h >= 0 ? "+" : ""}${fmtNumber(series.rate_per_h)} ${series.unit}${t("perHour")}`;
    const parts = [
      h("p", { class: "meta", text: `${device.name} · ${device.kind} · ${device.district} · ${t(device.status)}` }),
      h("h2", { text: device.kind === "water_level" ? t("last24h") : `${series.field} (24 h)` }),
      drawSeries(series, t),
      h("p", {}, `${t("rate")}: `, h("strong", { id: "rate", text: rate })),
      h("p", { text: `${t("calibrationVersion")}: ${device.calibration_version ?? "–"}` }),
    ];
    if (canManage()) parts.push(deviceActions(device));
    box.replaceChildren(...parts);
  } catch (err) {
    box.replaceChildren(errorBox(err));
  }
}

function deviceActions(device) {
  const out = h("div", { "aria-live": "polite" });
  const run = async (fn) => {
    try { await fn(); } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  const fields = Object.keys(state.catalog.kinds[device.kind].fields);
  const calField = h("select", { id: "cal-field", name: "cal-field" }, fields.map((f) => h("option", { value: f, text: f })));
  const calibrate = h("form", { class: "card", onsubmit: (e) => { e.preventDefault(); run(async () => {
    const data = new FormData(e.target);
    const spec = {};
    if (data.get("offset")) spec.offset = Number(data.get("offset"));
    if (data.get("scale")) spec.scale = Number(data.get("scale"));
    await api(`/devices/${device.id}/calibrations`, { method: "POST", json: { fields: { [data.get("cal-field")]: spec } } });
    await devicePage(device.id);
  }); } },
    h("h2", { text: t("calibrate") }),
    h("div", { class: "field" }, h("label", { for: "cal-field", text: t("field") }), calField),
    h("div", { class: "field" }, h("label", { for: "offset", text: t("offset") }), h("input", { id: "offset", name: "offset", type: "number", step: "any" })),
    h("div", { class: "field" }, h("label", { for: "scale", text: t("scale") }), h("input", { id: "scale", name: "scale", type: "number", step: "any" })),
    h("button", { type: "submit", text: t("save") }));
  const buttons = h("div", { class: "actions" },
    h("button", { type: "button", class: "secondary", text: t("rotate"), onclick: () => run(async () => {
      const answer = await api(`/devices/${device.id}/credentials/rotate`, { method: "POST" });
      out.replaceChildren(h("div", { class: "card ok" }, h("p", { class: "warn", text: t("passwordOnce") }),
        h("pre", { text: mosquittoLine(answer.device, answer.mqtt_password) })));
    }) }),
    device.status === "active"
      ? h("button", { type: "button", class: "secondary", text: t("setMaintenance"), onclick: () => run(async () => {
        await api(`/devices/${device.id}`, { method: "PATCH", json: { status: "maintenance" } });
        await devicePage(device.id);
      }) })
      : device.status === "maintenance"
        ? h("button", { type: "button", class: "secondary", text: t("setActive"), onclick: () => run(async () => {
          await api(`/devices/${device.id}`, { method: "PATCH", json: { status: "active" } });
          await devicePage(device.id);
        }) })
        : null,
    device.status !== "retired"
      ? h("button", { type: "button", class: "danger", text: t("retire"), onclick: () => run(async () => {
        if (!confirm(t("confirmRetire"))) return;
        await api(`/devices/${device.id}`, { method: "DELETE" });
        await devicePage(device.id);
      }) })
      : null);
  return h("section", {}, buttons, calibrate, out);
}

// --- dead letters ---------------------------------------------------------------------------
async function deadLettersPage(params) {
  const list = h("ul", { class: "cards" });
  if (!state.reasons) {  // the RejectReason enum, from the API's own OpenAPI
    try {
      const spec = await fetch("/openapi.json").then((r) => r.json());
      state.reasons = spec.components.schemas.RejectReason.enum;
    } catch (_) { state.reasons = []; }
  }
  const reasonSelect = h("select", { id: "dl-reason", name: "reason" },
    h("option", { value: "", text: t("any") }), state.reasons.map((r) => h("option", { value: r, text: r })));
  reasonSelect.value = params.get("reason") || "";
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const query = new URLSearchParams();
    for (const [k, v] of new FormData(e.target)) if (v) query.set(k, v);
    location.hash = `#/dead-letters?${query}`;
  } },
    h("div", { class: "field" }, h("label", { for: "dl-device", text: t("id") }), h("input", { id: "dl-device", name: "device_id", value: params.get("device_id") || "" })),
    h("div", { class: "field" }, h("label", { for: "dl-reason", text: t("reason") }), reasonSelect),
    h("button", { type: "submit", text: t("search") }));
  show(h("h1", { text: t("deadLetters") }), form, list);
  const query = new URLSearchParams({ limit: "100" });
  for (const key of ["device_id", "reason"]) if (params.get(key)) query.set(key, params.get(key));
  try {
    const letters = await api(`/dead-letters?${query}`);
    list.replaceChildren(...(letters.length ? letters.map((letter) => {
      const status = h("span", { "aria-live": "polite" });
      return h("li", { class: "card" },
        h("p", { class: "meta", text: `#${letter.id} · ${letter.device_id || "?"} · ${wita(letter.received_at)}` }),
        h("p", {}, `${t("reason")}: `, h("strong", { text: `${letter.reason}` }), ` — ${letter.detail || ""}`),
        h("details", {}, h("summary", { text: t("payload") }), h("pre", { text: letter.payload_text ?? `base64: ${letter.payload_base64}` })),
        canManage() ? h("button", { type: "button", class: "secondary", text: t("replay"), onclick: async () => {
          try {
            await api(`/dead-letters/${letter.id}/replay`, { method: "POST" });
            status.textContent = t("replayed");
          } catch (err) { status.replaceChildren(errorBox(err)); }
        } }) : null, status);
    }) : [h("li", { text: t("noDeadLetters") })]));
  } catch (err) {
    list.replaceChildren(h("li", {}, errorBox(err)));
  }
}

// --- CSV import -----------------------------------------------------------------------------
function importPage() {
  if (!canManage()) {
    show(h("h1", { text: t("import") }), h("p", { text: t("viewerNote") }));
    return;
  }
  const report = h("div", { id: "import-report", "aria-live": "polite" });
  const form = h("form", { class: "card", onsubmit: async (e) => {
    e.preventDefault();
    const file = document.getElementById("csv").files[0];
    if (!file) return;
    const update = document.getElementById("update-existing").checked;
    try {
      const answer = await api(`/devices/import?update_existing=${update}`, {
        method: "POST", body: await file.text(), headers: { "Content-Type": "text/csv" } });
      const rows = [
        ...answer.created.map((id) => ["", id, `${t("registered")}${answer.credentials[id] ? ` — MQTT: ${answer.credentials[id]}` : ""}`]),
        ...answer.updated.map((id) => ["", id, "updated"]),
        ...answer.errors.map((e) => [e.line, e.device_id ?? "", e.errors.join("; ")]),
      ].sort((a, b) => Number(a[0] || 0) - Number(b[0] || 0));
      report.replaceChildren(
        h("p", { text: `+${answer.created.length} / ~${answer.updated.length} / ✗${answer.errors.length}` }),
        Object.keys(answer.credentials).length ? h("p", { class: "warn", text: t("passwordOnce") }) : null,
        h("table", {}, h("thead", {}, h("tr", {}, h("th", { text: t("row") }), h("th", { text: t("id") }), h("th", { text: t("result") }))),
          h("tbody", {}, rows.map((row) => h("tr", {}, row.map((cell) => h("td", { text: String(cell) })))))));
    } catch (err) {
      report.replaceChildren(errorBox(err));
    }
  } },
    h("label", { for: "csv", text: t("importHelp") }),
    h("input", { id: "csv", name: "csv", type: "file", accept: ".csv,text/csv", required: true }),
    h("div", { class: "check" }, h("input", { id: "update-existing", type: "checkbox" }), h("label", { for: "update-existing", text: t("updateExisting") })),
    h("button", { type: "submit", text: t("upload") }));
  show(h("h1", { text: t("import") }), form, report);
}

// --- map ------------------------------------------------------------------------------------
async function mapPage() {
  const box = h("div", { class: "map" });
  show(h("h1", { text: t("map") }), h("p", { class: "help", text: t("mapNote") }), box);
  try {
    const [geo, page] = await Promise.all([fetch("luwu-timur.json").then((r) => r.json()), api("/devices?limit=1000")]);
    box.replaceChildren(drawMap(geo, page.items, t));
  } catch (err) {
    box.replaceChildren(errorBox(err));
  }
}

// --- alerts (contract: /work/notes/alerts-api.md) ------------------------------------------
function beep() {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.4);
  } catch (_) { /* no audio device: the banner still shows */ }
}

function announce(alert) {
  const banner = document.getElementById("banner");
  if (!banner || !["siaga", "awas"].includes(alert.level) || alert.state !== "firing") return;
  banner.className = `banner ${alert.level}`;
  banner.textContent = `${t("newAlert")}: ${t(alert.level)} — ${alert.device_id} ${alert.value ?? ""} ${alert.unit ?? ""}`;
  beep();
}

function alertText(alert) {
  return (alert.text && (alert.text[currentLang()] || alert.text.id)) || `${alert.rule} ${alert.level}`;
}

function alertCard(alert) {
  const out = h("span", { "aria-live": "polite" });
  const note = h("input", { id: `note-${alert.id}`, name: "note" });
  const act = (verb) => async () => {
    try {
      const updated = await api(`/alerts/${alert.id}/${verb}`, { method: "POST", json: { note: note.value || null } });
      state.alerts.set(updated.id, updated);
      renderAlertList();
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  return h("li", { class: `card alert ${alert.level}`, "data-alert": alert.id },
    h("p", {}, h("span", { class: `badge ${alert.level}`, text: t(alert.level) }), " ", h("strong", { text: alert.device_id }), ` · ${alert.state}`),
    h("p", { text: alertText(alert) }),
    h("p", { class: "meta", text: wita(alert.started_at) }),
    alert.acknowledged_by ? h("p", { class: "meta", text: `${t("acknowledgedBy")} ${alert.acknowledged_by}: ${alert.ack_note ?? ""}` }) : null,
    canRespond() && alert.state !== "resolved" ? h("div", { class: "actions" },
      h("label", { for: `note-${alert.id}`, text: t("note") }), note,
      alert.state !== "acknowledged" ? h("button", { type: "button", text: t("ack"), onclick: act("ack") }) : null,
      h("button", { type: "button", class: "secondary", text: t("resolve"), onclick: act("resolve") })) : null,
    out);
}

function renderAlertList() {
  const list = document.getElementById("alert-list");
  if (!list) return;
  const active = [...state.alerts.values()].filter((a) => a.state !== "resolved").sort((a, b) => b.id - a.id);
  list.replaceChildren(...(active.length ? active.map(alertCard) : [h("li", { text: t("noAlerts") })]));
}

async function alertsPage() {
  const list = h("ul", { id: "alert-list", class: "cards", "aria-live": "polite" });
  // The stream may have opened at sign-in, before this page existed: say so now.
  const open = state.stream && state.stream.readyState === EventSource.OPEN;
  const live = h("p", { id: "live", class: "meta", text: open ? `● ${t("live")}` : null });
  show(h("h1", { text: t("alerts") }), live, list);
  try {
    const page = await api("/alerts?state=active&limit=200");
    for (const alert of page.alerts) state.alerts.set(alert.id, alert);
  } catch (err) {
    if (err.status === 404) {
      list.replaceChildren(h("li", { id: "alerts-unavailable", class: "card", text: t("alertsUnavailable") }));
      return;
    }
    list.replaceChildren(h("li", {}, errorBox(err)));
    return;
  }
  renderAlertList();
  connectAlerts();
}

// One EventSource per signed-in session: banners and sound on any page, the list when shown.
function connectAlerts() {
  if (state.stream || state.alertsMissing || !state.user) return;
  state.stream = new EventSource(`/alerts/stream?token=${encodeURIComponent(localStorage.getItem(TOKEN_KEY))}`);
  state.stream.addEventListener("open", () => { const el = document.getElementById("live"); if (el) el.textContent = `● ${t("live")}`; });
  state.stream.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    const known = state.alerts.get(alert.id);
    state.alerts.set(alert.id, alert);
    if (!known || known.level !== alert.level || known.state !== alert.state) announce(alert);
    renderAlertList();
  });
}

// --- router ---------------------------------------------------------------------------------
async function render() {
  clearInterval(state.timer);
  renderChrome();
  if (!state.user) {
    signInPage();
    return;
  }
  const [path, query] = (location.hash.slice(1) || "/devices").split("?");
  const params = new URLSearchParams(query || "");
  if (path.startsWith("/device/")) return devicePage(decodeURIComponent(path.slice(8)));
  const pages = { "/register": registerPage, "/alerts": alertsPage, "/map": mapPage, "/dead-letters": deadLettersPage, "/import": importPage };
  return (pages[path] || devicesPage)(params);
}

window.addEventListener("hashchange", render);
setLang(currentLang());
if (localStorage.getItem(TOKEN_KEY)) start(); else render();
