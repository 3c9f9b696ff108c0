// proact admin: a small front end on the admin's JSON API (see services/admin/ui.py for why).
// Every page is drawn from the path; the API key stays in this tab's sessionStorage.

const KEY = "proact.admin.key";
const main = document.getElementById("main");
const statusLine = document.getElementById("status");

// --- helpers ---------------------------------------------------------------------------------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const say = (text) => { statusLine.textContent = text; };
const fill = (el, ...children) => el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const ROLES = ["viewer", "marketer", "publisher", "admin"];
let me = null;
const may = (role) => me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  if (!key) return toLogin();
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) return toLogin();
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}
function toLogin() {
  sessionStorage.removeItem(KEY);
  location.assign(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  return new Promise(() => {});
}
function page(title, ...children) {
  document.title = `${title} · proact admin`;
  fill(main, h("h1", {}, title), ...children);
  const links = [...document.querySelectorAll("header nav a:not(.brand)")];
  const best = links.filter((a) => location.pathname.startsWith(a.getAttribute("href")))
    .sort((a, b) => b.getAttribute("href").length - a.getAttribute("href").length)[0];
  for (const a of links) a.toggleAttribute("aria-current", a === best);
  if (best) best.setAttribute("aria-current", "page");
}
function errorList(errors) {
  const line = (e) => (e.field && !String(e.message).startsWith(e.field) ? `${e.field}: ${e.message}` : e.message);
  return h("ul", { class: "errors", role: "alert" }, errors.map((e) => h("li", {}, line(e))));
}
function table(head, rows, numeric = []) {
  return h("table", {},
    h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { scope: "col", class: numeric.includes(i) ? "num" : null }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : null }, c))))));
}
const card = (label, value) => h("div", { class: "card" }, label, h("b", {}, value));

// durations: ISO 8601 <-> a number and a unit, so nobody types "P3D"
const UNITS = [["days", 86400, "D"], ["hours", 3600, "H"], ["minutes", 60, "M"], ["seconds", 1, "S"]];
function isoSeconds(iso) {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(iso || "");
  return m ? (+(m[1] || 0)) * 86400 + (+(m[2] || 0)) * 3600 + (+(m[3] || 0)) * 60 + (+(m[4] || 0)) : null;
}
function durationInput(label, iso, onChange, field) {
  const seconds = isoSeconds(iso);
  const unit = UNITS.find(([, s]) => seconds && seconds % s === 0) || UNITS[0];
  const number = h("input", { type: "number", min: "1", step: "1", value: seconds ? seconds / unit[1] : "", "aria-label": `${label}: how many`, "data-field": field });
  const select = h("select", { "aria-label": `${label}: unit` }, UNITS.map(([name]) => h("option", { value: name, selected: name === unit[0] }, name)));
  const emit = () => {
    const [, , letter] = UNITS.find(([n]) => n === select.value);
    const n = number.value;
    onChange(n ? (letter === "D" ? `P${n}D` : `PT${n}${letter}`) : null);
  };
  number.addEventListener("input", emit);
  select.addEventListener("change", emit);
  return h("span", { class: "duration" }, h("label", {}, label, h("span", {}, number, " ", select)));
}
function debounce(fn, ms = 300) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// --- login -----------------------------------------------------------------------------------
function loginPage() {
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true });
  const problem = h("p", { class: "errors", role: "alert" });
  const form = h("form", { class: "login" },
    h("p", {}, "Sign in with your proact API key. It stays in this browser tab only."),
    h("label", {}, "API key", input), h("div", { class: "actions" }, h("button", { type: "submit", id: "sign-in" }, "Sign in")), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const res = await fetch("/v1/me", { headers: { Authorization: `Bearer ${input.value.trim()}` } });
    if (!res.ok) { problem.textContent = "This key is not accepted."; input.setAttribute("aria-invalid", "true"); input.focus(); return; }
    sessionStorage.setItem(KEY, input.value.trim());
    const next = new URLSearchParams(location.search).get("next");
    location.assign(next && next.startsWith("/ui/") ? next : "/ui/overview");
  });
  page("Sign in", form);
  input.focus();
}

// --- rules -----------------------------------------------------------------------------------
async function rulesPage() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams([...params].filter(([, v]) => v));
  const rules = await api("GET", `/v1/rules?${query}`);
  const choice = (name, label, options) => h("label", {}, label, h("select", { name },
    options.map(([value, text]) => h("option", { value, selected: (params.get(name) || "") === value }, text))));
  const filters = h("form", { method: "get", role: "search", "aria-label": "Filter the rules" },
    h("label", {}, "Name or id contains", h("input", { name: "q", value: params.get("q") || "" })),
    choice("status", "Status", [["", "any"], ["published", "in force"], ["draft", "with a draft"]]),
    choice("enabled", "Switched", [["", "on or off"], ["true", "on"], ["false", "off"]]),
    choice("trigger", "Trigger", [["", "any"], ["event", "event"], ["delay", "delay"], ["absence", "absence"], ["score", "score"], ["session", "session (pop-up)"]]),
    h("button", { type: "submit" }, "Filter"));
  page("Rules",
    h("p", { class: "muted" }, "What proact sends, when and to whom. A saved edit is a draft until it is published."),
    filters, h("div", { class: "actions" }, h("a", { href: "/ui/rules/new" }, "New rule")),
    table(["Rule", "Name", "In force", "Draft", "Triggers", ""], rules.map((r) => {
      const shown = r.draft || r.published;
      return [
        h("a", { href: `/ui/rules/${r.rule_id}` }, r.rule_id),
        shown ? shown.name : "",
        r.published ? `v${r.published.version}${r.published.enabled ? "" : " (off)"}` : "–",
        r.draft ? `v${r.draft.version}` : "–",
        shown ? shown.triggers.join(", ") : "",
        h("span", {}, h("a", { href: `/ui/rules/${r.rule_id}/results` }, "results"), " · ",
          h("a", { href: `/ui/rules/${r.rule_id}/backtests` }, "back-tests")),
      ];
    })));
}

const OPERATORS = ["==", "!=", ">", ">=", "<", "<="];
const SIMPLE = /^([a-z_][a-z0-9_.]*) (==|!=|>=|<=|>|<) ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)$/;
function literal(text) {
  return /^(-?\d+(\.\d+)?|true|false|null)$/.test(text.trim()) ? text.trim() : JSON.stringify(text);
}

