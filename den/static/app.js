"use strict";
// Den's web UI: one page whose views are drawn from the registry's JSON API (see den/_ui.py).
// Every value is put in the page as text (h() never parses markup); a secret's values never
// reach the page (it loads secrets redacted).

const TYPES = ["cluster", "env", "function", "module", "secret", "folder", "table", "blob",
  "file", "run"];
const state = {me: null, csrf: null};
const main = document.getElementById("main");

// -- helpers ------------------------------------------------------------------------------------

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf || "";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) { location.assign("/signin"); throw new Error("signed out"); }
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((data.error && data.error.message) || `${method} ${path}: ${r.status}`);
  return data;
}

function say(text) {
  const status = document.getElementById("status");
  status.textContent = text;
}

function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return h("time", {datetime: iso}, d.toLocaleString());
}

function resLink(path, version) {
  const [, owner, name] = path.split("/");
  const label = version ? `${path} (v${version})` : path;
  return h("a", {href: `#/r/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`}, label);
}

function field(label, input, hint) {
  const id = input.id || ("f" + Math.random().toString(36).slice(2));
  input.id = id;
  return h("div", {class: "field"}, h("label", {for: id}, label), input,
    hint ? h("small", {}, hint) : null);
}

function confirmAction(text, verb) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = verb || "Confirm";
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), {once: true});
  });
}

function sortedJSON(value) {
  if (Array.isArray(value)) return value.map(sortedJSON);
  if (value && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = sortedJSON(value[k]);
    return out;
  }
  return value;
}

// A config drawn readably: nested definition lists, lists as lists, scalars as text.
function readable(value) {
  if (Array.isArray(value)) {
    if (!value.length) return h("span", {class: "muted"}, "(empty list)");
    return h("ul", {class: "cfg"}, value.map((v) => h("li", {}, readable(v))));
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value).sort();
    if (!keys.length) return h("span", {class: "muted"}, "(empty)");
    return h("dl", {class: "cfg"}, keys.map((k) => [h("dt", {}, k), h("dd", {}, readable(value[k]))]));
  }
  if (value === null) return h("span", {class: "muted"}, "null");
  return h("code", {}, JSON.stringify(value));
}

// A list drawn a page at a time: fetchDraw(cursor) gives [content, next_cursor]; Previous walks
// back through the cursors seen (the API's cursors only go forward).
function paged(container, fetchDraw) {
  const stack = [];
  let current = "";
  const go = async (cursor, forward) => {
    if (forward) stack.push(current);
    current = cursor;
    const [content, next] = await fetchDraw(cursor);
    container.replaceChildren(content, h("nav", {class: "pager", "aria-label": "Pages"},
      h("button", {type: "button", disabled: !stack.length, onclick: () => go(stack.pop(), false)}, "Previous"),
      h("button", {type: "button", disabled: !next, onclick: () => go(next, true)}, "Next")));
  };
  return go("", false);
}

function show(...kids) {
  main.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false));
  const title = main.querySelector("h1");
  document.title = (title ? title.textContent + " · " : "") + "Den";
  main.focus();
}

// -- views --------------------------------------------------------------------------------------

