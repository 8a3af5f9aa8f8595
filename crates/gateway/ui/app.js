// Cordon web UI: plain ES module, no build step, no external origins, no inline code.
//
// Security rules this file keeps:
// - It never reads the page URL (no query string, no hash): the API is always the page's
//   own origin, through relative paths, and a token only ever comes from the login form.
// - The CSRF token lives in a module variable only (no localStorage/sessionStorage); the
//   session itself is an HttpOnly cookie this code cannot see.
// - Everything from the server is rendered with textContent/attributes, never as HTML.
//
// Stable hooks for tests (ids, and data-testid on repeated elements):
//   views         #view-loading #view-login #view-chat #view-approvals #view-sessions
//                 #view-audit #view-config (the visible one has no `hidden` attribute)
//   header        #nav-chat #nav-approvals #nav-sessions #nav-audit #nav-config #logout
//                 #who (scope) #approvals-badge (pending count) #notice (errors)
//   login         #login-form #login-token #login-submit #login-error
//   chat          #agent-select #session-select #new-session #stream-status[data-state=
//                 idle|connecting|live|reconnecting] #session-labels[data-integrity]
//                 [data-confidentiality] #transcript #message-form #message-input #send
//                 #chat-error
//     transcript  [data-testid=msg-user] [data-testid=msg-assistant] (data-final="true"
//                 once the turn finished) [data-testid=tool-call][data-call-id][data-tool]
//                 [data-testid=tool-result][data-call-id][data-error=true|false]
//                 [data-testid=approval][data-approval-id][data-state=pending|once|session|
//                 agent|deny|expired|unavailable] with buttons [data-answer=once|session|deny]
//                 [data-testid=turn-error] [data-testid=turn-finished]; every event row has
//                 data-seq
//   approvals     #approvals-refresh #approvals-empty #approvals-list
//                 [data-testid=approval-card][data-approval-id] with [data-answer] buttons
//     pairing     #pairing-empty #pairing-list [data-testid=pairing-card][data-code]
//                 [data-state=pending|approved|denied] with [data-testid=pairing-role]
//                 (user|approver|owner) and [data-decision=approve|deny]
//   sessions      #sessions-refresh #sessions-list [data-testid=session-row][data-session-id]
//                 with [data-testid=open-session]
//   audit         #audit-verify #audit-verify-status[data-ok=true|false] #audit-form
//                 #audit-session #audit-kind #audit-decision #audit-apply #audit-records
//                 [data-testid=audit-record][data-seq][data-kind][data-decision] #audit-older
//   skills        #skills-empty #skills-list [data-testid=skill-row][data-skill][data-intact=
//                 true|false] with [data-testid=skill-sha256] [data-testid=skill-verdict]
//                 [data-testid=skill-capabilities]
//   config        #config-tier #config-json

const $ = (id) => document.getElementById(id);

// ---- state (in memory only) ---------------------------------------------------------

const state = {
  csrf: null,
  scope: null,
  view: null,
  agents: [],
  session: null, // the open session's id
  lastSeq: 0, // highest event seq rendered for the open session
  ws: null,
  wsGen: 0, // bumps whenever the open session changes, so stale sockets are ignored
  retry: 0,
  retryTimer: null,
  turn: null, // the running turn's rendering state: {assistant, approvals: Map}
  auditBefore: null,
  pollTimer: null,
};

const SCOPES = ["read", "approver", "operator", "admin"];
const atLeast = (s) => SCOPES.indexOf(state.scope) >= SCOPES.indexOf(s);

// ---- HTTP ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// A same-origin JSON request; state changes carry the CSRF token. A 401 means the browser
// session is gone: show the login form.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error",
    });
  } catch (e) {
    throw new ApiError(0, `the gateway cannot be reached (${e.message})`);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const msg = (data && data.error) || `${res.status} ${res.statusText}`;
    if (res.status === 401 && path !== "/api/login") loggedOut("Your session ended; log in again.");
    throw new ApiError(res.status, msg);
  }
  return data;
}

const q = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v != null) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
};

// ---- small DOM helpers --------------------------------------------------------------

// el("div", {class: "x", "data-seq": 3}, child, "text", …): attributes are set with
// setAttribute and children appended as nodes or text, never parsed as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = String(v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(node, visible) {
  node.hidden = !visible;
}

function notice(msg) {
  const n = $("notice");
  n.textContent = msg || "";
  show(n, !!msg);
}

function fieldError(id, msg) {
  const n = $(id);
  n.textContent = msg || "";
  show(n, !!msg);
}

function pretty(jsonText) {
  if (typeof jsonText !== "string") return JSON.stringify(jsonText, null, 2);
  try {
    return JSON.stringify(JSON.parse(jsonText), null, 2);
  } catch {
    return jsonText;
  }
}