async function ruleEditor(ruleId) {
  const [versions, vocabulary, templates] = await Promise.all([
    ruleId === "new" ? [] : api("GET", `/v1/rules/${ruleId}`),
    api("GET", "/v1/rules/vocabulary"),
    api("GET", "/v1/templates"),
  ]);
  const newest = versions[0];
  let rule = newest ? structuredClone(newest.rule) : {
    rule_id: "", name: "", description: "", enabled: true,
    triggers: [{ kind: "event", event: "order.delivered" }], conditions: [],
    action: { channel: "preferred", template_id: "checkin", priority: 50, context: {} }, guards: {},
  };
  delete rule.version;
  const errorsBox = h("div", { id: "rule-errors", "aria-live": "polite" });
  const raw = h("textarea", { class: "raw", id: "raw-json", "aria-label": "The rule as JSON", spellcheck: "false" });
  const form = h("form", { id: "rule-form", novalidate: true });
  const eventOptions = (selected) => vocabulary.event_types.map((t) => h("option", { value: t, selected: t === selected }, t));

  const validate = debounce(async () => {
    raw.value = JSON.stringify(rule, null, 2);
    const found = await api("POST", "/v1/rules/validate", rule);
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    if (found.valid) { errorsBox.replaceChildren(h("p", { class: "ok" }, "✓ The rule is valid.")); return; }
    errorsBox.replaceChildren(errorList(found.errors));
    for (const e of found.errors) {
      const el = form.querySelector(`[data-field="${CSS.escape(e.field)}"]`) || form.querySelector(`[data-field^="${CSS.escape(e.field)}"]`);
      if (el) el.setAttribute("aria-invalid", "true");
    }
  });
  const changed = () => validate();
  const bind = (el, set) => { el.addEventListener("input", () => { set(el.type === "checkbox" ? el.checked : el.value); changed(); }); el.addEventListener("change", () => { set(el.type === "checkbox" ? el.checked : el.value); changed(); }); return el; };

  function draw() {
    const basics = h("fieldset", {}, h("legend", {}, "Rule"),
      h("label", {}, "Rule id (a new id saves a new rule)", bind(h("input", { id: "rule-id", value: rule.rule_id, "data-field": "rule_id", pattern: "[a-z0-9][a-z0-9-]{1,62}" }), (v) => { rule.rule_id = v; })),
      h("label", {}, "Name", bind(h("input", { id: "rule-name", value: rule.name, size: 40, "data-field": "name" }), (v) => { rule.name = v; })),
      h("label", { class: "inline" }, bind(h("input", { type: "checkbox", id: "rule-enabled", checked: rule.enabled }), (v) => { rule.enabled = v; }), "Enabled"),
      h("label", {}, "Description", bind(h("textarea", { "data-field": "description" }, rule.description || ""), (v) => { rule.description = v; })));

    const triggers = h("fieldset", { id: "triggers" }, h("legend", {}, "Triggers (any of them starts an evaluation)"),
      rule.triggers.map((t, i) => {
        const f = `triggers.${i}`;
        const kind = bind(h("select", { "aria-label": `Trigger ${i + 1}: kind`, "data-field": `${f}.kind` },
          ["event", "delay", "absence", "score", "session"].map((k) => h("option", { value: k, selected: k === t.kind }, k))),
        (v) => { rule.triggers[i] = { kind: v, ...(v === "event" ? { event: "order.delivered" } : v === "delay" ? { after: "order.delivered", delay: "P3D" } : v === "absence" ? { after: "order.placed", absent: ["order.shipped"], delay: "P2D" } : v === "score" ? { score: "churn", at_least: 0.7 } : {}) }; draw(); });
        const parts = [kind];
        if (t.kind === "event") parts.push(h("label", {}, "When", bind(h("select", { "data-field": `${f}.event` }, eventOptions(t.event)), (v) => { t.event = v; })));
        if (t.kind === "delay" || t.kind === "absence") parts.push(h("label", {}, "After", bind(h("select", { "data-field": `${f}.after` }, eventOptions(t.after)), (v) => { t.after = v; })));
        if (t.kind === "delay") parts.push(durationInput("Wait", t.delay, (v) => { t.delay = v; changed(); }, `${f}.delay`));
        if (t.kind === "absence") {
          parts.push(h("label", {}, "Unless one of (comma-separated)", bind(h("input", { value: (t.absent || []).join(", "), size: 36, "data-field": `${f}.absent` }), (v) => { t.absent = v.split(",").map((s) => s.trim()).filter(Boolean); })));
          if (t.deadline_field) parts.push(h("label", {}, "By the event's date field", bind(h("input", { value: t.deadline_field, "data-field": `${f}.deadline_field` }), (v) => { t.deadline_field = v || null; })));
          else parts.push(durationInput("Within", t.delay, (v) => { t.delay = v; changed(); }, `${f}.delay`));
        }
        if (t.kind === "score") {
          parts.push(h("label", {}, "Churn score at least", bind(h("input", { type: "number", step: "0.05", min: 0, max: 1, value: t.at_least ?? "", "data-field": `${f}.at_least` }), (v) => { t.at_least = v === "" ? null : +v; })));
          parts.push(h("label", {}, "and below", bind(h("input", { type: "number", step: "0.05", min: 0, max: 1, value: t.below ?? "", "data-field": `${f}.below` }), (v) => { t.below = v === "" ? null : +v; })));
        }
        parts.push(h("button", { type: "button", class: "danger", "aria-label": `Remove trigger ${i + 1}`, onclick: () => { rule.triggers.splice(i, 1); draw(); } }, "Remove"));
        return h("div", { class: "row" }, parts);
      }),
      h("button", { type: "button", class: "secondary", onclick: () => { rule.triggers.push({ kind: "event", event: "order.delivered" }); draw(); } }, "Add trigger"));

    const conditions = h("fieldset", { id: "conditions" }, h("legend", {}, "Conditions (all must hold)"),
      h("datalist", { id: "fields" }, vocabulary.fields.map((f) => h("option", { value: f }))),
      rule.conditions.map((c, i) => {
        const f = `conditions.${i}`;
        const m = SIMPLE.exec(c.expr.trim());
        const parts = [];
        if (m && !c.raw) {
          const state = { left: m[1], op: m[2], right: m[3].startsWith('"') ? JSON.parse(m[3]) : m[3] };
          const emit = () => { c.expr = `${state.left} ${state.op} ${literal(state.right)}`; changed(); };
          parts.push(
            h("label", {}, "Fact", bind(h("input", { list: "fields", value: state.left, size: 24, "data-field": `${f}.expr` }), (v) => { state.left = v; emit(); })),
            h("label", {}, "is", bind(h("select", {}, OPERATORS.map((o) => h("option", { value: o, selected: o === state.op }, o))), (v) => { state.op = v; emit(); })),
            h("label", {}, "Value", bind(h("input", { value: state.right, size: 16 }), (v) => { state.right = v; emit(); })),
            h("button", { type: "button", class: "secondary", onclick: () => { c.raw = true; draw(); } }, "Edit as CEL"));
        } else {
          parts.push(h("label", {}, "CEL expression", bind(h("input", { value: c.expr, size: 60, "data-field": `${f}.expr` }), (v) => { c.expr = v; })));
        }
        parts.push(h("label", {}, "In plain words", bind(h("input", { value: c.description || "", size: 30 }), (v) => { c.description = v || null; })));
        parts.push(h("button", { type: "button", class: "danger", "aria-label": `Remove condition ${i + 1}`, onclick: () => { rule.conditions.splice(i, 1); draw(); } }, "Remove"));
        return h("div", { class: "row" }, parts);
      }),
      h("button", { type: "button", class: "secondary", onclick: () => { rule.conditions.push({ expr: 'order.status == "delivered"' }); draw(); } }, "Add condition"));

    const a = rule.action;
    const action = h("fieldset", {}, h("legend", {}, "Message"),
      h("label", {}, "Channel", bind(h("select", { "data-field": "action.channel" }, vocabulary.channels.map((c) => h("option", { value: c, selected: c === a.channel }, c))), (v) => { a.channel = v; })),
      h("label", {}, "Template", bind(h("select", { "data-field": "action.template_id" }, templates.map((t) => h("option", { value: t.template_id, selected: t.template_id === a.template_id }, t.template_id))), (v) => { a.template_id = v; })),
      h("label", {}, "Priority (0–100)", bind(h("input", { type: "number", min: 0, max: 100, value: a.priority ?? 50, "data-field": "action.priority" }), (v) => { a.priority = +v; })),
      h("label", {}, "If that channel cannot be used", bind(h("select", { id: "action-fallback", "data-field": "action.fallback" },
        [["preferred", "use the customer's preferred channel"], ["suppress", "send nothing"]].map(([v, t]) => h("option", { value: v, selected: v === (a.fallback || "suppress") }, t))), (v) => { a.fallback = v; })),
      contextEditor(a, changed));

    const g = rule.guards = rule.guards || {};
    const quiet = g.quiet_hours || null;
    const guards = h("fieldset", { id: "guards" }, h("legend", {}, "Guards"),
      h("label", {}, "Hold-out group (% of customers, for uplift)", bind(h("input", { type: "number", min: 0, max: 50, step: 1, value: g.holdout_pct ?? 0, "data-field": "guards.holdout_pct" }), (v) => { g.holdout_pct = +v; })),
      h("label", {}, "Sent again", bind(h("select", { "data-field": "guards.reeligibility" }, vocabulary.reeligibility.map((m) => h("option", { value: m, selected: m === ((g.reeligibility || {}).mode || "always") }, m))), (v) => { g.reeligibility = v === "every" ? { mode: v, every: "P30D" } : { mode: v }; draw(); })),
      (g.reeligibility || {}).mode === "every" ? durationInput("Not again within", g.reeligibility.every, (v) => { g.reeligibility.every = v; changed(); }, "guards.reeligibility.every") : null,
      g.cooldown !== undefined && g.cooldown !== null ? durationInput("Cool-down", g.cooldown, (v) => { g.cooldown = v; changed(); }, "guards.cooldown")
        : h("button", { type: "button", class: "secondary", onclick: () => { g.cooldown = "P7D"; draw(); } }, "Add a cool-down"),
      h("div", {},
        h("label", { class: "inline" }, bind(h("input", { type: "checkbox", id: "quiet-on", checked: !!quiet }), (v) => { g.quiet_hours = v ? { start: "21:00:00", end: "08:00:00" } : null; draw(); }), "Quiet hours (customer's time)"),
        quiet ? h("label", {}, "from", bind(h("input", { type: "time", value: quiet.start.slice(0, 5), "data-field": "guards.quiet_hours.start" }), (v) => { quiet.start = v; })) : null,
        quiet ? h("label", {}, "to", bind(h("input", { type: "time", value: quiet.end.slice(0, 5), "data-field": "guards.quiet_hours.end" }), (v) => { quiet.end = v; })) : null),
      h("label", {}, "Cancelled by (events, comma-separated)", bind(h("input", { size: 50, value: (g.exit_events || []).join(", "), "data-field": "guards.exit_events" }), (v) => { g.exit_events = v.split(",").map((s) => s.trim()).filter(Boolean); })),
      h("div", {},
        g.cap ? h("span", { class: "row", id: "cap" },
          h("label", {}, "At most (messages of this rule per customer)", bind(h("input", { type: "number", min: 1, max: 1000, value: g.cap.max, id: "cap-max", "data-field": "guards.cap.max" }), (v) => { g.cap.max = +v; })),
          durationInput("per", g.cap.window, (v) => { g.cap.window = v; changed(); }, "guards.cap.window"),
          h("button", { type: "button", class: "danger", onclick: () => { g.cap = null; draw(); } }, "No cap"))
          : h("button", { type: "button", class: "secondary", id: "add-cap", onclick: () => { g.cap = { max: 2, window: "P30D" }; draw(); } }, "Add a per-rule cap")),
      h("div", { class: "row" },
        h("label", {}, "Starts (optional)", bind(h("input", { type: "datetime-local", id: "starts-at", value: localInput(g.starts_at), "data-field": "guards.starts_at" }), (v) => { g.starts_at = v ? new Date(v).toISOString() : null; })),
        h("label", {}, "Ends (optional)", bind(h("input", { type: "datetime-local", id: "ends-at", value: localInput(g.ends_at), "data-field": "guards.ends_at" }), (v) => { g.ends_at = v ? new Date(v).toISOString() : null; }))),
      h("label", { class: "inline" }, bind(h("input", { type: "checkbox", checked: g.require_consent !== false }), (v) => { g.require_consent = v; }), "Only with the customer's consent"),
      h("label", { class: "inline" }, bind(h("input", { type: "checkbox", checked: g.contact_policy !== false }), (v) => { g.contact_policy = v; }), "Counts toward the contact policy"));

    const rawView = h("details", { id: "raw" }, h("summary", {}, "Raw JSON (for power users)"), raw,
      h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => {
        try { rule = JSON.parse(raw.value); draw(); } catch (err) { errorsBox.replaceChildren(errorList([{ message: `Not valid JSON: ${err.message}` }])); }
      } }, "Use this JSON")));
    fill(form, basics, triggers, conditions, action, guards, rawView);
    changed();
  }

  const save = h("button", { type: "button", id: "save-draft", disabled: !may("marketer"), onclick: async () => {
    try {
      const saved = await api("PUT", `/v1/rules/${encodeURIComponent(rule.rule_id)}`, rule);
      say(`Saved ${saved.rule_id} version ${saved.version} as a draft.`);
      location.assign(`/ui/rules/${saved.rule_id}?saved=${saved.version}`);
    } catch (err) { errorsBox.replaceChildren(errorList(err.body.errors || [{ field: err.body.field, message: err.message }])); }
  } }, "Save draft");
  const history = versions.length ? [
    h("h2", {}, "Versions"),
    table(["Version", "Status", "Saved", "By", "Changes", ""], versions.map((v, i) => [
      `v${v.version}`, v.status, when(v.created_at), v.created_by || "",
      versions[i + 1] ? h("a", { href: `/ui/rules/${ruleId}/diff?a=${versions[i + 1].version}&b=${v.version}`, class: "compare" }, `compare with v${versions[i + 1].version}`) : "",
      h("button", { type: "button", class: v.status === "draft" && v === newest ? "" : "secondary", id: v === newest ? "publish" : null, disabled: !may("publisher"),
        onclick: async () => {
          const done = await api("POST", `/v1/rules/${ruleId}/versions/${v.version}/publish`);
          say(`Version ${done.version} is in force.`);
          location.assign(`/ui/rules/${ruleId}?published=${done.version}`);
        } }, v.status === "draft" && v === newest ? `Publish v${v.version}` : "Publish again"),
    ])),
  ] : [];
  const inForce = versions.find((v) => v.status === "published");
  const switcher = inForce ? h("button", { type: "button", class: inForce.rule.enabled ? "danger" : "secondary", id: "switch", disabled: !may("publisher"),
    onclick: async () => {
      const done = await api("POST", `/v1/rules/${ruleId}/${inForce.rule.enabled ? "disable" : "enable"}`);
      location.assign(`/ui/rules/${ruleId}?published=${done.version}`);
    } }, inForce.rule.enabled ? "Switch off" : "Switch on") : null;
  const saved = new URLSearchParams(location.search);
  page(ruleId === "new" ? "New rule" : `Rule ${ruleId}`,
    saved.get("saved") ? h("p", { class: "ok", role: "status" }, `Saved as draft version ${saved.get("saved")}.`) : null,
    saved.get("published") ? h("p", { class: "ok", role: "status" }, `Version ${saved.get("published")} is in force.`) : null,
    newest ? h("p", { class: "muted" }, `Editing version ${newest.version} (${newest.status}). `,
      h("a", { href: `/ui/rules/${ruleId}/backtests`, id: "to-backtests" }, "Back-test"), " · ",
      h("a", { href: `/ui/rules/${ruleId}/results` }, "Results")) : null,
    form, errorsBox, h("div", { class: "actions" }, save, switcher),
    newest ? dryRunBox(ruleId, versions) : null, ...history);
  draw();
}