async function resources(params) {
  const scope = params.get("scope") || "mine";
  const q = params.get("q") || "";
  const type = params.get("type") || "";
  const group = params.get("group") || "";
  const groups = state.me.groups.map((g) => g.name);
  const titles = {mine: "My resources", shared: "Shared with me", group: `Resources of group ${group}`};
  const typeSel = h("select", {name: "type"}, h("option", {value: ""}, "any type"),
    TYPES.map((t) => h("option", {value: t, selected: t === type}, t)));
  const search = h("input", {type: "search", name: "q", value: q, maxlength: 128});
  const groupSel = h("select", {name: "group"}, groups.map((g) => h("option", {value: g, selected: g === group}, g)));
  const form = h("form", {role: "search", class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const p = new URLSearchParams({scope});
    if (search.value) p.set("q", search.value);
    if (typeSel.value) p.set("type", typeSel.value);
    if (scope === "group") p.set("group", groupSel.value);
    location.hash = "#/resources?" + p;
  }},
    field("Name contains", search), field("Type", typeSel),
    scope === "group" ? field("Group", groupSel) : null,
    h("button", {type: "submit"}, "Filter"));
  const tabs = h("nav", {class: "tabs", "aria-label": "Whose resources"},
    [["mine", "Mine"], ["shared", "Shared with me"], ["group", "A group's"]].map(([s, label]) =>
      h("a", {href: s === "group" ? `#/resources?scope=group&group=${encodeURIComponent(groups[0] || "")}` : `#/resources?scope=${s}`,
        "aria-current": s === scope ? "page" : null}, label)));
  const table = h("div", {id: "list"}, h("p", {}, "Loading…"));
  show(h("h1", {}, titles[scope] || titles.mine), tabs, form, table);
  if (scope === "group" && !groups.length) {
    table.replaceChildren(h("p", {}, "You belong to no group yet: make one under Groups."));
    return;
  }
  await paged(table, async (cursor) => {
    const query = new URLSearchParams({limit: "50"});
    if (scope === "mine") query.set("owner", state.me.name);
    if (scope === "shared") query.set("shared", "true");
    if (scope === "group") query.set("owner", group || groups[0]);
    if (q) query.set("q", q);
    if (type) query.set("type", type);
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", "/resources?" + query);
    const rows = page.items.map((r) => h("tr", {},
      h("th", {scope: "row"}, resLink(r.name)), h("td", {}, r.type), h("td", {class: "num"}, r.version),
      h("td", {}, when(r.updated_at)), h("td", {}, r.access)));
    return [rows.length ? h("table", {class: "grid"},
      h("caption", {class: "sr-only"}, titles[scope] || titles.mine),
      h("thead", {}, h("tr", {}, ["Name", "Type", "Version", "Updated", "Your access"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, rows)) : h("p", {}, "Nothing here."), page.next_cursor];
  });
}

function clusterLink(config) {
  let url = config.gateway_url;
  if (!url && config.gateway_port) url = `http://127.0.0.1:${config.gateway_port}`;
  if (!url || !/^https?:\/\//.test(url)) return null;
  return h("p", {}, h("a", {href: url.replace(/\/$/, "") + "/ui", rel: "noopener noreferrer", target: "_blank"},
    "Open the live view"), " ", h("small", {class: "muted"}, `(the cluster's gateway, ${url}, when it runs and your browser reaches it)`));
}

async function resource(owner, name) {
  const path = `/resources/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
  const view = await api("GET", path + "?redact=true");
  const secret = view.type === "secret";
  const canWrite = view.access === "write" || view.access === "manage";
  const canManage = view.access === "manage";
  const facts = h("dl", {class: "facts"},
    h("dt", {}, "Type"), h("dd", {}, view.type),
    h("dt", {}, "Version"), h("dd", {}, `${view.version} (latest)`),
    h("dt", {}, "Saved by"), h("dd", {}, view.author),
    h("dt", {}, "Saved at"), h("dd", {}, when(view.created_at)),
    h("dt", {}, "Your access"), h("dd", {}, view.access),
    h("dt", {}, "Content hash"), h("dd", {}, h("code", {}, view.content_hash.slice(0, 16))),
    view.rollback_of ? [h("dt", {}, "Rolled back to"), h("dd", {}, `version ${view.rollback_of}`)] : null);
  const lineage = h("section", {"aria-labelledby": "lineage-h"}, h("h2", {id: "lineage-h"}, "Lineage"),
    view.lineage.length ? h("ul", {}, view.lineage.map((l) => h("li", {}, resLink(l.name, l.version))))
      : h("p", {class: "muted"}, "Made from no other saved resource."));
  const config = h("section", {"aria-labelledby": "config-h"}, h("h2", {id: "config-h"}, "Configuration"),
    secret ? [h("p", {}, "A secret's values are never shown here."),
      h("dl", {class: "facts"}, h("dt", {}, "Provider"), h("dd", {}, view.config.provider || "custom"),
        h("dt", {}, "Fields"), h("dd", {}, (view.config.fields || []).join(", ") || "none"))]
      : [readable(view.config),
        Object.keys(view.defaults || {}).length ? [h("h3", {}, "Group defaults it takes"), readable(view.defaults)] : null,
        h("details", {}, h("summary", {}, "As JSON"), h("pre", {}, JSON.stringify(sortedJSON(view.config), null, 2)))]);
  const history = h("section", {"aria-labelledby": "history-h"}, h("h2", {id: "history-h"}, "History"));
  const shares = h("section", {"aria-labelledby": "shares-h"}, h("h2", {id: "shares-h"}, "Shared with"));
  show(h("h1", {}, view.name), facts, view.type === "cluster" ? clusterLink(view.config) : null,
    config, lineage, history, shares);
  await drawHistory(history, path, view, secret, canWrite);
  await drawShares(shares, path, view, canManage);
}

async function drawHistory(section, path, view, secret, canWrite) {
  const versions = [];
  let next = null;
  const body = h("tbody");
  const diff = h("div", {id: "diff"});
  const more = h("button", {type: "button", class: "quiet", onclick: () => load()}, "Older versions");
  const load = async () => {
    const page = await api("GET", `${path}/history?limit=50${next ? "&cursor=" + next : ""}`);
    next = page.next_cursor;
    more.hidden = !next;
    for (const v of page.items) {
      versions.push(v);
      const n = v.version;
      body.append(h("tr", {},
        h("th", {scope: "row", class: "num"}, n),
        h("td", {}, v.author), h("td", {}, when(v.created_at)),
        h("td", {}, v.rollback_of ? `rollback to v${v.rollback_of}` : ""),
        secret ? null : h("td", {}, h("input", {type: "radio", name: "diff-a", value: n, "aria-label": `compare from version ${n}`, checked: n === view.version - 1 || null})),
        secret ? null : h("td", {}, h("input", {type: "radio", name: "diff-b", value: n, "aria-label": `compare to version ${n}`, checked: n === view.version || null})),
        h("td", {}, canWrite && n !== view.latest
          ? h("button", {type: "button", onclick: () => rollback(path, view, n)}, `Roll back to v${n}`) : "")));
    }
  };
  const compare = h("button", {type: "button", onclick: async () => {
    const a = section.querySelector("input[name=diff-a]:checked");
    const b = section.querySelector("input[name=diff-b]:checked");
    if (!a || !b) { say("Pick two versions to compare."); return; }
    const [va, vb] = await Promise.all([a.value, b.value].map((k) => api("GET", `${path}?version=${k}`)));
    diff.replaceChildren(sideBySide(va, vb));
    diff.querySelector("table").focus();
  }}, "Compare");
  section.append(
    h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Versions, newest first"),
      h("thead", {}, h("tr", {}, ["Version", "Saved by", "When", "Note", secret ? null : "From", secret ? null : "To", "Action"]
        .filter((c) => c !== null).map((c) => h("th", {scope: "col"}, c)))), body),
    more, secret ? h("p", {class: "muted"}, "Versions of a secret are not compared: values are never shown.") : compare, diff);
  await load();
}

function lines(config) {
  return JSON.stringify(sortedJSON(config), null, 2).split("\n");
}

// Side-by-side diff of two versions' configs: a longest-common-subsequence walk over lines.
function sideBySide(va, vb) {
  const a = lines(va.config), b = lines(vb.config);
  const n = a.length, m = b.length;
  const lcs = Array.from({length: n + 1}, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const rows = [];
  let i = 0, j = 0;
  const row = (left, right, kind) => rows.push(h("tr", {class: kind},
    h("td", {class: "ln"}, left === null ? "" : i), h("td", {class: kind === "add" ? "" : kind}, left === null ? "" : h("code", {}, left)),
    h("td", {class: "ln"}, right === null ? "" : j), h("td", {class: kind === "del" ? "" : kind}, right === null ? "" : h("code", {}, right))));
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { i++; j++; row(a[i - 1], b[j - 1], "same"); }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { j++; row(null, b[j - 1], "add"); }
    else { i++; row(a[i - 1], null, "del"); }
  }
  const changed = rows.filter((r) => r.className !== "same").length;
  return h("table", {class: "diff", tabindex: "-1"},
    h("caption", {}, `Version ${va.version} → version ${vb.version}: ${changed} line(s) differ`),
    h("thead", {}, h("tr", {}, h("th", {scope: "col", colspan: 2}, `Version ${va.version}`), h("th", {scope: "col", colspan: 2}, `Version ${vb.version}`))),
    h("tbody", {}, rows));
}

async function rollback(path, view, version) {
  const ok = await confirmAction(
    `Roll ${view.name} back to version ${version}? This saves a new version ${view.latest + 1} equal to version ${version}; nothing is lost.`,
    `Roll back to v${version}`);
  if (!ok) return;
  const made = await api("POST", `${path}/rollback`, {version});
  say(`Saved version ${made.version}, equal to version ${version}.`);
  await route();
}

async function drawShares(section, path, view, canManage) {
  const {shares} = await api("GET", `${path}/shares`);
  const rows = shares.map((s) => h("tr", {},
    h("th", {scope: "row"}, s.principal), h("td", {}, s.access_level), h("td", {}, s.granted_by), h("td", {}, when(s.created_at)),
    h("td", {}, canManage ? h("button", {type: "button", class: "danger", onclick: async () => {
      if (!await confirmAction(`Revoke ${s.principal}'s ${s.access_level} access to ${view.name}?`, "Revoke")) return;
      await api("DELETE", `${path}/shares/${encodeURIComponent(s.principal)}`);
      say(`Revoked ${s.principal}.`);
      await route();
    }}, `Revoke ${s.principal}`) : "")));
  section.append(rows.length ? h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Shares"),
    h("thead", {}, h("tr", {}, ["Who", "Access", "Granted by", "When", "Action"].map((c) => h("th", {scope: "col"}, c)))),
    h("tbody", {}, rows)) : h("p", {class: "muted"}, "Shared with nobody."));
  if (!canManage) return;
  const who = h("input", {type: "text", name: "principals", required: true, placeholder: "bob, @ml"});
  const level = h("select", {name: "access_level"}, h("option", {value: "read"}, "read"), h("option", {value: "write"}, "write"));
  section.append(h("form", {class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    const principals = who.value.split(/[\s,]+/).filter(Boolean);
    if (!principals.length) return;
    await api("POST", `${path}/shares`, {principals, access_level: level.value});
    say(`Shared with ${principals.join(", ")} (${level.value}).`);
    await route();
  }}, field("Share with (users, or @group)", who), field("Access", level), h("button", {type: "submit"}, "Share")));
}

