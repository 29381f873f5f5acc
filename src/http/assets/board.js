// Accord board: follows /api/watch (server-sent events read with fetch, so the request
// can carry a bearer token), keeps one card per initiative up to date in place, and
// shows one initiative in detail from /api/initiatives/{key}. Every piece of data goes
// into the page as text nodes or attributes, never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "accord.board.token";
  const STATUS_ORDER = { blocked: 0, pending: 1, no_decisions: 2, aligned: 3 };
  const STATUS_TEXT = { aligned: "aligned", pending: "pending", blocked: "blocked", no_decisions: "no decisions" };
  const STATUS_ICON = { aligned: "✓", pending: "◔", blocked: "⊘", no_decisions: "○" };
  const STATE_ICON = { approved: "✓", pending: "◔", blocked: "⊘", rejected: "✕", not_applicable: "–" };
  const STATE_TEXT = { approved: "approved", pending: "pending", blocked: "blocked", rejected: "rejected", not_applicable: "not needed" };
  const MAX_OUTSTANDING = 4;

  const $ = (id) => document.getElementById(id);
  const views = new Map(); // initiative_id -> AlignmentView
  let lastPosition = 0;
  let controller = null;
  let retryTimer = null;
  let backoff = 1000;
  let generation = 0;
  let caughtUp = false;
  let openKey = null;
  let openId = null;
  let detailTimer = null;

  // ---- DOM helpers (text only) -------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function relative(iso) {
    const then = new Date(iso).getTime();
    if (Number.isNaN(then)) return "";
    const seconds = Math.round((Date.now() - then) / 1000);
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 36) return `${hours} h ago`;
    const days = Math.round(hours / 24);
    if (days < 60) return `${days} d ago`;
    return new Date(iso).toLocaleDateString();
  }

  function exact(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function timeEl(iso) {
    return el("time", { datetime: iso, title: exact(iso), "data-relative": "" }, relative(iso));
  }

  function statusBadge(status) {
    const text = STATUS_TEXT[status] || status;
    return el("span", { class: `status status-${status}`, "aria-label": `status: ${text}` },
      el("span", { "aria-hidden": "true" }, STATUS_ICON[status] || "•"), text);
  }

  function chip(functionName, state) {
    const text = STATE_TEXT[state] || state;
    return el("li", {
      class: `chip chip-${state}`, "data-function": functionName, "data-state": state,
      "aria-label": `${functionName}: ${text}`, title: `${functionName}: ${text}`,
    }, el("span", { class: "icon", "aria-hidden": "true" }, STATE_ICON[state] || "•"),
    el("span", { class: "fn" }, functionName), el("span", { class: "state" }, text));
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  // ---- Connection and authentication -------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
  }

  function headers() {
    const t = token();
    return t ? { Authorization: `Bearer ${t}` } : {};
  }

  function setConnection(state, text) {
    $("connection").dataset.state = state;
    $("connection-text").textContent = text;
  }

  function showTokenForm(reason) {
    $("token-panel").hidden = false;
    $("token-reason").textContent = reason || "This board needs a bearer token with an Accord role.";
    setConnection("signed-out", "signed out");
    $("token-form").elements.token.focus();
  }

  function updateTokenStatus() {
    const has = Boolean(token());
    $("token-status").textContent = has ? "Using a bearer token from this tab." : "";
    $("forget-token").hidden = !has;
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error || response.statusText;
    } catch {
      return response.statusText || `HTTP ${response.status}`;
    }
  }

  // ---- Filters -----------------------------------------------------------------------

  function filterParams() {
    const form = $("filters");
    const params = new URLSearchParams();
    for (const name of ["status", "pending_function", "stage", "owner"]) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    if (form.elements.include_archived.checked) params.set("include_archived", "true");
    return params;
  }

  function restoreFilters() {
    const params = new URLSearchParams(location.search);
    const form = $("filters");
    for (const name of ["status", "pending_function", "stage", "owner"]) {
      if (params.has(name)) form.elements[name].value = params.get(name);
    }
    form.elements.include_archived.checked = params.get("include_archived") === "true";
  }

  function filtersChanged() {
    const params = filterParams();
    const query = params.toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
    // A new filter is a new subscription: start from a fresh snapshot.
    views.clear();
    lastPosition = 0;
    renderBoard();
    connect();
  }

  // ---- The event stream --------------------------------------------------------------

  function scheduleReconnect(reason) {
    clearTimeout(retryTimer);
    const wait = backoff;
    backoff = Math.min(backoff * 2, 30000);
    setConnection("reconnecting", `${reason}; reconnecting in ${Math.round(wait / 1000)} s`);
    retryTimer = setTimeout(connect, wait);
  }

  async function connect() {
    clearTimeout(retryTimer);
    if (controller) controller.abort();
    const mine = ++generation;
    controller = new AbortController();
    caughtUp = false;
    const params = filterParams();
    if (lastPosition > 0) params.set("after_position", String(lastPosition));
    setConnection("connecting", lastPosition > 0 ? "catching up…" : "connecting…");
    let response;
    try {
      response = await fetch(`/api/watch?${params}`, {
        headers: { Accept: "text/event-stream", ...headers() },
        signal: controller.signal,
        cache: "no-store",
      });
    } catch (error) {
      if (mine === generation && error.name !== "AbortError") scheduleReconnect("connection failed");
      return;
    }
    if (mine !== generation) return;
    if (response.status === 401 || response.status === 403) {
      showTokenForm(await errorText(response));
      return;
    }
    if (response.status === 400) {
      const message = await errorText(response);
      showNotice(`Filter not accepted — ${message}`);
      setConnection("error", "filter not accepted");
      return;
    }
    if (!response.ok || !response.body) {
      scheduleReconnect(`server answered ${response.status}`);
      return;
    }
    $("token-panel").hidden = true;
    showNotice(null);
    try {
      await readEvents(response.body, mine);
    } catch (error) {
      if (error.name === "AbortError" || mine !== generation) return;
    }
    if (mine === generation) scheduleReconnect("stream ended");
  }

  async function readEvents(body, mine) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done || mine !== generation) return;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (event.data.length > 0) dispatch(event.type, event.data.join("\n"), event.id);
          event = { type: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event.type = value;
        else if (field === "data") event.data.push(value);
        else if (field === "id") event.id = value;
      }
    }
  }

  function dispatch(type, data, id) {
    let payload;
    try { payload = JSON.parse(data); } catch { return; }
    const position = id !== null && /^\d+$/.test(id) ? Number(id) : null;
    if (type === "alignment") {
      const fresh = !views.has(payload.initiative_id);
      views.set(payload.initiative_id, payload);
      if (caughtUp) upsertCard(payload, !fresh); else scheduleRender();
      if (openId === payload.initiative_id || openKey === payload.key) refreshDetailSoon();
    } else if (type === "removed") {
      views.delete(payload.initiative_id);
      const card = document.querySelector(`article[data-id="${CSS.escape(payload.initiative_id)}"]`);
      if (card) card.remove();
      renderSummary();
    } else if (type === "caught_up") {
      caughtUp = true;
      backoff = 1000;
      renderBoard();
      setConnection("live", "live");
    } else if (type === "resync") {
      setConnection("connecting", "catching up…");
    }
    if (position !== null && position > lastPosition) lastPosition = position;
  }

  // ---- Rendering the board -----------------------------------------------------------

  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; renderBoard(); });
  }

  function sorted() {
    return [...views.values()].sort((a, b) =>
      (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) || a.key.localeCompare(b.key));
  }

  function renderBoard() {
    const board = $("board");
    board.replaceChildren(...sorted().map(card));
    $("empty").hidden = views.size > 0 || !caughtUp;
    renderSummary();
    renderSuggestions();
  }

  function upsertCard(view, changed) {
    const existing = document.querySelector(`article[data-id="${CSS.escape(view.initiative_id)}"]`);
    const fresh = card(view);
    if (existing) existing.replaceWith(fresh); else $("board").append(fresh);
    // Keep the order (status, then key) without rebuilding the other cards.
    const order = sorted().map((v) => v.initiative_id);
    const index = order.indexOf(view.initiative_id);
    const next = index >= 0 && index + 1 < order.length
      ? document.querySelector(`article[data-id="${CSS.escape(order[index + 1])}"]`) : null;
    if (next && next !== fresh.nextSibling) $("board").insertBefore(fresh, next);
    else if (!next) $("board").append(fresh);
    if (changed) fresh.classList.add("flash");
    $("empty").hidden = true;
    renderSummary();
    renderSuggestions();
  }

  function renderSummary() {
    const counts = { blocked: 0, pending: 0, aligned: 0, no_decisions: 0 };
    for (const view of views.values()) counts[view.status] = (counts[view.status] || 0) + 1;
    const parts = [el("span", { class: "count" }, el("strong", {}, String(views.size)), views.size === 1 ? " initiative" : " initiatives")];
    for (const status of ["blocked", "pending", "aligned", "no_decisions"]) {
      if (counts[status]) parts.push(el("span", { class: "count" }, statusBadge(status), el("strong", {}, String(counts[status]))));
    }
    $("summary").replaceChildren(...parts);
  }

  function renderSuggestions() {
    const functions = new Set();
    const owners = new Set();
    for (const view of views.values()) {
      for (const f of view.required_functions) functions.add(f);
      owners.add(view.owner);
    }
    $("known-functions").replaceChildren(...[...functions].sort().map((f) => el("option", { value: f })));
    $("known-owners").replaceChildren(...[...owners].sort().map((o) => el("option", { value: o })));
  }

  function card(view) {
    const open = () => openDetail(view.key, view.initiative_id);
    const score = view.total_pairs > 0 ? Math.round((view.approved_pairs / view.total_pairs) * 100) : 0;
    const outstanding = view.outstanding || [];
    const shown = outstanding.slice(0, MAX_OUTSTANDING);
    const evidence = view.evidence || { internal: 0, user_research: 0, customer: 0 };
    // A view lists only its most recent items; `counts` has the exact sizes.
    const counted = (name) => (view.counts && view.counts[name] !== undefined ? view.counts[name] : (view[name] || []).length);
    const objections = counted("open_objections");
    const concerns = counted("open_concerns");
    const overrides = counted("overrides");
    const stale = counted("stale_sign_offs");
    const titleId = `title-${view.initiative_id}`;
    return el("article", {
      class: `card${view.archived ? " archived" : ""}`, "data-id": view.initiative_id, "data-key": view.key,
      "data-status": view.status, "aria-labelledby": titleId,
      onclick: (event) => { if (!event.target.closest("button, a")) open(); },
    },
    el("div", { class: "card-top" },
      el("span", { class: "key" }, view.key, view.archived ? " · archived" : ""),
      statusBadge(view.status)),
    el("h2", { id: titleId }, el("button", { type: "button", onclick: open, "aria-label": `${view.key}: ${view.title} — open details` }, view.title)),
    el("div", { class: "meta" },
      el("span", {}, el("span", { class: "label" }, "owner "), view.owner),
      el("span", {}, el("span", { class: "label" }, "stage "), view.stage),
      el("span", {}, plural(view.counts ? view.counts.open_decisions : (view.decisions || []).filter((d) => d.status === "proposed").length, "open decision"))),
    el("ul", { class: "chips", "aria-label": "Sign-off by function" },
      (view.functions || []).map((f) => chip(f.function, f.state))),
    el("div", { class: "score" },
      el("div", {
        class: "bar", role: "progressbar", "aria-label": "Sign-offs in place",
        "aria-valuemin": "0", "aria-valuemax": String(view.total_pairs), "aria-valuenow": String(view.approved_pairs),
      }, bar(score)),
      el("span", { class: "numbers" },
        view.total_pairs > 0
          ? [el("strong", {}, `${view.approved_pairs}/${view.total_pairs}`), ` sign-offs · ${score}%`]
          : "nothing to sign")),
    shown.length > 0 ? el("ul", { class: "outstanding", "aria-label": "Outstanding" },
      shown.map(outstandingItem),
      counted("outstanding") > shown.length ? el("li", { class: "more" }, `and ${counted("outstanding") - shown.length} more…`) : null)
      : view.status === "aligned" ? el("p", { class: "all-clear" }, "✓ Nothing outstanding: every function has signed.") : null,
    el("div", { class: "facts" },
      objections > 0 ? el("span", { class: "warn" }, `⊘ ${plural(objections, "open objection")}`) : null,
      concerns > 0 ? el("span", {}, `! ${plural(concerns, "open concern")}`) : null,
      overrides > 0 ? el("span", { class: "warn" }, `⚑ ${plural(overrides, "override")}`) : null,
      stale > 0 ? el("span", {}, `↺ ${plural(stale, "stale sign-off")}`) : null,
      el("span", { title: "evidence: user research · customer · internal" },
        `evidence ${evidence.user_research} research · ${evidence.customer} customer · ${evidence.internal} internal`),
      el("span", {}, "active ", timeEl(view.last_activity))));
  }

  function bar(percent) {
    // Set through the CSSOM: the page's content security policy refuses style attributes.
    const fill = el("span", {});
    fill.style.width = `${percent}%`;
    return fill;
  }

  function outstandingItem(item) {
    const state = STATE_TEXT[item.state] || item.state;
    const who = item.can_sign || [];
    const verb = item.state === "blocked" ? "raised by" : item.state === "rejected" ? "rejected by" : "can sign";
    return el("li", {},
      el("span", { class: `chip chip-${item.state}`, "aria-label": `${item.function}: ${state}` },
        el("span", { class: "icon", "aria-hidden": "true" }, STATE_ICON[item.state] || "•"), item.function),
      el("span", {}, item.decision_title ? `“${item.decision_title}” — ` : "the initiative — ",
        // A rejection's reason says who rejected it and why ("rejected by bo@…: fees").
        item.state === "rejected" && item.reason ? el("span", { class: "reason" }, item.reason)
          : who.length > 0 ? [`${verb} `, el("span", { class: "who" }, who.join(", "))] : item.reason));
  }

  function showNotice(text) {
    $("notice").hidden = !text;
    $("notice").textContent = text || "";
  }

  // ---- Detail panel ------------------------------------------------------------------

  let lastFocus = null;
  function openDetail(key, id) {
    lastFocus = document.activeElement;
    openKey = key;
    openId = id || null;
    $("detail").hidden = false;
    $("detail-key").textContent = key;
    $("detail-title").textContent = "";
    $("detail-body").replaceChildren(el("p", { class: "none" }, "loading…"));
    $("detail").focus();
    loadDetail();
  }

  function closeDetail() {
    openKey = null;
    openId = null;
    $("detail").hidden = true;
    if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
  }

  function refreshDetailSoon() {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(loadDetail, 250);
  }

  async function loadDetail() {
    const key = openKey;
    if (!key) return;
    let response;
    try {
      response = await fetch(`/api/initiatives/${encodeURIComponent(key)}`, { headers: headers(), cache: "no-store" });
    } catch {
      if (key === openKey) $("detail-body").replaceChildren(el("p", { class: "none" }, "Could not reach the server."));
      return;
    }
    if (key !== openKey) return;
    if (response.status === 401 || response.status === 403) {
      showTokenForm(await errorText(response));
      return;
    }
    if (!response.ok) {
      $("detail-body").replaceChildren(el("p", { class: "none" }, await errorText(response)));
      return;
    }
    const detail = await response.json();
    if (key !== openKey) return;
    renderDetail(detail);
  }

  function renderDetail(detail) {
    const view = detail.alignment;
    openId = view.initiative_id;
    $("detail-key").textContent = `${view.key} · ${view.stage} · owner ${view.owner}`;
    $("detail-title").textContent = view.title;
    const body = [
      el("div", { class: "card-top" }, statusBadge(view.status),
        el("span", { class: "numbers" }, `${view.approved_pairs}/${view.total_pairs} sign-offs`)),
      view.summary ? el("p", { class: "summary-text" }, view.summary) : null,
      el("h3", {}, "Decisions"),
      detail.decisions.length > 0 ? detail.decisions.map(decision) : el("p", { class: "none" }, "No decision proposed yet."),
    ];
    if ((detail.feedback || []).length > 0) {
      body.push(el("h3", {}, "Feedback on the initiative"), feedbackList(detail.feedback));
    }
    body.push(el("h3", {}, "Timeline"),
      el("ol", { class: "timeline", "aria-label": "History, newest first" }, detail.timeline.map((entry) =>
        el("li", { class: `tone-${entry.tone}`, "data-type": entry.type },
          el("div", { class: "line1" }, el("span", { class: "actor" }, entry.actor), " · ", timeEl(entry.recorded_at),
            ` · v${entry.version}`),
          el("div", {}, entry.summary)))),
      detail.timeline_truncated ? el("p", { class: "none" }, "Older events are not shown.") : null);
    $("detail-body").replaceChildren(...body.flat().filter(Boolean));
  }

  function decision(d) {
    const open = d.status === "proposed";
    const badge = open ? statusBadge(d.alignment) : el("span", { class: `status status-${d.status}` }, d.status);
    return el("section", { class: "decision", "data-decision": d.decision_id, "aria-label": `Decision: ${d.title}` },
      el("div", { class: "decision-head" }, el("h4", {}, d.title), badge),
      el("div", { class: "sub" }, `revision ${d.revision} · proposed by ${d.proposed_by} `, timeEl(d.proposed_at),
        d.closure ? ` · ${d.status} by ${d.closure.by}${d.closure.reason ? `: ${d.closure.reason}` : ""}` : "",
        d.override ? ` · OVERRIDE: ${d.override.reason}` : ""),
      d.content && d.content.proposal ? el("p", { class: "proposal" }, d.content.proposal) : null,
      open ? el("ul", { class: "chips", "aria-label": "Sign-off by function" }, d.functions.map((f) => chip(f.function, f.state))) : null,
      open ? el("ul", { class: "reasons" }, d.functions.filter((f) => f.state !== "approved").map((f) =>
        el("li", {}, el("strong", {}, `${f.function}: `), f.reason,
          f.can_sign.length > 0 ? ` — ${f.state === "pending" ? "can sign" : "by"}: ${f.can_sign.join(", ")}` : ""))) : null,
      d.revisions.map((r) => revision(r, d)),
      d.feedback.length > 0 ? [el("div", { class: "revision-title feedback-title" }, "Feedback"), feedbackList(d.feedback)] : null);
  }

  function revision(r, d) {
    const current = r.number === d.revision;
    return el("div", { class: "revision" },
      el("div", { class: "revision-title" }, `Revision ${r.number}`,
        el("span", { class: "kind" }, ` · ${r.number === 1 ? "proposal" : r.kind}${current ? " · current" : ""}${r.number < d.material_base ? " · approvals stale" : ""} · by ${r.by} `),
        timeEl(r.at)),
      el("table", { class: "matrix", "aria-label": `Sign-offs of revision ${r.number}` },
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Function"), el("th", { scope: "col" }, "Verdicts"))),
        el("tbody", {}, r.matrix.map((row) => el("tr", { "data-function": row.function },
          el("th", { scope: "row" }, row.function),
          el("td", {}, row.sign_offs.length === 0 ? el("span", { class: "none" }, "no verdict")
            : row.sign_offs.map(verdict)))))));
  }

  function verdict(s) {
    const approve = s.verdict === "approve";
    const note = s.revoked ? " (revoked)" : s.replaced ? " (replaced)" : s.in_force && !s.counts ? " (does not count now)" : "";
    const words = [s.reason, s.comment].filter((w) => w && w.trim()).join(" — ");
    return el("span", {
      class: `verdict verdict-${s.verdict}${s.in_force ? "" : " stale"}`, "data-signer": s.signer,
      title: words || null,
    }, el("span", { "aria-hidden": "true" }, approve ? "✓" : "✕"),
    `${approve ? "approved" : "rejected"} by `, el("strong", {}, s.signer), note, " ",
    el("span", { class: "when" }, timeEl(s.at)));
  }

  function feedbackList(items) {
    return el("ul", { class: "feedback" }, items.map((f) => el("li", {},
      el("span", { class: `kind kind-${f.kind}` }, f.kind), ` from ${f.function} (${f.author}, ${f.source.replace("_", " ")}) `,
      timeEl(f.recorded_at),
      el("div", {}, f.body),
      f.resolution ? el("div", { class: "resolved" }, `✓ resolved by ${f.resolution.by}: ${f.resolution.text}`) : null)));
  }

  // ---- Wiring ------------------------------------------------------------------------

  function start() {
    restoreFilters();
    updateTokenStatus();
    let typing = null;
    const form = $("filters");
    form.addEventListener("change", filtersChanged);
    form.addEventListener("input", (event) => {
      if (event.target.tagName !== "INPUT" || event.target.type === "checkbox") return;
      clearTimeout(typing);
      typing = setTimeout(filtersChanged, 400);
    });
    form.addEventListener("submit", (event) => { event.preventDefault(); filtersChanged(); });
    form.addEventListener("reset", () => setTimeout(filtersChanged, 0));
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = event.target.elements.token.value.trim();
      if (!value) return;
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: kept for this page only */ }
      event.target.reset();
      $("token-panel").hidden = true;
      updateTokenStatus();
      connect();
      if (openKey) loadDetail();
    });
    $("forget-token").addEventListener("click", () => {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      updateTokenStatus();
      views.clear();
      lastPosition = 0;
      renderBoard();
      connect();
    });
    $("detail-close").addEventListener("click", closeDetail);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !$("detail").hidden) closeDetail();
    });
    setInterval(() => {
      for (const node of document.querySelectorAll("time[data-relative]")) {
        node.textContent = relative(node.getAttribute("datetime"));
      }
    }, 30000);
    connect();
    openLinkedInitiative();
  }

  // A link such as a webhook message's (`/?initiative=CHECKOUT-42`, or the initiative's
  // id) opens that initiative's detail on load; anything but a well-formed key or UUID is
  // ignored.
  function openLinkedInitiative() {
    const wanted = (new URLSearchParams(location.search).get("initiative") || "").trim();
    const key = wanted.toUpperCase();
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(wanted)) openDetail(wanted, null);
    else if (/^[A-Z](?:[A-Z0-9]|-(?=[A-Z0-9])){1,31}$/.test(key)) openDetail(key, null);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