// the message's context: values the template shows (Jinja2 in the sandbox), edited as rows
function contextEditor(action, changed) {
  action.context = action.context || {};
  const box = h("fieldset", { id: "context" }, h("legend", {}, "Values for the template (context)"),
    h("p", { class: "muted" }, 'Each value is a CEL expression over what the rule sees: order.order_id, customer.locale, or a text in quotes such as "THANKS10".'));
  const rows = Object.entries(action.context);
  const emit = () => {
    action.context = Object.fromEntries([...box.querySelectorAll(".ctx-row")].map((r) => [r.querySelector(".ctx-key").value.trim(), r.querySelector(".ctx-value").value]).filter(([k]) => k));
    changed();
  };
  const row = (k, v, i) => h("div", { class: "row ctx-row" },
    h("label", {}, "Name", h("input", { class: "ctx-key", value: k, size: 18, "aria-label": `Context value ${i + 1}: name`, oninput: emit, "data-field": "action.context" })),
    h("label", {}, "Value (CEL)", h("input", { class: "ctx-value", value: v, size: 36, "aria-label": `Context value ${i + 1}: value`, oninput: emit })),
    h("button", { type: "button", class: "danger", "aria-label": `Remove context value ${i + 1}`, onclick: (e) => { e.target.closest(".ctx-row").remove(); emit(); } }, "Remove"));
  box.append(...rows.map(([k, v], i) => row(k, v, i)),
    h("button", { type: "button", class: "secondary", id: "add-context", onclick: (e) => { e.target.before(row("", "", box.querySelectorAll(".ctx-row").length)); } }, "Add a value"));
  return box;
}
function localInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function dryRunBox(ruleId, versions) {
  const customer = h("input", { id: "dry-customer", required: true, size: 20 });
  const order = h("input", { id: "dry-order", size: 20 });
  const version = h("select", { id: "dry-version" }, h("option", { value: "" }, "in force (or newest draft)"), versions.map((v) => h("option", { value: v.version }, `v${v.version} (${v.status})`)));
  const out = h("div", { id: "dry-result", "aria-live": "polite" });
  const form = h("form", { id: "dry-run" }, h("fieldset", {}, h("legend", {}, "Dry run: would this rule send now?"),
    h("label", {}, "Customer id", customer), h("label", {}, "Order id (optional)", order), h("label", {}, "Version", version),
    h("button", { type: "submit" }, "Try it")), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ customer_id: customer.value.trim() });
    if (order.value.trim()) q.set("order_id", order.value.trim());
    if (version.value) q.set("version", version.value);
    try {
      const r = await api("GET", `/v1/rules/${ruleId}/dry-run?${q}`);
      fill(out, h("p", { class: r.would_send ? "ok" : "muted", id: "dry-outcome" }, `v${r.version}: ${r.outcome}${r.guard ? ` (guard: ${r.guard})` : ""}. ${r.why}`),
        r.conditions.length ? table(["Condition", "Held"], r.conditions.map((c) => [c.description || c.expr, c.held ? "yes" : "no"])) : null);
    } catch (err) { fill(out, errorList([{ field: err.body.field, message: err.message }])); }
  });
  return form;
}