async function groups() {
  const me = await api("GET", "/users/me");
  state.me = {...state.me, groups: me.groups};
  const name = h("input", {type: "text", name: "name", required: true, pattern: "[a-z0-9][a-z0-9_-]{0,63}"});
  const parent = h("select", {name: "parent"}, h("option", {value: ""}, "(top level)"),
    me.groups.filter((g) => g.role === "admin").map((g) => h("option", {value: g.name}, g.name)));
  show(h("h1", {}, "Groups"),
    me.groups.length ? h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Your groups"),
      h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Group"), h("th", {scope: "col"}, "Your role"))),
      h("tbody", {}, me.groups.map((g) => h("tr", {}, h("th", {scope: "row"}, h("a", {href: `#/g/${encodeURIComponent(g.name)}`}, g.name)), h("td", {}, g.role)))))
      : h("p", {}, "You belong to no group."),
    h("h2", {}, "Make a group"),
    h("form", {class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      await api("POST", "/groups", {name: name.value, parent: parent.value || null});
      location.hash = `#/g/${encodeURIComponent(name.value)}`;
    }}, field("Name", name), field("Inside", parent), h("button", {type: "submit"}, "Make group")));
}

async function group(gname) {
  const g = await api("GET", `/groups/${encodeURIComponent(gname)}`);
  const admin = g.your_role === "admin";
  const user = h("input", {type: "text", name: "user", required: true});
  const role = h("select", {name: "role"}, h("option", {value: "member"}, "member"), h("option", {value: "admin"}, "admin"));
  const defaults = h("textarea", {name: "defaults", rows: 6, spellcheck: "false"});
  defaults.value = JSON.stringify(g.defaults, null, 2);
  const path = `/groups/${encodeURIComponent(gname)}`;
  show(h("h1", {}, `Group ${g.name}`),
    h("dl", {class: "facts"},
      h("dt", {}, "Inside"), h("dd", {}, g.parent ? h("a", {href: `#/g/${encodeURIComponent(g.parent)}`}, g.parent) : "(top level)"),
      h("dt", {}, "Subgroups"), h("dd", {}, g.subgroups.length ? g.subgroups.map((s, i) => [i ? ", " : "", h("a", {href: `#/g/${encodeURIComponent(s)}`}, s)]) : "none"),
      h("dt", {}, "Your role"), h("dd", {}, g.your_role),
      h("dt", {}, "Resources"), h("dd", {}, h("a", {href: `#/resources?scope=group&group=${encodeURIComponent(g.name)}`}, `resources of ${g.name}`))),
    h("h2", {}, "Members"),
    h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Members"),
      h("thead", {}, h("tr", {}, ["Member", "Role", "Action"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, g.members.map((m) => h("tr", {}, h("th", {scope: "row"}, m.name), h("td", {}, m.role),
        h("td", {}, admin || m.name === state.me.name ? h("button", {type: "button", class: "danger", onclick: async () => {
          if (!await confirmAction(`Remove ${m.name} from ${g.name}?`, "Remove")) return;
          await api("DELETE", `${path}/members/${encodeURIComponent(m.name)}`);
          await route();
        }}, `Remove ${m.name}`) : ""))))),
    admin ? h("form", {class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      await api("PUT", `${path}/members/${encodeURIComponent(user.value)}`, {role: role.value});
      say(`${user.value} is a ${role.value} of ${g.name}.`);
      await route();
    }}, field("Add a user", user), field("Role", role), h("button", {type: "submit"}, "Add member")) : null,
    h("h2", {}, "Default settings"),
    h("p", {}, "What its resources load with unless their config says otherwise (nearest group wins)."),
    h("h3", {}, "Effective"), readable(g.effective_defaults),
    admin ? h("form", {onsubmit: async (e) => {
      e.preventDefault();
      let value;
      try { value = JSON.parse(defaults.value || "{}"); } catch (err) { say("Defaults must be a JSON object: " + err.message); return; }
      await api("PATCH", path, {defaults: value});
      say("Defaults saved.");
      await route();
    }}, field("This group's own defaults (JSON)", defaults), h("button", {type: "submit"}, "Save defaults")) : null);
}