function when(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

// Labels as badges: {integrity, confidentiality, untrusted_sources, secrets}.
function labelBadges(labels) {
  const box = el("span", { class: "label-set" });
  if (!labels || typeof labels !== "object") return box;
  if (labels.integrity) {
    box.append(el("span", { class: `label integrity-${labels.integrity}`, title: "integrity", text: labels.integrity }));
  }
  if (labels.confidentiality) {
    box.append(
      el("span", { class: `label conf-${labels.confidentiality}`, title: "confidentiality", text: labels.confidentiality }),
    );
  }
  return box;
}

function sourcesList(sources) {
  if (!Array.isArray(sources) || sources.length === 0) return null;
  const ul = el("ul", { class: "sources" });
  for (const s of sources) ul.append(el("li", { text: s }));
  return el("div", { class: "untrusted" }, el("span", { class: "field", text: "Untrusted sources: " }), ul);
}

// ---- views --------------------------------------------------------------------------

const VIEWS = ["loading", "login", "chat", "approvals", "sessions", "audit", "skills", "config"];

function setView(name) {
  state.view = name;
  for (const v of VIEWS) show($(`view-${v}`), v === name);
  for (const b of document.querySelectorAll("#nav button[data-view]")) {
    if (b.dataset.view === name) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  notice("");
  const heading = document.querySelector(`#view-${name} h1`);
  if (heading) heading.focus({ preventScroll: true });
  if (name === "approvals") {
    loadApprovals();
    loadPairing();
    state.pollTimer = setInterval(() => {
      loadApprovals();
      loadPairing();
    }, 5000);
  } else if (name === "sessions") loadSessions();
  else if (name === "audit") loadAudit(false);
  else if (name === "skills") loadSkills();
  else if (name === "config") loadConfig();
  else if (name === "chat") $("message-input").focus({ preventScroll: true });
}

function loggedIn(scope, csrf) {
  state.scope = scope;
  state.csrf = csrf || null;
  $("who").textContent = `scope: ${scope}`;
  show($("who"), true);
  show($("nav"), true);
  show($("logout"), true);
  $("new-session").disabled = !atLeast("operator");
  $("send").disabled = !atLeast("operator");
  $("message-input").disabled = !atLeast("operator");
  setView("chat");
  initChat();
}

function loggedOut(message) {
  closeStream();
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  Object.assign(state, { csrf: null, scope: null, session: null, lastSeq: 0, turn: null });
  show($("nav"), false);
  show($("who"), false);
  show($("logout"), false);
  $("transcript").replaceChildren();
  $("session-select").replaceChildren();
  $("agent-select").replaceChildren();
  setView("login");
  fieldError("login-error", message || "");
}

// ---- login / logout -----------------------------------------------------------------

async function onLogin(ev) {
  ev.preventDefault();
  const input = $("login-token");
  const token = input.value.trim();
  input.value = "";
  fieldError("login-error", "");
  if (!token) {
    fieldError("login-error", "Enter a token.");
    return;
  }
  $("login-submit").disabled = true;
  try {
    const r = await api("POST", "/api/login", { token });
    loggedIn(r.scope, r.csrf ?? r.csrf_token);
  } catch (e) {
    fieldError("login-error", `Login failed: ${e.message}`);
    input.focus();
  } finally {
    $("login-submit").disabled = false;
  }
}

async function onLogout() {
  try {
    await api("POST", "/api/logout");
  } catch {
    // Logged out either way.
  }
  loggedOut("You are logged out.");
}

// ---- chat ---------------------------------------------------------------------------

async function initChat() {
  try {
    const { agents } = await api("GET", "/api/agents");
    state.agents = agents || [];
    const sel = $("agent-select");
    sel.replaceChildren(...state.agents.map((a) => el("option", { value: a.name, text: a.name })));
    await loadSessionChoices(true);
  } catch (e) {
    fieldError("chat-error", e.message);
  }
}

async function loadSessionChoices(openNewest) {
  const agent = $("agent-select").value;
  if (!agent) return;
  const { sessions } = await api("GET", `/api/sessions${q({ agent })}`);
  const sel = $("session-select");
  const opts = (sessions || []).map((s) =>
    el("option", { value: s.id, text: `${s.id.slice(-8)} · ${when(s.updated_at)}${s.running ? " · running" : ""}` }),
  );
  sel.replaceChildren(el("option", { value: "", text: "— choose —" }), ...opts);
  if (state.session && sessions.some((s) => s.id === state.session)) {
    sel.value = state.session;
  } else if (openNewest && sessions.length > 0) {
    sel.value = sessions[0].id;
    await openSession(sessions[0].id);
  } else {
    sel.value = "";
  }
}

async function newSession() {
  fieldError("chat-error", "");
  const agent = $("agent-select").value;
  try {
    const s = await api("POST", "/api/sessions", { agent });
    state.session = null;
    await openSession(s.id, s);
    await loadSessionChoices(false);
    $("message-input").focus();
  } catch (e) {
    fieldError("chat-error", `Cannot create a session: ${e.message}`);
  }
}

function renderLabels(labels) {
  const box = $("session-labels");
  if (!labels) {
    show(box, false);
    return;
  }
  box.dataset.integrity = labels.integrity || "";
  box.dataset.confidentiality = labels.confidentiality || "";
  box.replaceChildren(el("span", { class: "field", text: "Session labels: " }), labelBadges(labels));
  const src = sourcesList(labels.untrusted_sources);
  if (src) box.append(src);
  if (Array.isArray(labels.secrets) && labels.secrets.length) {
    box.append(el("span", { class: "field", text: ` secrets: ${labels.secrets.join(", ")}` }));
  }
  show(box, true);
}

async function openSession(id, known) {
  closeStream();
  state.session = id;
  state.lastSeq = 0;
  state.turn = null;
  state.retry = 0;
  state.wsGen += 1;
  const gen = state.wsGen;
  setRunning(false);
  $("transcript").replaceChildren();
  fieldError("chat-error", "");
  if (!id) {
    renderLabels(null);
    return;
  }
  try {
    const detail = known ? { session: known, items: [] } : await api("GET", `/api/sessions/${encodeURIComponent(id)}`);
    if (gen !== state.wsGen) return;
    renderLabels(detail.session && detail.session.labels);
    // The persisted events first (paged), then the live stream from the last one seen.
    let rendered = 0;
    for (;;) {
      const page = await api("GET", `/api/sessions/${encodeURIComponent(id)}/events${q({ after: state.lastSeq, limit: 500 })}`);
      if (gen !== state.wsGen) return;
      const events = page.events || [];
      for (const ev of events) handleEvent(ev);
      rendered += events.length;
      if (events.length < 500) break;
    }
    if (rendered === 0 && Array.isArray(detail.items) && detail.items.length) renderItems(detail.items);
    openStream(gen);
  } catch (e) {
    fieldError("chat-error", `Cannot open the session: ${e.message}`);
  }
}

// A session without an event log (e.g. started by `cordon chat`): its stored items.
function renderItems(items) {
  const t = $("transcript");
  for (const it of items) {
    if (it.role === "user") t.append(el("div", { class: "msg user", "data-testid": "msg-user", text: it.text }));
    else if (it.role === "assistant") {
      if (it.text) t.append(el("div", { class: "msg assistant", "data-testid": "msg-assistant", text: it.text }));
      for (const c of it.tool_calls || []) t.append(toolCallNode(c.id, c.name, c.arguments, null));
    } else if (it.role === "tool") t.append(toolResultNode(it.call_id, it.name, it.text, it.is_error, null));
  }
}

function streamStatus(s, text) {
  const n = $("stream-status");
  n.dataset.state = s;
  n.textContent = text;
}

function closeStream() {
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  if (state.ws) {
    const ws = state.ws;
    state.ws = null;
    ws.onclose = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.close();
  }
  streamStatus("idle", "");
}

function openStream(gen) {
  if (gen !== state.wsGen || !state.session) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/api/sessions/${encodeURIComponent(state.session)}/stream${q({ after: state.lastSeq })}`;
  streamStatus(state.retry ? "reconnecting" : "connecting", state.retry ? "reconnecting…" : "connecting…");
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    if (gen !== state.wsGen) return;
    state.retry = 0;
    streamStatus("live", "live");
  };
  ws.onmessage = (m) => {
    if (gen !== state.wsGen) return;
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    handleEvent(ev);
  };
  ws.onclose = () => {
    if (gen !== state.wsGen || state.ws !== ws) return;
    state.ws = null;
    state.retry += 1;
    const delay = Math.min(10000, 250 * 2 ** Math.min(state.retry, 6));
    streamStatus("reconnecting", "disconnected; reconnecting…");
    state.retryTimer = setTimeout(async () => {
      // A socket refused for lack of credentials looks like any other close: ask.
      try {
        await api("GET", "/api/whoami");
      } catch (e) {
        if (e.status === 401) return;
      }
      openStream(gen);
    }, delay);
  };
}

function turnState() {
  if (!state.turn) state.turn = { assistant: null, streamed: false, calls: [] };
  return state.turn;
}

function eventRow(ev, cls, testid, ...children) {
  return el("div", { class: cls, "data-testid": testid, "data-seq": ev.seq }, ...children);
}

function toolCallNode(id, name, args, seq) {
  return el(
    "div",
    { class: "tool call", "data-testid": "tool-call", "data-call-id": id, "data-tool": name, "data-seq": seq },
    el("div", { class: "tool-head" }, el("span", { class: "tag", text: "tool call" }), el("code", { class: "tool-name", text: name })),
    el("pre", { class: "args", text: pretty(args) }),
  );
}

function toolResultNode(callId, name, content, isError, seq) {
  const err = !!isError;
  return el(
    "div",
    {
      class: err ? "tool result is-error" : "tool result",
      "data-testid": "tool-result",
      "data-call-id": callId,
      "data-error": err ? "true" : "false",
      "data-seq": seq,
    },
    el(
      "div",
      { class: "tool-head" },
      el("span", { class: "tag", text: err ? "tool error" : "tool result" }),
      el("code", { class: "tool-name", text: name || "" }),
    ),
    el("pre", { class: "content", text: typeof content === "string" ? content : JSON.stringify(content, null, 2) }),
  );
}

const ANSWER_TEXT = {
  once: "approved once",
  session: "approved for this session",
  agent: "approved for the agent",
  deny: "denied",
  expired: "expired unanswered (denied)",
  unavailable: "nobody could answer (denied)",
};

// An answer as `approval_settled` carries it: a name ("once") or the runtime's tagged form
// ({answer: "agent", detail: {days, scope}}).
function answerName(a) {
  if (a && typeof a === "object") return typeof a.answer === "string" ? a.answer : "answered";
  return typeof a === "string" ? a : "answered";
}

// The body of one approval request, for the inline card and the inbox alike.
function approvalBody(a) {
  const box = el("div", { class: "approval-body" });
  box.append(el("div", {}, el("span", { class: "field", text: "Action: " }), el("code", { class: "action", text: a.action || "" })));
  if (a.tool) box.append(el("div", {}, el("span", { class: "field", text: "Tool: " }), el("code", { text: a.tool })));
  if (a.reason) box.append(el("div", {}, el("span", { class: "field", text: "Why: " }), el("span", { class: "reason", text: a.reason })));
  if (a.rule) box.append(el("div", {}, el("span", { class: "field", text: "Rule: " }), el("code", { class: "rule", text: a.rule })));
  if (a.labels && typeof a.labels === "object") {
    box.append(el("div", {}, el("span", { class: "field", text: "Labels: " }), labelBadges(a.labels)));
  }
  const src = sourcesList(a.untrusted_sources || (a.labels && a.labels.untrusted_sources));
  if (src) box.append(src);
  return box;
}

function answerButtons(id, onDone) {
  const bar = el("div", { class: "answers", role: "group", "aria-label": "Answer" });
  const buttons = [
    el("button", { type: "button", class: "approve", "data-answer": "once", text: "Approve once" }),
    el("button", { type: "button", class: "approve", "data-answer": "session", text: "Approve for this session" }),
    el("button", { type: "button", class: "deny", "data-answer": "deny", text: "Deny" }),
  ];
  const status = el("span", { class: "answer-status", "aria-live": "polite" });
  for (const b of buttons) {
    b.disabled = !atLeast("approver");
    b.addEventListener("click", async () => {
      for (const x of buttons) x.disabled = true;
      status.textContent = "sending…";
      try {
        await api("POST", `/api/approvals/${encodeURIComponent(id)}`, { answer: b.dataset.answer });
        status.textContent = ANSWER_TEXT[b.dataset.answer];
        onDone(b.dataset.answer);
      } catch (e) {
        status.textContent = e.status === 409 ? "already answered" : `failed: ${e.message}`;
        if (e.status !== 409) for (const x of buttons) x.disabled = false;
      }
    });
    bar.append(b);
  }
  bar.append(status);
  return bar;
}

function settleCard(card, settled, by) {
  if (!card) return;
  const answer = answerName(settled);
  card.dataset.state = answer;
  for (const b of card.querySelectorAll("button[data-answer]")) b.disabled = true;
  const s = card.querySelector(".answer-status");
  if (s) s.textContent = `${ANSWER_TEXT[answer] || answer}${by ? ` by ${by}` : ""}`;
}

function findApprovalCard(id) {
  for (const c of $("transcript").querySelectorAll('[data-testid="approval"]')) if (c.dataset.approvalId === id) return c;
  return null;
}

function scrolledToEnd(t) {
  return t.scrollHeight - t.scrollTop - t.clientHeight < 40;
}

function handleEvent(ev) {
  if (!ev || typeof ev.seq !== "number" || ev.seq <= state.lastSeq) return; // no repeats
  state.lastSeq = ev.seq;
  const t = $("transcript");
  const stick = scrolledToEnd(t);
  const d = ev.data || {};
  switch (ev.kind) {
    case "turn_started":
      state.turn = { assistant: null, streamed: false, calls: [] };
      t.append(eventRow(ev, "msg user", "msg-user", d.text || ""));
      setRunning(true);
      break;
    case "text_delta": {
      const turn = turnState();
      turn.reasoning = null; // reasoning after answer text is a new block
      if (!turn.assistant) {
        turn.assistant = eventRow(ev, "msg assistant", "msg-assistant");
        t.append(turn.assistant);
      }
      turn.assistant.append(document.createTextNode(d.text || ""));
      turn.streamed = true;
      break;
    }
    case "reasoning_delta": {
      // The model's reasoning, apart from (and before) its answer; never part of it.
      const turn = turnState();
      if (!turn.reasoning) {
        turn.reasoning = eventRow(ev, "msg reasoning", "msg-reasoning");
        turn.reasoning.setAttribute("aria-label", "Model reasoning");
        t.append(turn.reasoning);
      }
      turn.reasoning.append(document.createTextNode(d.text || ""));
      break;
    }
    case "tool_call":
      turnState().assistant = null; // text after a tool call is a new message
      if (d.id) turnState().calls.push(d.id);
      t.append(toolCallNode(d.id, d.name, d.arguments, ev.seq));
      break;
    case "tool_result":
      turnState().assistant = null;
      t.append(toolResultNode(d.call_id, d.name, d.content, d.is_error, ev.seq));
      break;
    case "approval_requested": {
      turnState().assistant = null;
      const card = eventRow(ev, "approval", "approval", el("div", { class: "tool-head" }, el("span", { class: "tag warn", text: "approval needed" })));
      card.dataset.approvalId = d.id;
      card.dataset.state = "pending";
      card.setAttribute("role", "group");
      card.setAttribute("aria-label", "Approval request");
      card.append(approvalBody(d), answerButtons(d.id, (answer) => settleCard(card, answer)));
      t.append(card);
      if (d.labels) renderLabels(d.labels);
      break;
    }
    case "approval_settled":
      settleCard(findApprovalCard(d.id), d.answer, d.by);
      break;
    case "turn_finished": {
      const turn = turnState();
      // The answer is authoritative: it replaces what was streamed for the last message.
      if (turn.assistant) turn.assistant.textContent = d.answer || "";
      else if (d.answer) {
        turn.assistant = eventRow(ev, "msg assistant", "msg-assistant", d.answer);
        t.append(turn.assistant);
      }
      if (turn.assistant) turn.assistant.dataset.final = "true";
      const end = eventRow(ev, "turn-end", "turn-finished", `done in ${d.steps ?? "?"} step(s)`);
      t.append(end);
      if (turn.calls && turn.calls.length) showTurnChanges(end, turn.calls, state.wsGen);
      if (d.labels) renderLabels(d.labels);
      state.turn = null;
      setRunning(false);
      break;
    }
    case "turn_failed":
      t.append(eventRow(ev, "turn-end is-error", "turn-error", `The turn failed: ${d.error || "unknown error"}`));
      state.turn = null;
      setRunning(false);
      break;
    default:
      // A kind this page does not know yet: show it plainly rather than drop it.
      t.append(eventRow(ev, "event other", "event", `${ev.kind}: ${JSON.stringify(d)}`));
  }
  if (stick) t.scrollTop = t.scrollHeight;
}

// ---- a turn's workspace changes ---------------------------------------------------------

// After the turn that ended at `anchor`: the files its calls changed (as the session's
// journal has them now), each with its diff, and an undo of those calls.
async function showTurnChanges(anchor, calls, gen) {
  const session = state.session;
  let r;
  try {
    r = await api("GET", `/api/sessions/${encodeURIComponent(session)}/changes`);
  } catch (e) {
    if (gen !== state.wsGen) return;
    anchor.after(el("div", { class: "changes is-error", "data-testid": "changes-error", text: `Cannot list this turn's changes: ${e.message}` }));
    return;
  }
  if (gen !== state.wsGen) return;
  const mine = (r.changes || []).filter((f) => (f.calls || []).some((c) => calls.includes(c)));
  if (!mine.length) return;
  const box = el("div", { class: "changes", "data-testid": "changes", role: "group", "aria-label": "Files this turn changed" });
  box.append(el("div", { class: "tool-head" }, el("span", { class: "tag", text: "changed files" })));
  for (const f of mine) {
    box.append(
      el(
        "details",
        { class: "change", "data-testid": "change", "data-path": f.path, "data-kind": f.kind },
        el("summary", {}, el("span", { class: `kind ${f.kind}`, text: f.kind }), " ", el("code", { text: f.path })),
        el("pre", { class: "diff", "data-testid": "diff", text: f.diff }),
      ),
    );
  }
  // Undo this turn's calls, latest first, so a file changed twice goes back step by step.
  const turnCalls = calls.filter((c) => mine.some((f) => f.calls.includes(c))).reverse();
  const button = el("button", { type: "button", class: "undo", "data-testid": "undo", text: "Undo these changes" });
  const report = el("div", { class: "undo-report", "data-testid": "undo-report", "aria-live": "polite" });
  button.disabled = !atLeast("approver");
  button.addEventListener("click", async () => {
    button.disabled = true;
    report.replaceChildren("undoing…");
    const lines = [];
    let complete = true;
    try {
      for (const call of turnCalls) {
        const u = await api("POST", `/api/sessions/${encodeURIComponent(session)}/undo`, { call });
        for (const p of u.restored || []) lines.push(["restored", `restored ${p}`]);
        for (const p of u.unchanged || []) lines.push(["unchanged", `unchanged ${p} (already as before)`]);
        for (const l of u.left_alone || []) lines.push(["left-alone", `left alone ${l}`]);
        for (const l of u.failed || []) lines.push(["failed", `failed ${l}`]);
        complete = complete && u.complete;
      }
    } catch (e) {
      complete = false;
      lines.push(["failed", `undo failed: ${e.message}`]);
      button.disabled = false;
    }
    report.dataset.complete = String(complete);
    report.replaceChildren(...lines.map(([k, text]) => el("div", { class: `undo-line ${k}`, "data-outcome": k, text })));
  });
  box.append(el("div", { class: "answers" }, button), report);
  anchor.after(box);
}

function setRunning(running) {
  $("send").disabled = running || !atLeast("operator");
  $("send").textContent = running ? "Working…" : "Send";
}

async function sendMessage(ev) {
  ev.preventDefault();
  fieldError("chat-error", "");
  const input = $("message-input");
  const text = input.value.trim();
  if (!text) return;
  if (!state.session) {
    await newSession();
    if (!state.session) return;
  }
  $("send").disabled = true;
  try {
    await api("POST", `/api/sessions/${encodeURIComponent(state.session)}/messages`, { text });
    input.value = "";
  } catch (e) {
    $("send").disabled = false;
    fieldError("chat-error", e.status === 409 ? "The agent is still working on the previous message." : `Not sent: ${e.message}`);
  }
}

// ---- approvals inbox ----------------------------------------------------------------

async function loadApprovals() {
  try {
    const { approvals } = await api("GET", "/api/approvals?status=pending");
    const list = approvals || [];
    updateBadge(list.length);
    if (state.view !== "approvals") return;
    const box = $("approvals-list");
    const seen = new Set();
    for (const a of list) {
      seen.add(a.id);
      if ([...box.children].some((c) => c.dataset.approvalId === a.id)) continue;
      const card = el(
        "article",
        { class: "card approval", "data-testid": "approval-card", "data-approval-id": a.id, "data-state": "pending" },
        el(
          "div",
          { class: "card-head" },
          el("strong", { text: a.agent || "" }),
          el("span", { class: "muted", text: ` session ${(a.session || "").slice(-8)} · ${when(a.created_at)}` }),
          a.expires_at ? el("span", { class: "muted", text: ` · expires ${when(a.expires_at)}` }) : null,
        ),
        approvalBody(a),
      );
      card.append(answerButtons(a.id, (answer) => settleCard(card, answer)));
      box.append(card);
    }
    // Requests answered elsewhere disappear, unless answered here (kept to show how).
    for (const c of [...box.children]) if (!seen.has(c.dataset.approvalId) && c.dataset.state === "pending") c.remove();
    show($("approvals-empty"), box.children.length === 0);
  } catch (e) {
    if (state.view === "approvals") notice(`Cannot load approvals: ${e.message}`);
  }
}

// ---- pairing requests ---------------------------------------------------------------

// Pending, unexpired codes with a role, Approve and Deny; operator scope decides.
async function loadPairing() {
  try {
    const { pairings } = await api("GET", "/api/pairing");
    if (state.view !== "approvals") return;
    const pending = (pairings || []).filter((p) => p.status === "pending" && !p.expired && p.code);
    const box = $("pairing-list");
    const seen = new Set();
    for (const p of pending) {
      seen.add(p.code);
      if ([...box.children].some((c) => c.dataset.code === p.code)) continue;
      const card = el(
        "article",
        { class: "card pairing", "data-testid": "pairing-card", "data-code": p.code, "data-state": "pending" },
        el(
          "div",
          { class: "card-head" },
          el("strong", { text: p.code }),
          el("span", { class: "muted", text: ` ${p.channel} · expires ${when(p.expires_at)}` }),
        ),
        el(
          "div",
          {},
          el("span", { class: "field", text: "Sender: " }),
          el("code", { text: p.sender }),
          p.sender_name ? el("span", { class: "muted", text: ` (shown as ${p.sender_name})` }) : null,
        ),
      );
      card.append(pairingButtons(card, p.code));
      box.append(card);
    }
    for (const c of [...box.children]) if (!seen.has(c.dataset.code) && c.dataset.state === "pending") c.remove();
    show($("pairing-empty"), box.children.length === 0);
  } catch (e) {
    if (state.view === "approvals") notice(`Cannot load pairing requests: ${e.message}`);
  }
}

// The role is chosen before approving; `user` unless the operator picks another.
function pairingButtons(card, code) {
  const bar = el("div", { class: "answers", role: "group", "aria-label": `Decide pairing ${code}` });
  const role = el(
    "select",
    { "data-testid": "pairing-role", "aria-label": `Role for ${code}` },
    ...["user", "approver", "owner"].map((r) => el("option", { value: r, text: r })),
  );
  const buttons = [
    el("button", { type: "button", class: "approve", "data-decision": "approve", text: "Approve" }),
    el("button", { type: "button", class: "deny", "data-decision": "deny", text: "Deny" }),
  ];
  const controls = [role, ...buttons];
  const status = el("span", { class: "answer-status", "aria-live": "polite" });
  for (const x of controls) x.disabled = !atLeast("operator");
  for (const b of buttons) {
    b.addEventListener("click", async () => {
      for (const x of controls) x.disabled = true;
      status.textContent = "sending…";
      const decision = b.dataset.decision;
      const chosen = role.value;
      try {
        await api("POST", `/api/pairing/${encodeURIComponent(code)}`, decision === "approve" ? { decision, role: chosen } : { decision });
        card.dataset.state = decision === "approve" ? "approved" : "denied";
        status.textContent = decision === "approve" ? `approved as ${chosen}` : "denied";
      } catch (e) {
        status.textContent = e.status === 404 || e.status === 409 ? "already decided or expired" : `failed: ${e.message}`;
        if (e.status !== 404 && e.status !== 409) for (const x of controls) x.disabled = false;
      }
    });
  }
  bar.append(role, ...buttons, status);
  return bar;
}

function updateBadge(n) {
  const b = $("approvals-badge");
  b.textContent = n ? String(n) : "";
  show(b, n > 0);
}

// ---- sessions list ------------------------------------------------------------------

async function loadSessions() {
  try {
    const { sessions } = await api("GET", "/api/sessions");
    const rows = (sessions || []).map((s) =>
      el(
        "tr",
        { "data-testid": "session-row", "data-session-id": s.id },
        el("td", {}, el("code", { text: s.id })),
        el("td", { text: s.agent }),
        el("td", { text: when(s.updated_at) }),
        el("td", { text: s.items ?? "" }),
        el("td", {}, labelBadges(s.labels)),
        el("td", { text: s.running ? "running" : "idle" }),
        el(
          "td",
          {},
          el("button", { type: "button", "data-testid": "open-session", "data-session-id": s.id, text: "Open" }),
        ),
      ),
    );
    $("sessions-list").replaceChildren(...rows);
    if (rows.length === 0) $("sessions-list").append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No sessions yet." })));
  } catch (e) {
    notice(`Cannot load sessions: ${e.message}`);
  }
}

async function openFromList(ev) {
  const b = ev.target.closest('button[data-testid="open-session"]');
  if (!b) return;
  const id = b.dataset.sessionId;
  try {
    const detail = await api("GET", `/api/sessions/${encodeURIComponent(id)}`);
    if (detail.session && detail.session.agent) $("agent-select").value = detail.session.agent;
    setView("chat");
    await openSession(id);
    await loadSessionChoices(false);
  } catch (e) {
    notice(`Cannot open the session: ${e.message}`);
  }
}

// ---- audit --------------------------------------------------------------------------

function summarize(r) {
  const d = r.data || {};
  const parts = [];
  for (const k of ["action", "tool", "decision", "state", "status", "reason", "rule", "alert", "error"]) {
    if (d[k] !== undefined && d[k] !== null && typeof d[k] !== "object") parts.push(`${k}: ${d[k]}`);
  }
  return parts.join(" · ");
}

async function loadAudit(older) {
  const filters = {
    session: $("audit-session").value.trim(),
    kind: $("audit-kind").value,
    decision: $("audit-decision").value,
    limit: 100,
    before: older ? state.auditBefore : null,
  };
  try {
    const { records } = await api("GET", `/api/audit${q(filters)}`);
    const list = records || [];
    const rows = list.map((r) => {
      const details = el(
        "details",
        {},
        el("summary", { text: summarize(r) || "data" }),
        el("pre", { class: "json", text: JSON.stringify(r.data, null, 2) }),
      );
      return el(
        "tr",
        {
          "data-testid": "audit-record",
          "data-seq": r.seq,
          "data-kind": r.kind,
          "data-decision": r.data && typeof r.data.decision === "string" ? r.data.decision : null,
          class: r.kind === "alert" || (r.data && r.data.decision === "deny") ? "flag" : null,
        },
        el("td", { text: r.seq }),
        el("td", { text: when(r.ts || r.at) }),
        el("td", {}, el("code", { text: r.kind })),
        el("td", {}, el("code", { text: r.session ? r.session.slice(-8) : "", title: r.session || null })),
        el("td", {}, details),
      );
    });
    if (older) $("audit-records").append(...rows);
    else $("audit-records").replaceChildren(...rows);
    if (list.length) state.auditBefore = list[list.length - 1].seq;
    show($("audit-older"), list.length === filters.limit);
  } catch (e) {
    notice(`Cannot load the audit log: ${e.message}`);
  }
}

async function verifyAudit() {
  const s = $("audit-verify-status");
  s.dataset.ok = "";
  s.className = "";
  s.textContent = "verifying…";
  try {
    const v = await api("GET", "/api/audit/verify");
    s.dataset.ok = v.ok ? "true" : "false";
    s.className = v.ok ? "ok" : "error";
    s.textContent = v.ok
      ? `Intact: ${v.records} records, head ${String(v.head || "").slice(0, 16)}…`
      : `BROKEN: ${v.error || "the hash chain does not verify"}`;
  } catch (e) {
    s.dataset.ok = "false";
    s.className = "error";
    s.textContent = `Cannot verify: ${e.message}`;
  }
}

// ---- skills -------------------------------------------------------------------------

async function loadSkills() {
  try {
    const { skills } = await api("GET", "/api/skills");
    const list = (v) => (v && v.length ? v.join(", ") : "none");
    const rows = skills.map((s) => {
      const c = s.capabilities || {};
      const caps = `egress ${list(c.egress)}; secrets ${list(c.secrets)}; programs ${list(c.bins)}; workspace ${c.workspace || "read"}`;
      return el("tr", { "data-testid": "skill-row", "data-skill": s.name, "data-intact": String(s.intact) },
        el("td", { text: s.name }),
        el("td", { text: s.version || "" }),
        el("td", { "data-testid": "skill-sha256", title: s.sha256, text: s.sha256 }),
        el("td", { "data-testid": "skill-verdict", text: s.verdict + (s.accepted_risk ? " (risk accepted)" : "") }),
        el("td", { text: s.agents && s.agents.length ? s.agents.join(", ") : "all" }),
        el("td", { "data-testid": "skill-capabilities", text: caps }),
        el("td", { class: s.intact ? "" : "error", text: s.intact ? "matches its pin" : `REFUSED: ${s.drift}` }));
    });
    $("skills-list").replaceChildren(...rows);
    show($("skills-empty"), rows.length === 0);
  } catch (e) {
    notice(`Cannot load the skills: ${e.message}`);
  }
}

// ---- config -------------------------------------------------------------------------

async function loadConfig() {
  try {
    const c = await api("GET", "/api/config");
    $("config-tier").textContent = c.tier || "";
    $("config-json").textContent = JSON.stringify(c.config, null, 2);
  } catch (e) {
    notice(`Cannot load the configuration: ${e.message}`);
  }
}

// ---- start --------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  for (const b of document.querySelectorAll("#nav button[data-view]")) b.addEventListener("click", () => setView(b.dataset.view));
  $("agent-select").addEventListener("change", () => {
    openSession(null);
    loadSessionChoices(true).catch((e) => fieldError("chat-error", e.message));
  });
  $("session-select").addEventListener("change", (e) => openSession(e.target.value || null));
  $("new-session").addEventListener("click", newSession);
  $("message-form").addEventListener("submit", sendMessage);
  $("message-input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("message-form").requestSubmit();
  });
  $("approvals-refresh").addEventListener("click", loadApprovals);
  $("sessions-refresh").addEventListener("click", loadSessions);
  $("sessions-list").addEventListener("click", openFromList);
  $("audit-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadAudit(false);
  });
  $("audit-older").addEventListener("click", () => loadAudit(true));
  $("audit-verify").addEventListener("click", verifyAudit);
}

async function start() {
  wire();
  // An existing browser session (the cookie) skips the login form. Nothing from the URL
  // is consulted, whatever it carries.
  try {
    const r = await fetch("/api/whoami", { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (r.ok) {
      const w = await r.json();
      if (w.via === "session" || w.csrf || w.csrf_token) {
        loggedIn(w.scope, w.csrf ?? w.csrf_token);
        return;
      }
    }
  } catch {
    // Shown as the login form below.
  }
  loggedOut("");
  $("login-token").focus();
}

start();