// --- differences between two versions --------------------------------------------------------
function lineDiff(a, b) {
  // longest common subsequence of lines: rows of [left line or null, right line or null, kind]
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const rows = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { rows.push([a[i], b[j], "same"]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) { rows.push([null, b[j], "added"]); j++; }
    else { rows.push([a[i], null, "removed"]); i++; }
  }
  // side by side: a run of removed lines and the run of added lines after it share rows
  const paired = [];
  for (let k = 0; k < rows.length;) {
    if (rows[k][2] !== "removed") { paired.push(rows[k++]); continue; }
    const removed = [], added = [];
    while (k < rows.length && rows[k][2] === "removed") removed.push(rows[k++][0]);
    while (k < rows.length && rows[k][2] === "added") added.push(rows[k++][1]);
    for (let x = 0; x < Math.max(removed.length, added.length); x++) {
      const l = removed[x] ?? null, r = added[x] ?? null;
      paired.push([l, r, l !== null && r !== null ? "changed" : l !== null ? "removed" : "added"]);
    }
  }
  return paired;
}
async function diffPage(kind, id) {
  const params = new URLSearchParams(location.search);
  const versions = await api("GET", `/v1/${kind}/${id}`);
  const body = (v) => JSON.stringify(kind === "rules" ? v.rule : v.template, null, 2).split("\n");
  const pick = (name, fallback) => h("select", { name, id: `diff-${name}` }, versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(params.get(name) ?? fallback) }, `v${v.version} (${v.status})`)));
  const left = versions.find((v) => String(v.version) === (params.get("a") ?? String(versions[1]?.version ?? versions[0].version))) || versions[versions.length - 1];
  const right = versions.find((v) => String(v.version) === (params.get("b") ?? String(versions[0].version))) || versions[0];
  const rows = lineDiff(body(left), body(right));
  const changed = rows.filter((r) => r[2] !== "same").length;
  const back = kind === "rules" ? `/ui/rules/${id}` : `/ui/templates/${id}`;
  page(`${kind === "rules" ? "Rule" : "Template"} ${id}: v${left.version} and v${right.version}`,
    h("p", {}, h("a", { href: back }, "← back")),
    h("form", { method: "get", class: "actions" }, h("label", {}, "Left", pick("a", left.version)), h("label", {}, "Right", pick("b", right.version)), h("button", { type: "submit" }, "Compare")),
    h("p", { id: "diff-summary", role: "status" }, changed ? `${changed} line${changed > 1 ? "s" : ""} differ.` : "The two versions are the same."),
    h("table", { class: "diff", id: "diff" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, `v${left.version} (${left.status}, ${when(left.created_at)})`), h("th", { scope: "col" }, `v${right.version} (${right.status}, ${when(right.created_at)})`))),
      h("tbody", {}, rows.map(([l, r, k]) => h("tr", { class: k },
        h("td", { class: l === null ? "gap" : k === "same" ? null : "del" }, l === null ? "" : h("code", {}, k === "same" ? null : h("span", { class: "sr-only" }, "removed: "), l)),
        h("td", { class: r === null ? "gap" : k === "same" ? null : "ins" }, r === null ? "" : h("code", {}, k === "same" ? null : h("span", { class: "sr-only" }, "added: "), r)))))));
}

// --- back-tests ------------------------------------------------------------------------------
function barChart(series, label) {
  const entries = Object.entries(series);
  const width = Math.max(320, entries.length * 28 + 60), height = 180, top = Math.max(1, ...entries.map(([, v]) => v));
  const bar = Math.min(48, (width - 60) / Math.max(1, entries.length));
  return svg("svg", { class: "chart", width, height, role: "img", "aria-label": label },
    svg("title", {}, label),
    entries.map(([k, v], i) => {
      const hgt = (v / top) * (height - 50);
      return svg("g", {},
        svg("rect", { x: 40 + i * bar + 2, y: height - 30 - hgt, width: Math.max(2, bar - 4), height: hgt, fill: "#1f5fbf" }, svg("title", {}, `${k}: ${v}`)),
        entries.length <= 16 || i % Math.ceil(entries.length / 12) === 0 ? svg("text", { x: 40 + i * bar + 2, y: height - 14 }, k.slice(5)) : null);
    }),
    svg("text", { x: 4, y: 14 }, String(top)), svg("text", { x: 4, y: height - 30 }, "0"),
    svg("line", { x1: 38, y1: height - 30, x2: width, y2: height - 30, stroke: "#5b6475" }));
}

async function backtestsPage(ruleId) {
  const versions = await api("GET", `/v1/rules/${ruleId}`);
  const version = h("select", { id: "bt-version" }, versions.map((v) => h("option", { value: v.version }, `v${v.version} (${v.status})`)));
  const since = h("input", { type: "datetime-local", id: "bt-since" });
  const until = h("input", { type: "datetime-local", id: "bt-until" });
  const problem = h("div", { "aria-live": "polite" });
  const list = h("div", { id: "bt-jobs" });
  const result = h("div", { id: "bt-result" });
  const start = h("button", { type: "submit", id: "bt-start", disabled: !may("marketer") }, "Run back-test");
  const form = h("form", {}, h("fieldset", {}, h("legend", {}, "Back-test over the recorded events"),
    h("label", {}, "Version", version), h("label", {}, "From (optional)", since), h("label", {}, "Until (optional)", until),
    start), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { version: +version.value };
    if (since.value) body.since = new Date(since.value).toISOString();
    if (until.value) body.until = new Date(until.value).toISOString();
    try { const job = await api("POST", `/v1/rules/${ruleId}/backtests`, body); say("Back-test started."); await refresh(job.job_id); }
    catch (err) { problem.replaceChildren(errorList([{ field: err.body.field, message: err.message }])); }
  });
  async function refresh(focusJob) {
    const jobs = await api("GET", `/v1/rules/${ruleId}/backtests`);
    list.replaceChildren(table(["Started", "Version", "Status", "Progress", "Messages", "Customers"], jobs.map((j) => [
      when(j.created_at), `v${j.rule_version}`, h("span", { class: `job-${j.status}` }, j.error ? `${j.status}: ${j.error}` : j.status),
      j.status === "done" ? "" : h("progress", { max: j.progress.total || 1, value: j.progress.done || 0, "aria-label": `${j.progress.phase}` }, j.progress.phase),
      j.result ? String(j.result.messages) : "–", j.result ? String(j.result.customers) : "–",
    ]), [4, 5]));
    const latest = jobs.find((j) => j.status === "done");
    if (latest) {
      const full = await api("GET", `/v1/backtests/${latest.job_id}`);
      const r = full.result;
      fill(result,
        h("h2", {}, `Result of v${full.rule_version} (${when(full.created_at)})`),
        h("div", { class: "cards", id: "bt-summary" }, card("would send", r.messages), card("customers", r.customers),
          card("held out", r.held_out), card("events replayed", r.events), card("still pending", r.pending_timers)),
        r.warnings.length ? h("ul", { class: "errors" }, r.warnings.map((w) => h("li", {}, w))) : null,
        h("h2", {}, "Messages per day"), barChart(r.by_day, "Messages the rule would have sent per day"),
        h("h2", {}, "Suppressed by guard"),
        Object.keys(r.suppressed_by_guard).length ? table(["Guard", "Suppressed"], Object.entries(r.suppressed_by_guard).map(([g, n]) => [g, String(n)]), [1]) : h("p", { class: "muted" }, "No guard suppressed a message."),
        h("h2", {}, "Outcomes"), table(["Outcome", "Evaluations"], Object.entries(r.outcomes).map(([o, n]) => [o, String(n)]), [1]),
        h("h2", {}, "Sample messages"), table(["Customer", "When", "Channel"], r.samples.slice(0, 15).map((s) => [s.customer_id, when(s.at), s.channel])));
    }
    if (jobs.some((j) => j.status === "queued" || j.status === "running")) setTimeout(() => refresh(focusJob), 1000);
    else if (focusJob) say("Back-test finished.");
  }
  page(`Back-tests of ${ruleId}`, h("p", {}, h("a", { href: `/ui/rules/${ruleId}` }, "← the rule")), form, list, result);
  await refresh();
}