async function secrets() {
  const section = h("div", {}, h("p", {}, "Loading…"));
  show(h("h1", {}, "Secrets"), h("p", {}, "Names, providers and who can use them. Values are never shown here."), section);
  await paged(section, async (cursor) => {
    const page = await api("GET", "/secrets?limit=50" + (cursor ? "&cursor=" + cursor : ""));
    return [page.items.length ? h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Secrets"),
      h("thead", {}, h("tr", {}, ["Secret", "Provider", "Fields", "Version", "Shared with"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, page.items.map((s) => h("tr", {}, h("th", {scope: "row"}, resLink(s.name)), h("td", {}, s.provider || "custom"),
        h("td", {}, s.fields.join(", ")), h("td", {class: "num"}, s.version),
        h("td", {}, s.shares.length ? s.shares.map((x) => `${x.principal} (${x.access_level})`).join(", ") : "only its owners")))))
      : h("p", {}, "No secrets you may read."), page.next_cursor];
  });
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hr}h` : hr ? `${hr}h ${m}m` : `${m}m ${s % 60}s`;
}

// Uptime and cost so far of an on-demand cluster, from when it was launched (and ended) and its
// hourly price for all its nodes: what the registry knows, nothing asked of the cloud.
function clusterFigures(c, now) {
  if (!c.launched_at) return {uptime: "—", cost: "—"};
  const end = c.ended_at || now;
  const seconds = end - c.launched_at;
  const cost = typeof c.hourly_price === "number" ? `$${(c.hourly_price * seconds / 3600).toFixed(2)}` : "unknown price";
  return {uptime: duration(seconds), cost};
}

async function clusters() {
  const section = h("div", {}, h("p", {}, "Loading…"));
  show(h("h1", {}, "Clusters"),
    h("p", {}, "Every saved cluster you may read. Uptime and cost so far count from launch, at the hourly price known when it was allocated."),
    section);
  await paged(section, async (cursor) => {
    const page = await api("GET", "/resources?type=cluster&limit=50" + (cursor ? "&cursor=" + cursor : ""));
    const now = Date.now() / 1000;
    return [page.items.length ? h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Clusters"),
      h("thead", {}, h("tr", {}, ["Cluster", "Kind", "Status", "Nodes", "Machines", "Uptime", "Cost so far", "Live view"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, page.items.map((r) => {
        const c = r.cluster || {};
        const figures = clusterFigures(c, now);
        const machines = [c.instance_type, c.size && c.size !== c.instance_type ? `(${c.size})` : null,
          c.provider ? `on ${c.provider}${c.region ? " " + c.region : ""}` : null].filter(Boolean).join(" ") || "—";
        return h("tr", {}, h("th", {scope: "row"}, resLink(r.name)), h("td", {}, c.kind || "—"),
          h("td", {}, c.status || "—"), h("td", {class: "num"}, c.nodes ?? "—"), h("td", {}, machines),
          h("td", {}, figures.uptime), h("td", {class: "num"}, figures.cost),
          h("td", {}, clusterLink(c) || "—"));
      })))
      : h("p", {}, "No saved clusters you may read."), page.next_cursor];
  });
}

function tokenOnce(token, who) {
  return h("div", {class: "once", role: "alert"},
    h("p", {}, `The token for ${who}, shown this once: copy it now.`),
    h("output", {class: "token"}, token));
}

async function tokens(user) {
  const other = user && user !== state.me.name;
  const page = await api("GET", "/tokens?limit=200" + (other ? "&user=" + encodeURIComponent(user) : ""));
  const name = h("input", {type: "text", name: "name", required: true, maxlength: 64});
  const made = h("div");
  const title = other ? `Tokens of ${user}` : "Your tokens";
  show(h("h1", {}, title),
    h("table", {class: "grid"}, h("caption", {class: "sr-only"}, title),
      h("thead", {}, h("tr", {}, ["Name", "Made", "Last used", "Revoked", "Action"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, page.items.map((t) => h("tr", {}, h("th", {scope: "row"}, t.name), h("td", {}, when(t.created_at)),
        h("td", {}, when(t.last_used_at)), h("td", {}, t.revoked_at ? when(t.revoked_at) : "no"),
        h("td", {}, t.revoked_at ? "" : h("button", {type: "button", class: "danger", onclick: async () => {
          if (!await confirmAction(`Revoke ${other ? user + "'s" : ""} token "${t.name}"? Whatever uses it is refused from its next request${other ? "" : " (this page too, if you signed in with it)"}.`, "Revoke")) return;
          await api("DELETE", `/tokens/${t.id}`);
          await route();
        }}, `Revoke ${t.name}`)))))),
    // Tokens are made by their owner only: an admin revokes others', never mints them.
    other ? null : h("h2", {}, "Make a token"),
    other ? null : h("form", {class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const t = await api("POST", "/tokens", {name: name.value});
      await route();
      main.append(tokenOnce(t.token, state.me.name));
    }}, field("Name", name), h("button", {type: "submit"}, "Make token")), made);
}

async function users() {
  const section = h("div");
  const name = h("input", {type: "text", name: "name", required: true, pattern: "[a-z0-9][a-z0-9_-]{0,63}"});
  const admin = h("input", {type: "checkbox", name: "admin"});
  const made = h("div");
  show(h("h1", {}, "Users"), section,
    h("h2", {}, "Make a user"),
    h("form", {class: "inline", onsubmit: async (e) => {
      e.preventDefault();
      const u = await api("POST", "/users", {name: name.value, admin: admin.checked});
      made.replaceChildren(tokenOnce(u.token, u.user.name));
      await load();
    }}, field("Name", name), h("div", {class: "field check"}, admin, h("label", {for: admin.id = "new-admin"}, "server admin")),
      h("button", {type: "submit"}, "Make user")), made);
  const load = () => paged(section, async (cursor) => {
    const page = await api("GET", "/users?limit=50" + (cursor ? "&cursor=" + cursor : ""));
    return [h("table", {class: "grid"}, h("caption", {class: "sr-only"}, "Users"),
      h("thead", {}, h("tr", {}, ["User", "Server admin", "Made", "Live tokens", "Last used"].map((c) => h("th", {scope: "col"}, c)))),
      h("tbody", {}, page.items.map((u) => h("tr", {}, h("th", {scope: "row"}, u.name), h("td", {}, u.admin ? "yes" : "no"),
        h("td", {}, when(u.created_at)),
        h("td", {class: "num"}, h("a", {href: `#/tokens/${encodeURIComponent(u.name)}`, "aria-label": `${u.name}'s tokens`}, String(u.tokens))),
        h("td", {}, when(u.last_used_at)))))),
      page.next_cursor];
  });
  await load();
}

