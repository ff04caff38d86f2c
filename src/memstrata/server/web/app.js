// memstrata's web page: browse, search and inspect a memory store through the /v1 REST API.
// No framework, no build step. Every piece of stored text reaches the page through
// textContent, never as HTML, so a memory cannot inject markup or script.

const LAYERS = ["episode", "note", "topic", "profile fact"];
const PAGE_SIZE = 50;
const SNIPPET = 240;
const KEY_ITEM = "memstrata.key";

const state = { key: sessionStorage.getItem(KEY_ITEM) || "", scopes: [], scope: null, cursor: null, selected: null };
const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (name === "class") node.className = value;
    else if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function clip(text, n = SNIPPET) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function day(iso) {
  return iso ? iso.slice(0, 10) : "";
}

function layerBadge(layer) {
  return el("span", { class: `layer layer-${layer}`, title: LAYERS[layer] }, `L${layer}`);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

/** Requests in flight, on <body data-pending> (0 when the page is idle; tests wait for it). */
function pending(change) {
  const body = document.body;
  body.dataset.pending = String(Number(body.dataset.pending || 0) + change);
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** One call to the REST API; failures raise ApiError with the server's message. */
async function api(method, path, { query = {}, body } = {}) {
  const url = new URL("/v1" + path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(name, v);
  }
  const headers = {};
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  pending(+1);
  let response, data;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    data = await response.json().catch(() => null);
  } finally {
    pending(-1);
  }
  if (!response.ok) {
    const error = data && data.error;
    const where = error && error.field ? ` (${error.field})` : "";
    throw new ApiError(response.status, error ? `${error.message}${where}` : `HTTP ${response.status}`);
  }
  return data;
}

/** Run an action, showing its error (if any) in the alert box. */
async function guarded(action) {
  try {
    showError("");
    await action();
  } catch (error) {
    showError(error.message || String(error));
  }
}

function scopeQuery() {
  return { user_id: state.scope.user_id, agent_id: state.scope.agent_id };
}

function scopeLabel(scope) {
  return [scope.user_id && `user ${scope.user_id}`, scope.agent_id && `agent ${scope.agent_id}`].filter(Boolean).join(" · ");
}

// ------------------------------------------------------------------ connect and scope

async function connect() {
  state.key = $("key").value.trim();
  if (state.key) sessionStorage.setItem(KEY_ITEM, state.key);
  else sessionStorage.removeItem(KEY_ITEM);
  const { scopes } = await api("GET", "/scopes");
  state.scopes = scopes;
  const select = $("scope");
  select.replaceChildren(...scopes.map((s, i) => el("option", { value: i }, scopeLabel(s))));
  $("scopebar").hidden = false;
  if (!scopes.length) {
    $("workspace").hidden = true;
    $("stats").textContent = "No memories in this store for this key yet.";
    return;
  }
  $("workspace").hidden = false;
  await chooseScope(0);
}

async function chooseScope(index) {
  state.scope = state.scopes[index];
  $("inspector").replaceChildren(el("p", { class: "muted" }, "Select a memory to inspect it."));
  const stats = await api("GET", "/stats", { query: scopeQuery() });
  const parts = Object.entries(stats.records || {}).map(
    ([layer, byStatus]) => `${layer} ${Object.values(byStatus).reduce((a, b) => a + b, 0)}`
  );
  $("stats").textContent = parts.join(" · ");
  await browse(true);
}

// ------------------------------------------------------------------ browse

function recordRow(record, onclick, extra = []) {
  const who = record.speaker || (record.entities || [])[0] || "";
  const inactive = record.status !== "active";
  return el(
    "tr",
    { "data-id": record.id, onclick },
    el("td", {}, layerBadge(record.layer)),
    ...extra,
    el("td", {}, day(record.event_time)),
    el("td", {}, who),
    el("td", { class: "memory" + (inactive ? " inactive" : "") }, clip(record.content)),
    el("td", {}, record.status)
  );
}

async function browse(fresh) {
  if (fresh) {
    state.cursor = null;
    $("browse-rows").replaceChildren();
  }
  const layers = [...$("layers").querySelectorAll("input:checked")].map((box) => box.value);
  const page = await api("GET", "/memories", {
    query: { ...scopeQuery(), layers, session_id: $("session").value.trim(), limit: PAGE_SIZE, cursor: state.cursor },
  });
  $("browse-rows").append(...page.items.map((r) => recordRow(r, () => guarded(() => inspect(r.id)))));
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
}

// ------------------------------------------------------------------ search and context

async function search() {
  const { hits } = await api("POST", "/search", {
    body: { ...scopeQuery(), query: $("query").value, limit: Number($("limit").value), reinforce: false },
  });
  const rows = hits.map((hit) => {
    const found = Object.entries(hit.ranks).map(([by, rank]) => `${by} #${rank}`).join(", ");
    const r = hit.record;
    return el(
      "tr",
      { "data-id": r.id, onclick: () => guarded(() => inspect(r.id, hit)) },
      el("td", {}, hit.score.toFixed(4)),
      el("td", {}, layerBadge(r.layer)),
      el("td", { class: "memory" }, clip(r.content)),
      el("td", {}, found),
      el("td", {}, `${hit.provenance.length} turn${hit.provenance.length === 1 ? "" : "s"}`)
    );
  });
  $("search-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5 }, "Nothing found."))]));
}

async function buildContext() {
  const block = await api("POST", "/context", {
    body: { ...scopeQuery(), query: $("context-query").value, budget_tokens: Number($("budget").value), reinforce: false },
  });
  $("context-meta").textContent = `${block.lines.length} lines, ${block.tokens} of ${block.budget_tokens} tokens`;
  $("context-text").textContent = block.text;
  $("context-lines").replaceChildren(
    ...block.lines.map((line) =>
      el(
        "li",
        {},
        layerBadge(line.layer),
        " ",
        clip(line.text),
        " ",
        el("a", { class: "ref", "data-id": line.record_id, onclick: () => guarded(() => inspect(line.record_id)) }, "inspect"),
        el("span", { class: "muted" }, ` from ${line.provenance.length} turn${line.provenance.length === 1 ? "" : "s"}`)
      )
    )
  );
}

// ------------------------------------------------------------------ inspector

function field(name, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) return [];
  if (typeof value === "object" && !Array.isArray(value)) {
    if (!Object.keys(value).length) return [];
    value = JSON.stringify(value);
  }
  return [el("dt", {}, name), el("dd", {}, Array.isArray(value) ? value.join(", ") : String(value))];
}

async function referenceList(ids) {
  // Each referenced memory with a snippet of its text; one that is gone (deleted) says so.
  const items = await Promise.all(
    ids.map(async (id) => {
      try {
        const r = await api("GET", `/memories/${encodeURIComponent(id)}`, { query: scopeQuery() });
        const who = r.speaker ? `${r.speaker}: ` : "";
        return el("li", {}, layerBadge(r.layer), " ",
          el("a", { class: "ref", "data-id": id, onclick: () => guarded(() => inspect(id)) }, `${who}${clip(r.content, 160)}`),
          el("span", { class: "muted" }, ` ${day(r.event_time)}`));
      } catch (error) {
        if (error.status !== 404) throw error;
        return el("li", { class: "muted" }, `${id} (no longer stored)`);
      }
    })
  );
  return el("ul", { class: "refs" }, items);
}

async function inspect(id, hit = null) {
  const record = await api("GET", `/memories/${encodeURIComponent(id)}`, { query: scopeQuery() });
  const { events } = await api("GET", `/memories/${encodeURIComponent(id)}/history`, { query: scopeQuery() });
  state.selected = record;
  for (const row of document.querySelectorAll("tr.selected")) row.classList.remove("selected");
  for (const row of document.querySelectorAll(`tr[data-id="${CSS.escape(id)}"]`)) row.classList.add("selected");
  const parts = [
    el("h2", {}, layerBadge(record.layer), ` ${LAYERS[record.layer]} `, el("span", { class: "muted", id: "inspected-id" }, record.id)),
    el("p", { class: "content", id: "inspected-content" }, record.content),
    el("dl", {},
      field("kind", record.kind), field("status", record.status), field("speaker", record.speaker), field("role", record.role),
      field("session", record.session_id), field("when", record.event_time), field("stored", record.created_at),
      field("valid from", record.valid_from), field("valid to", record.valid_to), field("slot", record.slot),
      field("entities", record.entities), field("keywords", record.keywords),
      field("importance", record.importance), field("strength", record.strength?.toFixed(3)),
      field("last used", record.last_access), field("pinned", record.pinned ? "yes" : null), field("metadata", record.metadata)),
  ];
  if (record.sources.length) {
    parts.push(el("h3", {}, `Made from (${record.sources.length})`), await referenceList(record.sources));
  }
  if (hit && hit.provenance.length && hit.provenance.join() !== record.sources.join()) {
    parts.push(el("h3", {}, `Traces back to (${hit.provenance.length} turns)`), await referenceList(hit.provenance));
  }
  parts.push(
    el("h3", {}, "History"),
    el("table", { class: "records", id: "history" },
      el("thead", {}, el("tr", {}, el("th", {}, "event"), el("th", {}, "at"), el("th", {}, "by"), el("th", {}, "change"))),
      el("tbody", {}, events.map((e) => el("tr", {},
        el("td", {}, e.event), el("td", {}, e.at), el("td", {}, e.actor),
        el("td", {}, e.old_content && e.new_content && e.old_content !== e.new_content ? `${clip(e.old_content, 120)} → ${clip(e.new_content, 120)}` : ""))))),
    el("p", {}, el("button", { class: "danger", id: "delete", onclick: () => guarded(() => remove(record)) }, "Delete this memory"))
  );
  $("inspector").replaceChildren(...parts);
}

async function remove(record) {
  const what = record.layer === 0 ? "This erases the episode and everything derived only from it." : "This erases the memory from every layer and index.";
  if (!confirm(`Delete ${LAYERS[record.layer]} ${record.id}? ${what}`)) return;
  await api("DELETE", `/memories/${encodeURIComponent(record.id)}`, { query: scopeQuery() });
  await chooseScope(state.scopes.indexOf(state.scope));
  $("inspector").replaceChildren(el("p", { id: "deleted" }, `Deleted ${record.id}.`));
}

// ------------------------------------------------------------------ wiring

function selectTab(name) {
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of document.querySelectorAll(".tab")) panel.hidden = panel.id !== `tab-${name}`;
}

function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(action);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("key").value = state.key;
  onSubmit("connect", connect);
  onSubmit("browse-form", () => browse(true));
  onSubmit("search-form", search);
  onSubmit("context-form", buildContext);
  $("more").addEventListener("click", () => guarded(() => browse(false)));
  $("scope").addEventListener("change", (event) => guarded(() => chooseScope(Number(event.target.value))));
  for (const tab of document.querySelectorAll("#tabs button")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  api("GET", "/version").then((v) => ($("version").textContent = `v${v.version}`)).catch(() => {});
  connect().catch((error) =>
    showError(error.status === 401 ? "This server needs an API key: paste one above and press Connect." : error.message)
  );
});