// --- results ---------------------------------------------------------------------------------
function upliftChart(groups) {
  const rows = Object.entries(groups).filter(([, g]) => g.uplift.difference !== null);
  const width = 560, rowH = 28, height = 40 + rows.length * rowH;
  const lo = Math.min(-0.05, ...rows.map(([, g]) => g.uplift.low)), hi = Math.max(0.05, ...rows.map(([, g]) => g.uplift.high));
  const x = (v) => 150 + ((v - lo) / (hi - lo)) * (width - 170);
  return svg("svg", { class: "chart", width, height, role: "img", "aria-label": "Uplift of conversion against the hold-out, with 95% intervals" },
    svg("title", {}, "Uplift of conversion against the hold-out, with 95% intervals"),
    svg("line", { x1: x(0), y1: 10, x2: x(0), y2: height - 20, stroke: "#5b6475", "stroke-dasharray": "3 3" }),
    svg("text", { x: x(0) - 4, y: height - 6 }, "0"), svg("text", { x: 150, y: height - 6 }, pct(lo)), svg("text", { x: width - 50, y: height - 6 }, pct(hi)),
    rows.map(([name, g], i) => {
      const y = 25 + i * rowH, u = g.uplift;
      return svg("g", {}, svg("text", { x: 4, y: y + 4 }, name),
        svg("line", { x1: x(u.low), y1: y, x2: x(u.high), y2: y, stroke: "#1f5fbf", "stroke-width": 2 }),
        svg("circle", { cx: x(u.difference), cy: y, r: 5, fill: u.low > 0 ? "#1b7f3b" : u.high < 0 ? "#b3261e" : "#1f5fbf" },
          svg("title", {}, `${name}: ${pct(u.difference)} (${pct(u.low)} to ${pct(u.high)})`)));
    }));
}
async function resultsPage(ruleId) {
  const params = new URLSearchParams(location.search);
  const days = h("input", { type: "number", id: "days", min: 1, max: 366, value: params.get("days") || 30 });
  const window_h = h("input", { type: "number", id: "window", min: 1, max: 2160, value: params.get("window_h") || 168 });
  const form = h("form", { method: "get" }, h("label", {}, "Messages of the last (days)", days), h("label", {}, "Conversion window (hours)", window_h), h("button", { type: "submit" }, "Show"));
  days.name = "days"; window_h.name = "window_h";
  const r = await api("GET", `/v1/rules/${ruleId}/results?days=${+days.value}&window_h=${+window_h.value}`);
  const o = r.overall;
  const groupTable = (groups) => table(["", "Sent", "Delivered", "Failed", "Opened", "Clicked", "Converted", "Rate", "Hold-out", "Hold-out rate", "Uplift (95% interval)"],
    Object.entries(groups).map(([k, g]) => [k, g.sent, g.delivered, g.failed, g.opened, g.clicked, g.converted, pct(g.conversion_rate), g.holdout, pct(g.holdout_conversion_rate),
      g.uplift.difference === null ? "–" : `${pct(g.uplift.difference)} (${pct(g.uplift.low)} … ${pct(g.uplift.high)})`].map(String)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  page(`Results of ${ruleId}`, h("p", {}, h("a", { href: `/ui/rules/${ruleId}` }, "← the rule")), form,
    h("div", { class: "cards", id: "results-summary" }, card("sent", o.sent), card("delivered", o.delivered), card("failed", o.failed), card("opened", o.opened),
      card("clicked", o.clicked), card("converted", o.converted), card("conversion", pct(o.conversion_rate)), card("hold-out conversion", pct(o.holdout_conversion_rate)),
      card("uplift", o.uplift.difference === null ? "–" : pct(o.uplift.difference))),
    h("p", { class: "muted" }, "Converted: an order within the window after the message. Uplift: conversion of those sent minus that of the hold-out group, with a 95% interval (Newcombe)."),
    h("h2", {}, "Uplift"), upliftChart({ all: o, ...Object.fromEntries(Object.entries(r.by_channel).map(([k, v]) => [`channel ${k}`, v])) }),
    h("h2", {}, "Per channel"), groupTable(r.by_channel), h("h2", {}, "Per locale"), groupTable(r.by_locale));
}

// --- templates -------------------------------------------------------------------------------
async function templatesPage() {
  const rows = await api("GET", "/v1/templates");
  page("Templates", h("p", { class: "muted" }, "Message and pop-up texts per language. Version 0 is proact's built-in text."),
    table(["Template", "In force", "Draft", "Languages"], rows.map((t) => [
      h("a", { href: `/ui/templates/${t.template_id}` }, t.template_id), t.published === null ? "–" : `v${t.published}`, t.draft ? `v${t.draft}` : "–", t.locales.join(", ")])));
}
async function templateEditor(templateId) {
  const versions = await api("GET", `/v1/templates/${templateId}`);
  const newest = versions[0];
  const locales = structuredClone(newest.template.locales);
  const customer = h("input", { id: "preview-customer", placeholder: "sample values" });
  const errorsBox = h("div", { "aria-live": "polite" });
  const grid = h("div", { id: "template-grid" });
  const previews = {};
  const preview = debounce(async () => {
    try {
      const body = { template: locales, ...(customer.value ? { customer_id: customer.value } : {}) };
      const found = await api("POST", `/v1/templates/${templateId}/preview`, body);
      errorsBox.replaceChildren();
      for (const [loc, p] of Object.entries(found.previews)) {
        previews[loc]?.replaceChildren(h("h3", {}, `${loc}${p.locale !== loc ? ` (falls back to ${p.locale})` : ""}`),
          ...Object.entries(p.parts).map(([name, text]) => h("div", {}, h("span", { class: "muted" }, `${name}: `), h("span", { "data-part": name }, text))));
      }
    } catch (err) { errorsBox.replaceChildren(errorList([{ field: err.body.field, message: err.message }])); }
  });
  function draw() {
    grid.replaceChildren(...Object.entries(locales).map(([loc, parts]) => {
      previews[loc] = h("div", { class: "preview", id: `preview-${loc}`, "aria-live": "polite" });
      return h("div", { class: "grid2" },
        h("fieldset", {}, h("legend", {}, `Language ${loc}`), Object.entries(parts).map(([name, source]) => h("label", { class: "block" }, name,
          h("textarea", { "data-field": `locales.${loc}.${name}`, id: `part-${loc}-${name}`, oninput: (e) => { parts[name] = e.target.value; preview(); } }, source)))),
        previews[loc]);
    }));
    preview();
  }
  const newLocale = h("input", { id: "new-locale", size: 6, placeholder: "de" });
  const to = h("input", { type: "email", id: "test-to", placeholder: "you@example.com" });
  const toLocale = h("select", { id: "test-locale" }, Object.keys(locales).map((l) => h("option", { value: l }, l)));
  page(`Template ${templateId}`,
    h("p", { class: "muted" }, `Editing version ${newest.version} (${newest.status}). Jinja2 in a sandbox: {{ order_id }} inserts a value.`),
    h("div", { class: "actions" }, h("label", {}, "Preview for customer (id)", customer), h("button", { type: "button", class: "secondary", onclick: preview }, "Preview")),
    errorsBox, grid,
    h("div", { class: "actions" }, h("label", {}, "Add a language", newLocale), h("button", { type: "button", class: "secondary", onclick: () => {
      const loc = newLocale.value.trim(); if (!loc || locales[loc]) return;
      const base = locales.en || Object.values(locales)[0]; locales[loc] = { ...base }; draw();
    } }, "Add")),
    h("div", { class: "actions" },
      h("button", { type: "button", id: "template-save", disabled: !may("marketer"), onclick: async () => {
        try { const s = await api("PUT", `/v1/templates/${templateId}`, { description: newest.template.description || "", locales }); say(`Saved version ${s.version} as a draft.`); location.reload(); }
        catch (err) { errorsBox.replaceChildren(errorList(err.body.errors || [{ field: err.body.field, message: err.message }])); }
      } }, "Save draft"),
      newest.status === "draft" ? h("button", { type: "button", disabled: !may("publisher"), onclick: async () => {
        await api("POST", `/v1/templates/${templateId}/versions/${newest.version}/publish`); say("Published."); location.reload();
      } }, `Publish v${newest.version}`) : null),
    h("fieldset", {}, h("legend", {}, "Test-send by e-mail"), h("label", {}, "To", to), h("label", {}, "Language", toLocale),
      h("button", { type: "button", disabled: !may("marketer"), onclick: async () => {
        try { const s = await api("POST", `/v1/templates/${templateId}/test-send`, { to: to.value, locale: toLocale.value, template: locales }); say(`Sent: ${s.subject}`); }
        catch (err) { errorsBox.replaceChildren(errorList([{ field: err.body.field, message: err.message }])); }
      } }, "Send test")),
    h("h2", {}, "Versions"), table(["Version", "Status", "Saved", "By", "Changes"], versions.map((v, i) => [`v${v.version}`, v.status, when(v.created_at), v.created_by || "",
      versions[i + 1] ? h("a", { href: `/ui/templates/${templateId}/diff?a=${versions[i + 1].version}&b=${v.version}`, class: "compare" }, `compare with v${versions[i + 1].version}`) : ""])));
  draw();
}

// --- audit log -------------------------------------------------------------------------------
async function auditPage() {
  const subject = new URLSearchParams(location.search).get("subject") || "";
  const entries = await api("GET", `/v1/audit?limit=200${subject ? `&subject=${encodeURIComponent(subject)}` : ""}`);
  const filter = h("input", { name: "subject", id: "audit-subject", value: subject });
  page("Audit log",
    h("form", { method: "get" }, h("label", {}, "Subject starts with", filter), h("button", { type: "submit" }, "Filter")),
    h("p", { class: "muted" }, "Every change, newest first. Nothing here can be edited or removed."),
    table(["When", "Who", "What", "Subject", "Change"], entries.map((e) => [
      when(e.at), e.who, h("span", { class: "action" }, e.action), e.subject,
      h("details", {}, h("summary", {}, "before / after"), h("pre", {}, JSON.stringify({ before: e.before, after: e.after }, null, 2)))])));
}

// --- models ----------------------------------------------------------------------------------
async function modelsPage() {
  const models = await api("GET", "/v1/models");
  const sections = [];
  for (const [kind, m] of Object.entries(models)) {
    sections.push(h("h2", {}, `${kind} model`), h("p", {}, m.promoted ? `In force: ${m.status}` : `${m.status}.`),
      table(["Version", "Trained", "ROC AUC", "PR AUC", "Brier", ""], m.versions.map((v) => [
        v.version, when(v.created_at), v.roc_auc?.toFixed(3) ?? "–", v.pr_auc?.toFixed(3) ?? "–", v.brier?.toFixed(3) ?? "–",
        v.version === m.promoted ? h("b", {}, "in force") : h("button", { type: "button", class: "secondary", disabled: !may("publisher"), onclick: async () => {
          try { await api("POST", `/v1/models/${kind}/versions/${encodeURIComponent(v.version)}/promote`); say(`Promoted ${v.version}.`); location.reload(); }
          catch (err) { say(err.message); }
        } }, "Promote")]), [2, 3, 4]),
      h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", disabled: !may("publisher") || !m.promoted, onclick: async () => {
        try { const r = await api("POST", `/v1/models/${kind}/rollback`); say(`Rolled back to ${r.promoted}.`); location.reload(); } catch (err) { say(err.message); }
      } }, "Roll back to the previous one")));
    if (m.promoted) {
      const detail = await api("GET", `/v1/models/${kind}/${encodeURIComponent(m.promoted)}`);
      const plots = h("div", {});
      sections.push(plots, h("details", {}, h("summary", {}, "Model card"), h("pre", {}, detail.card || "")));
      for (const url of detail.plots) {  // images need the key too: fetched, then shown from memory
        const res = await fetch(url, { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
        if (res.ok) plots.append(h("img", { class: "plot", src: URL.createObjectURL(await res.blob()), alt: `${kind}: ${url.split("/").pop().replace(".png", "").replace("_", " ")} plot` }));
      }
    }
  }
  page("Models", ...sections);
}