// -- routing ------------------------------------------------------------------------------------

async function route() {
  const hash = location.hash.slice(1) || "/resources";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const a of document.querySelectorAll("header nav a")) {
    const target = a.getAttribute("href").slice(1);
    a.toggleAttribute("aria-current", target === hash || (target === "/resources" && hash === "/resources?scope=mine"));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  try {
    if (parts[0] === "r" && parts.length === 3) await resource(parts[1], parts[2]);
    else if (parts[0] === "groups") await groups();
    else if (parts[0] === "g" && parts.length === 2) await group(parts[1]);
    else if (parts[0] === "secrets") await secrets();
    else if (parts[0] === "clusters") await clusters();
    else if (parts[0] === "tokens") await tokens(parts[1]);
    else if (parts[0] === "users") await users();
    else await resources(new URLSearchParams(query || ""));
  } catch (e) {
    show(h("h1", {}, "Something went wrong"), h("p", {class: "error", role: "alert"}, e.message));
  }
}

async function start() {
  const session = await api("GET", "/session");
  const me = await api("GET", "/users/me");
  state.csrf = session.csrf;
  state.me = {name: me.name, admin: me.admin, groups: me.groups};
  document.getElementById("who").textContent = `Signed in as ${me.name}`;
  document.getElementById("nav-users").hidden = !me.admin;
  document.getElementById("signout").addEventListener("click", async () => {
    await api("DELETE", "/session");
    location.assign("/signin");
  });
  window.addEventListener("hashchange", () => { route(); });
  await route();
}

start();
