"use strict";
// A cluster's live view (gateway/_ui.py): server-sent events from /ui/events update the page in
// place (rows are kept by name, so a focused button stays focused); values are set as text.

const state = {csrf: null, source: null, workers: new Map(), objects: new Map(), logLines: 0};
const MAX_LOG_LINES = 2000;

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid);
  return el;
}

function say(text) { document.getElementById("status").textContent = text; }

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": state.csrf || ""},
    body: JSON.stringify(body || {}),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || `${path}: ${r.status}`);
  return data;
}

function confirmAction(text, verb) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = verb;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
  });
}

async function remove(name, what) {
  if (!await confirmAction(`Delete ${what} "${name}" from the cluster?`, `Delete ${name}`)) return;
  try {
    await post("/ui/delete", {name});
    say(`Deleted ${what} ${name}.`);
  } catch (e) { say(e.message); }
}

function duration(seconds) {
  const s = Math.floor(seconds || 0), m = Math.floor(s / 60), hr = Math.floor(m / 60);
  return hr ? `${hr}h ${m % 60}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
}

function mb(bytes) { return typeof bytes === "number" ? `${(bytes / 1048576).toFixed(1)} MB` : "–"; }

// Rows kept by key: cells' text is updated, rows come and go with the data.
function sync(tbody, rows, key, cells, action) {
  const seen = new Set();
  for (const row of rows) {
    const k = key(row);
    seen.add(k);
    let tr = tbody.querySelector(`tr[data-key="${CSS.escape(k)}"]`);
    const values = cells(row);
    if (!tr) {
      tr = h("tr", {"data-key": k}, h("th", {scope: "row"}), values.slice(1).map(() => h("td")),
        h("td", {}, action(row)));
      tbody.append(tr);
    }
    values.forEach((v, i) => { if (tr.children[i].textContent !== String(v)) tr.children[i].textContent = v; });
  }
  for (const tr of [...tbody.children]) if (!seen.has(tr.dataset.key)) tr.remove();
}

function chart(history) {
  const line = document.getElementById("line");
  const title = document.getElementById("chart-desc");
  // Up to five minutes: a view with less history spreads what it has (at least 30 s).
  const now = Date.now() / 1000;
  const span = Math.min(300, Math.max(30, history.length ? now - history[0][0] : 300));
  const max = Math.max(1, ...history.map(([, r]) => r));
  const points = history.filter(([t]) => t > now - span).map(([t, r]) =>
    `${(((t - (now - span)) / span) * 600).toFixed(1)},${(136 - (r / max) * 124).toFixed(1)}`);
  line.setAttribute("points", points.join(" "));
  document.getElementById("ymax").textContent = max.toFixed(max < 10 ? 1 : 0);
  const last = history.length ? history[history.length - 1][1] : 0;
  title.textContent = `calls per second over the last minutes; now ${last.toFixed(1)}, peak ${max.toFixed(1)}`;
}

function onStatus(s) {
  document.getElementById("conn").textContent = `connected · broker pid ${s.pid} · v${s.version}`;
  document.getElementById("rate").textContent = (s.calls_per_second || 0).toFixed(1);
  document.getElementById("inflight").textContent = s.inflight;
  document.getElementById("routed").textContent = s.calls_routed;
  document.getElementById("clients").textContent = s.clients;
  document.getElementById("uptime").textContent = duration(s.uptime);
  chart(s.history || []);
  sync(document.getElementById("workers"), s.workers, (w) => w.name,
    (w) => [w.name, w.env, w.pid, w.node, (w.objects || []).join(", ") || "–", w.inflight, w.calls_done,
      w.cpu_percent === null || w.cpu_percent === undefined ? "–" : `${w.cpu_percent}%`, mb(w.rss_bytes)],
    (w) => w.env && w.env !== "default" && w.name === w.env
      ? h("button", {type: "button", class: "danger", onclick: () => remove(w.env, "env")}, `Delete env ${w.env}`) : "");
  // The cluster's own machinery is not listed: the rule of rhzmq.wire.protocol.is_internal.
  const internal = (n) => n.startsWith("__") || n.startsWith("rhzmq.");
  const objects = Object.entries(s.objects || {}).filter(([n]) => !internal(n));
  sync(document.getElementById("objects"), objects, ([n]) => n, ([n, by]) => [n, by],
    ([n]) => h("button", {type: "button", class: "danger", onclick: () => remove(n, "object")}, `Delete ${n}`));
}

function onLog(lines) {
  const pre = document.getElementById("log");
  const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(lines.join("\n") + "\n");
  state.logLines += lines.length;
  while (state.logLines > MAX_LOG_LINES && pre.firstChild) {
    state.logLines -= (pre.firstChild.textContent.match(/\n/g) || []).length;
    pre.firstChild.remove();
  }
  if (stick) pre.scrollTop = pre.scrollHeight;
}

async function start() {
  const r = await fetch("/ui/session", {credentials: "same-origin"});
  if (r.status === 401) { location.assign("/ui/signin"); return; }
  state.csrf = (await r.json()).csrf;
  const source = new EventSource("/ui/events");
  state.source = source;
  source.addEventListener("status", (e) => onStatus(JSON.parse(e.data)));
  source.addEventListener("log", (e) => onLog(JSON.parse(e.data).lines));
  source.addEventListener("down", (e) => {
    document.getElementById("conn").textContent = JSON.parse(e.data).message;
  });
  source.onerror = () => { document.getElementById("conn").textContent = "disconnected: retrying…"; };
  document.getElementById("teardown").addEventListener("click", async () => {
    if (!await confirmAction("Tear the whole cluster down? Its workers stop and every object is lost.", "Tear down")) return;
    try {
      await post("/ui/teardown");
      source.close();
      document.getElementById("conn").textContent = "the cluster is shutting down";
      say("The cluster is shutting down.");
    } catch (e) { say(e.message); }
  });
  document.getElementById("signout").addEventListener("click", async () => {
    await fetch("/ui/session", {method: "DELETE", credentials: "same-origin",
      headers: {"X-CSRF-Token": state.csrf || ""}});
    location.assign("/ui/signin");
  });
}

start();