// --- overview --------------------------------------------------------------------------------
const FIGURES = [["sent", "messages sent"], ["failed", "failed"], ["suppressed", "suppressed by a guard"], ["held_out", "held out"],
  ["popups_shown", "pop-ups shown"], ["popups_accepted", "pop-ups accepted"], ["callbacks", "callbacks requested"], ["dead_letters", "dead letters"]];
const COLOURS = { sent: "#1f5fbf", failed: "#b3261e", suppressed: "#8a6d00", held_out: "#5b6475" };
function dailyChart(days, series, names) {
  // grouped bars, one group per day; every bar has its figure as a tooltip, and a table follows
  const width = Math.max(420, days.length * 22 * names.length + 80), height = 200;
  const top = Math.max(1, ...names.flatMap((n) => series[n]));
  const group = (width - 60) / days.length, bar = Math.max(3, Math.min(18, (group - 8) / names.length));
  return svg("svg", { class: "chart", id: "overview-chart", width, height, role: "img", "aria-label": "Messages per day: sent, failed, suppressed and held out (the table below has the figures)" },
    svg("title", {}, "Messages per day"),
    days.map((day, d) => svg("g", {}, names.map((n, k) => {
      const v = series[n][d], hgt = (v / top) * (height - 60);
      return svg("rect", { x: 44 + d * group + k * bar, y: height - 30 - hgt, width: bar - 1, height: hgt, fill: COLOURS[n], "data-figure": n }, svg("title", {}, `${day} ${n}: ${v}`));
    }), svg("text", { x: 44 + d * group, y: height - 14 }, day.slice(5)))),
    names.map((n, k) => svg("g", {}, svg("rect", { x: 44 + k * 110, y: 4, width: 10, height: 10, fill: COLOURS[n] }), svg("text", { x: 58 + k * 110, y: 13 }, n.replace("_", " ")))),
    svg("text", { x: 4, y: 30 }, String(top)), svg("text", { x: 4, y: height - 30 }, "0"),
    svg("line", { x1: 40, y1: height - 30, x2: width, y2: height - 30, stroke: "#5b6475" }));
}
async function overviewPage() {
  const o = await api("GET", "/v1/overview?days=7");
  const cards = (span) => h("div", { class: "cards", id: `overview-${span}` }, FIGURES.map(([k, label]) => h("div", { class: "card", "data-figure": k }, label, h("b", {}, String(o[span][k])))));
  page("Overview",
    h("p", { class: "muted" }, `What proact did, in UTC days (as of ${when(o.generated_at)}).`),
    h("h2", {}, "Today"), cards("today"),
    h("h2", {}, "The last 7 days"), cards("week"),
    dailyChart(o.days, o.series, ["sent", "failed", "suppressed", "held_out"]),
    h("details", {}, h("summary", {}, "The figures per day"),
      table(["Day", ...FIGURES.map(([, l]) => l)], o.days.map((d, i) => [d, ...FIGURES.map(([k]) => String(o.series[k][i]))]), FIGURES.map((_, i) => i + 1))),
    h("h2", {}, "Per rule and channel"),
    o.by_rule_channel.length ? table(["Rule", "Channel", "Sent today", "Failed today", "Suppressed today", "Sent (7 days)", "Failed (7 days)", "Suppressed (7 days)", "Held out (7 days)"],
      o.by_rule_channel.map((r) => [h("a", { href: `/ui/rules/${r.rule_id}/results` }, r.rule_id), r.channel, r.today.sent, r.today.failed, r.today.suppressed, r.week.sent, r.week.failed, r.week.suppressed, r.week.held_out].map((c) => (c instanceof Node ? c : String(c)))), [2, 3, 4, 5, 6, 7, 8])
      : h("p", { class: "muted" }, "No messages in the last 7 days."),
    h("h2", {}, "Dead letters"),
    h("p", {}, "Events proact refused, by topic. ", h("a", { href: "/ui/dead-letters" }, "See them, and why")),
    table(["Topic", "Today", "7 days"], Object.entries(o.dead_letters_by_topic).map(([t, c]) => [t, String(c.today), String(c.week)]), [1, 2]));
}

// --- contact policy --------------------------------------------------------------------------
async function policyPage() {
  const policy = await api("GET", "/v1/policy");
  const max = h("input", { type: "number", id: "policy-max", min: 1, max: 1000, value: policy.max_messages, "data-field": "max_messages" });
  const zone = h("input", { id: "policy-timezone", value: policy.default_timezone, size: 24, "data-field": "default_timezone" });
  const problem = h("div", { "aria-live": "polite" });
  const draft = { ...policy };
  const form = h("form", { id: "policy-form" }, h("fieldset", {}, h("legend", {}, "Across all rules, per customer"),
    h("label", {}, "At most (messages)", max),
    durationInput("per", isoDuration(policy.window), (v) => { draft.window = v; }, "window"),
    durationInput("and at least this long between two", isoDuration(policy.cooldown), (v) => { draft.cooldown = v; }, "cooldown"),
    h("label", {}, "Time zone for customers whose zone is unknown", zone),
    h("fieldset", { id: "policy-channels" }, h("legend", {}, "What counts against it"),
      ["email", "sms", "push", "phone", "webhook", "inapp", "popup"].map((c) => h("label", { class: "inline" },
        h("input", { type: "checkbox", value: c, checked: (policy.channels || []).includes(c), onchange: (e) => {
          draft.channels = e.target.checked ? [...new Set([...(draft.channels || []), c])] : (draft.channels || []).filter((x) => x !== c);
        } }), c === "popup" ? "pop-ups to a known customer" : c)))),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "policy-save", disabled: !may("admin") }, "Save policy"),
      may("admin") ? null : h("span", { class: "muted" }, "Only an admin may change the policy.")), problem);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    try {
      const saved = await api("PUT", "/v1/policy", { ...draft, max_messages: +max.value, default_timezone: zone.value.trim() });
      fill(problem, h("p", { class: "ok", role: "status" }, `Saved: at most ${saved.max_messages} messages per customer.`));
    } catch (err) {
      const errors = err.body.errors || [{ field: err.body.field, message: err.message }];
      fill(problem, errorList(errors));
      for (const x of errors) form.querySelector(`[data-field="${CSS.escape(x.field || "")}"]`)?.setAttribute("aria-invalid", "true");
    }
  });
  page("Contact policy", h("p", { class: "muted" }, "How often proact may contact one customer, whatever the rules. A rule can opt out (its guards) for service messages such as a delay notice."), form);
}
function isoDuration(value) {
  // the API answers durations as ISO 8601 (P7D, PT12H) or as seconds; the inputs want ISO
  if (typeof value === "number") return value % 86400 === 0 ? `P${value / 86400}D` : `PT${value}S`;
  return value;
}

// --- API keys --------------------------------------------------------------------------------
async function keysPage() {
  if (!may("admin")) return page("API keys", h("p", {}, "Only an admin may see and manage the API keys."));
  const keys = await api("GET", "/v1/keys");
  const name = h("input", { id: "key-name", required: true, size: 30, placeholder: "who or what uses it" });
  const role = h("select", { id: "key-role" }, ROLES.map((r) => h("option", { value: r }, r)));
  const shown = h("div", { id: "new-key", "aria-live": "polite" });
  const form = h("form", { id: "key-form" }, h("fieldset", {}, h("legend", {}, "New key"), h("label", {}, "Name", name), h("label", {}, "Role", role),
    h("button", { type: "submit", id: "key-create" }, "Create key")), shown);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const made = await api("POST", "/v1/keys", { name: name.value.trim(), role: role.value });
      const value = h("input", { id: "key-value", readonly: true, value: made.key, size: 48, "aria-label": "The new key" });
      fill(shown, h("div", { class: "once", role: "alert" },
        h("p", {}, h("b", {}, "Copy this key now: it is shown this once."), " proact keeps only its hash."), value,
        h("button", { type: "button", class: "secondary", onclick: async () => { value.select(); try { await navigator.clipboard.writeText(made.key); say("Copied."); } catch { say("Select the key and copy it."); } } }, "Copy"),
        h("p", {}, h("a", { href: "/ui/keys" }, "Done"))));
      value.select();
    } catch (err) { fill(shown, errorList(err.body.errors || [{ field: err.body.field, message: err.message }])); }
  });
  page("API keys", h("p", { class: "muted" }, "Keys for people (the UI) and programs (the API). Roles: viewer reads, marketer drafts, publisher publishes, admin manages keys and the policy."),
    form, h("h2", {}, "Keys"),
    table(["Key id", "Name", "Role", "Created", "By", "Revoked", ""], keys.map((k) => [
      h("code", {}, k.key_id), k.name, k.role, when(k.created_at), k.created_by || "", k.revoked_at ? when(k.revoked_at) : "–",
      k.revoked_at || k.key_id === me.key_id ? "" : h("button", { type: "button", class: "danger", "data-key": k.key_id, onclick: async () => {
        if (!confirm(`Revoke the key "${k.name}"? Programs using it stop working at once.`)) return;
        await api("DELETE", `/v1/keys/${k.key_id}`); say(`Revoked ${k.name}.`); location.reload();
      } }, "Revoke")])));
}

// --- why did a customer (not) get a message --------------------------------------------------
async function customersPage() {
  const params = new URLSearchParams(location.search);
  const id = params.get("customer_id") || "";
  const input = h("input", { name: "customer_id", id: "why-customer", value: id, required: true, size: 28 });
  const ruleInput = h("input", { name: "rule_id", id: "why-rule", value: params.get("rule_id") || "", size: 24, placeholder: "any rule" });
  const form = h("form", { method: "get", role: "search", "aria-label": "Find a customer" }, h("label", {}, "Customer id", input), h("label", {}, "Rule (optional)", ruleInput), h("button", { type: "submit" }, "Why?"));
  const parts = [h("p", { class: "muted" }, "Why did a customer get a message, or not? Every rule evaluation is in the decision log, with its reason."), form];
  if (id) {
    const q = new URLSearchParams({ limit: "100" });
    if (params.get("rule_id")) q.set("rule_id", params.get("rule_id"));
    const r = await api("GET", `/v1/customers/${encodeURIComponent(id)}/why?${q}`);
    parts.push(h("p", { class: "answer", id: "why-answer", role: "status" }, r.answer),
      r.churn ? h("div", { id: "why-churn" }, h("h2", {}, "Churn risk"), h("p", {}, `${r.churn.summary} (as of ${when(r.churn.at)}).`),
        r.churn.reasons?.length ? table(["Raised by", "Value", "Contribution (log-odds)"], r.churn.reasons.map((x) => [x.label || x.feature, String(x.value), `+${x.contribution.toFixed(2)}`]), [1, 2]) : null) : null,
      r.decisions.length ? table(["When", "Rule", "Outcome", "Guard", "Channel", "Why"], r.decisions.map((d, i) => [
        when(d.at), h("a", { href: `/ui/rules/${d.rule_id}` }, `${d.rule_id} v${d.rule_version}`), d.outcome, d.guard || "–", d.channel || "–", r.explanations[i] || d.why])) : null);
  }
  page("Customers: why", ...parts);
  if (!id) input.focus();
}

// --- churn causes ----------------------------------------------------------------------------
async function churnPage() {
  const r = await api("GET", "/v1/churn/causes");
  page("Churn causes", h("p", { class: "muted" }, "What raises the churn risk of the shop's customers: for each risk segment, the causes most often among their top reasons, with how much each raises the score (its share of the score's log-odds, exact for the logistic churn model). Customers are re-scored daily, also when they say nothing."),
    ...r.segments.map((seg) => h("section", { class: "segment" },
      h("h2", {}, `${seg.segment}: ${seg.customers} customer${seg.customers === 1 ? "" : "s"}${seg.mean_score === null ? "" : `, mean score ${seg.mean_score.toFixed(2)}`}`),
      seg.causes.length ? table(["Cause", "Customers with it", "Share of the segment", "Mean contribution (log-odds)"],
        seg.causes.slice(0, 8).map((c) => [c.label, String(c.customers), pct(c.share), `+${c.mean_contribution.toFixed(2)}`]), [1, 2, 3])
        : h("p", { class: "muted" }, "No customer in this segment."))),
    h("p", { class: "muted" }, `Model versions: ${r.model_versions.join(", ") || "none yet"}.`));
}

// --- ratings ---------------------------------------------------------------------------------
async function ratingsPage() {
  const params = new URLSearchParams(location.search);
  const days = h("input", { type: "number", id: "days", name: "days", min: 1, max: 366, value: params.get("days") || 90 });
  const r = await api("GET", `/v1/ratings?days=${+days.value}`);
  const o = r.overall, num = (v, digits = 2) => (v === null ? "–" : v.toFixed(digits));
  const trend = (g) => g.trend.map((w) => `${w.week}: ${num(w.csat)}`).join(" · ") || "–";
  page("Ratings", h("form", { method: "get" }, h("label", {}, "The last (days)", days), h("button", { type: "submit" }, "Show")),
    h("div", { class: "cards", id: "ratings-summary" }, card("asked", o.asked), card("CSAT answers", o.csat_answers), card("response rate", pct(o.response_rate)),
      card("CSAT (1-5)", num(o.csat)), card("satisfied (4-5)", pct(o.satisfied)), card("NPS", num(o.nps, 0))),
    h("p", { class: "muted" }, "What customers answered to the one-click rating links of the check-ins: the latest answer per message. Response rate: messages with a CSAT answer of those delivered with links. NPS: promoters (9-10) minus detractors (0-6), in points."),
    h("h2", {}, "Per rule, channel and locale"),
    r.groups.length ? table(["Rule", "Channel", "Locale", "Asked", "CSAT answers", "Response rate", "CSAT", "Satisfied", "NPS answers", "NPS", "CSAT per week"],
      r.groups.map((g) => [g.rule_id, g.channel, g.locale, String(g.asked), String(g.csat_answers), pct(g.response_rate), num(g.csat), pct(g.satisfied), String(g.nps_answers), num(g.nps, 0), trend(g)]), [3, 4, 5, 6, 7, 8, 9])
      : h("p", { class: "muted" }, "No rating asked or given yet."),
    h("h2", {}, "Latest comments"),
    r.comments.length ? table(["When", "Survey", "Score", "Rule", "Locale", "Comment"], r.comments.map((c) => [when(c.at), c.survey.toUpperCase(), String(c.score), c.rule_id || "–", c.locale || "–", c.comment]), [2])
      : h("p", { class: "muted" }, "No comment yet."));
}

// --- callbacks (agents) ----------------------------------------------------------------------
async function callbacksPage() {
  const report = await api("GET", "/v1/callbacks/report");
  const rows = await api("GET", "/v1/callbacks");
  const done = await api("GET", "/v1/callbacks?status=done");
  const act = (c, path, body, label) => h("button", { type: "button", class: path === "claim" ? "" : "secondary", "data-action": body ? body.outcome : "claim", onclick: async () => {
    try { await api("POST", `/v1/callbacks/${encodeURIComponent(c.request_id)}/${path}`, body); say(`${label}: ${c.phone || c.email}.`); callbacksPage(); } catch (err) { say(err.message); }
  } }, label);
  const mine = (c) => me && c.claimed_by === me.name;
  page("Callbacks",
    h("div", { class: "cards", id: "callbacks-summary" }, card("open", report.open), card("asked, 30 days", report.requested), card("made", report.made),
      card("made within promise", pct(report.share_within_promise))),
    h("p", { class: "muted" }, "Visitors and customers who asked to be called back, the most urgent first. Claim one, call, and record how it went: “no answer” keeps it in the queue for another try. A request not called by its promised time gets an apology with a new time, shown here."),
    rows.length ? table(["Due", "Number or address", "Language", "Topic", "Preferred time", "Claimed by", "Tries", ""], rows.map((c) => [
      h("span", { class: c.overdue || c.missed_promise ? "errors" : "" }, `${when(c.due)}${c.overdue ? " (late)" : ""}${c.new_promise ? " · new time, first missed" : ""}`),
      c.phone || c.email || "–", c.locale || "–", c.topic || "–", c.preferred_time || "–", c.claimed_by || "–", String(c.attempts.length),
      h("span", { class: "actions" }, !c.claimed_by ? act(c, "claim", null, "Claim") : null,
        mine(c) || may("admin") ? [act(c, "outcome", { outcome: "called" }, "Called"), act(c, "outcome", { outcome: "no_answer" }, "No answer"), act(c, "outcome", { outcome: "resolved" }, "Resolved")] : null)]))
      : h("p", { class: "ok" }, "No callback waiting."),
    h("h2", {}, "Done lately"),
    done.length ? table(["Asked", "Promised", "Made", "By", "Outcome"], done.map((c) => [when(c.requested_at), when(c.promised_by), when(c.made_at), c.claimed_by || "–",
      c.attempts.length ? c.attempts[c.attempts.length - 1].outcome.replace("_", " ") : "–"])) : h("p", { class: "muted" }, "None yet."));
}

// --- dead letters ----------------------------------------------------------------------------
async function deadLettersPage() {
  const letters = await api("GET", "/v1/dead-letters?per_topic=50");
  page("Dead letters", h("p", { class: "muted" }, "Events proact refused and set aside, newest first, with the reason. The event itself is not shown (it may hold personal data). After the cause is fixed, a publisher can send one back to be processed again."),
    letters.length ? table(["When", "Topic", "Error", "Field", "Reason", "Rule / template", "Event", ""], letters.map((d) => [
      when(d.at), d.topic || d.dlq_topic, d.error_type || "–", d.field || "–", h("span", { class: "reason" }, d.reason || "–"), d.rule_id || d.template_id || "–",
      d.event_type ? `${d.event_type} ${d.event_id || ""}` : "–",
      h("button", { type: "button", class: "secondary replay", disabled: !may("publisher"), "data-offset": d.offset, onclick: async (e) => {
        try {
          const r = await api("POST", "/v1/dead-letters/replay", { dlq_topic: d.dlq_topic, partition: d.partition, offset: d.offset });
          e.target.replaceWith(h("span", { class: "ok", role: "status" }, `sent back to ${r.to}`));
          say(`Replayed to ${r.to}.`);
        } catch (err) { say(err.message); }
      } }, "Replay")]))
      : h("p", { class: "ok" }, "No dead letters: every event was accepted."));
}

// --- routing ---------------------------------------------------------------------------------
async function route() {
  const path = location.pathname.replace(/\/+$/, "");
  if (path === "/ui/login") return loginPage();
  me = await api("GET", "/v1/me");
  document.getElementById("who").textContent = `${me.name} · ${me.role}`;
  document.getElementById("who").append(" ", h("a", { href: "/ui/login", onclick: () => sessionStorage.removeItem(KEY) }, "sign out"));
  let m;
  if (me.role === "agent" && path !== "/ui/callbacks") { history.replaceState(null, "", "/ui/callbacks"); return callbacksPage(); }
  if (path === "/ui" || path === "/ui/overview") return overviewPage();
  if (path === "/ui/rules") return rulesPage();
  if ((m = /^\/ui\/(rules|templates)\/([a-z0-9_-]+)\/diff$/.exec(path))) return diffPage(m[1], m[2]);
  if (path === "/ui/policy") return policyPage();
  if (path === "/ui/keys") return keysPage();
  if (path === "/ui/customers") return customersPage();
  if (path === "/ui/dead-letters") return deadLettersPage();
  if (path === "/ui/churn") return churnPage();
  if (path === "/ui/ratings") return ratingsPage();
  if (path === "/ui/callbacks") return callbacksPage();
  if ((m = /^\/ui\/rules\/([a-z0-9-]+)\/backtests$/.exec(path))) return backtestsPage(m[1]);
  if ((m = /^\/ui\/rules\/([a-z0-9-]+)\/results$/.exec(path))) return resultsPage(m[1]);
  if ((m = /^\/ui\/rules\/([a-z0-9-]+)$/.exec(path))) return ruleEditor(m[1]);
  if (path === "/ui/templates") return templatesPage();
  if ((m = /^\/ui\/templates\/([a-z0-9_-]+)$/.exec(path))) return templateEditor(m[1]);
  if (path === "/ui/audit") return auditPage();
  if (path === "/ui/models") return modelsPage();
  page("Not found", h("p", {}, "There is no such page. ", h("a", { href: "/ui/overview" }, "Go to the overview.")));
}

route().catch((err) => {
  page("Something went wrong", h("p", { class: "errors", role: "alert" }, err.message));
});
