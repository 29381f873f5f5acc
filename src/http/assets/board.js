// Accord board: follows /api/watch (server-sent events read with fetch, so the request
// can carry a bearer token), keeps one card per initiative up to date, and shows one
// initiative in detail from /api/initiatives/{key}. Two views: "Waiting on me" (the
// landing view: /api/inbox for whoever the board is used by, see `identity`) and all
// initiatives (searched, sorted and grouped here, drawn a page at a time so that
// thousands stay responsive). The detail has an as-of slider over the initiative's
// versions (/api/initiatives/{key}/as-of) and a decision page with the diff between two
// revisions (…/decisions/{id}/diff). Every piece of data goes into the page as text
// nodes or attributes, never as markup.
"use strict";

(() => {
  const TOKEN_KEY = "accord.board.token";
  const ME_KEY = "accord.board.me";
  const STAGE_ORDER = { discovery: 0, definition: 1, delivery: 2, launched: 3, scaling: 4, sunset: 5 };
  const SORTS = ["status", "stage", "owner", "age", "recent", "key"];
  const GROUPS = ["", "status", "stage", "owner"];
  const PAGE = 60; // cards drawn at once; more as the list is scrolled
  const SEARCH_DELAY = 200;
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
  let view = "home"; // "home" (waiting on me) or "list"
  let arrange = { q: "", sort: "status", group: "" };
  let shown = PAGE; // how many cards of the list are drawn
  const drawn = new Map(); // initiative_id -> { view, node }: cards as last drawn

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

  // ---- Who the board is used by -----------------------------------------------------
  // The one place that decides who "me" is. With a bearer token (and, later, sign-in by
  // OpenID Connect, which sets the caller the same way) the server knows: /api/me names
  // the caller and /api/inbox answers theirs. In local development mode there is no
  // caller: the user types who they are (kept in localStorage) and the inbox is asked
  // for that principal.

  const identity = { principal: null, fromServer: false, localDevelopment: false, known: false };

  function typedPrincipal() {
    try { return localStorage.getItem(ME_KEY) || ""; } catch { return ""; }
  }

  function setTypedPrincipal(value) {
    try {
      if (value) localStorage.setItem(ME_KEY, value); else localStorage.removeItem(ME_KEY);
    } catch { /* private mode: kept for this page only */ }
    identity.principal = value || null;
  }

  // Asks the server who the caller is; false when the caller must sign in first.
  async function whoAmI() {
    let response;
    try {
      response = await fetch("/api/me", { headers: headers(), cache: "no-store" });
    } catch {
      return false;
    }
    if (response.status === 401 || response.status === 403) {
      showTokenForm(await errorText(response));
      return false;
    }
    if (!response.ok) return false;
    const me = await response.json();
    identity.localDevelopment = Boolean(me.local_development);
    identity.fromServer = Boolean(me.principal);
    identity.principal = me.principal || (identity.localDevelopment ? typedPrincipal() || null : null);
    identity.known = true;
    return true;
  }

  function inboxUrl() {
    if (identity.fromServer) return "/api/inbox";
    return `/api/inbox?principal=${encodeURIComponent(identity.principal || "")}`;
  }

  // ---- Views: waiting on me, and all initiatives --------------------------------------

  function showView(name, push) {
    view = name === "list" ? "list" : "home";
    $("home").hidden = view !== "home";
    $("list-view").hidden = view !== "list";
    for (const link of document.querySelectorAll(".views a")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    syncUrl(push);
    if (view === "home") loadInbox();
    else scheduleRender();
  }

  let inboxTimer = null;
  function refreshInboxSoon() {
    clearTimeout(inboxTimer);
    inboxTimer = setTimeout(loadInbox, 500);
  }

  let inboxGeneration = 0;
  async function loadInbox() {
    const mine = ++inboxGeneration;
    if (!identity.known && !(await whoAmI())) {
      if (mine === inboxGeneration) $("inbox-status").textContent = "Cannot tell who you are yet.";
      return;
    }
    renderIdentity();
    if (!identity.principal) {
      $("inbox").replaceChildren();
      $("inbox-status").textContent = identity.localDevelopment
        ? "Say who you are to see the sign-offs waiting on you."
        : "The server did not name you.";
      return;
    }
    let response;
    try {
      response = await fetch(inboxUrl(), { headers: headers(), cache: "no-store" });
    } catch {
      if (mine === inboxGeneration) $("inbox-status").textContent = "Could not reach the server.";
      return;
    }
    if (mine !== inboxGeneration) return;
    if (response.status === 401 || response.status === 403) {
      showTokenForm(await errorText(response));
      return;
    }
    if (!response.ok) {
      $("inbox-status").textContent = `Not shown — ${await errorText(response)}`;
      $("inbox").replaceChildren();
      return;
    }
    const inbox = await response.json();
    if (mine !== inboxGeneration) return;
    renderInbox(inbox);
  }

  function renderIdentity() {
    const who = identity.principal;
    $("me-line").textContent = who ? `for ${who}${identity.fromServer ? " (signed in)" : ""}` : "";
    $("me-change").hidden = !(identity.localDevelopment && !identity.fromServer && who);
    const ask = identity.localDevelopment && !identity.fromServer && !who;
    $("whoami").hidden = !ask;
  }

  function renderInbox(inbox) {
    const items = inbox.items || [];
    const count = $("inbox-count");
    count.hidden = items.length === 0;
    count.textContent = String(inbox.total ?? items.length);
    count.setAttribute("aria-label", `${plural(inbox.total ?? items.length, "sign-off")} waiting`);
    $("inbox-status").textContent = items.length === 0
      ? "✓ Nothing waits on you: no sign-off is pending on you."
      : `${plural(inbox.total ?? items.length, "sign-off")} waiting on you${inbox.truncated ? ` (the first ${items.length} shown)` : ""}.`;
    // One entry per initiative, its waiting sign-offs under it; oldest activity first.
    const byInitiative = new Map();
    for (const item of items) {
      if (!byInitiative.has(item.initiative_id)) byInitiative.set(item.initiative_id, []);
      byInitiative.get(item.initiative_id).push(item);
    }
    const groups = [...byInitiative.values()].sort((a, b) =>
      String(a[0].last_activity).localeCompare(String(b[0].last_activity)) || a[0].initiative_key.localeCompare(b[0].initiative_key));
    $("inbox").replaceChildren(...groups.map((group) => {
      const first = group[0];
      const titleId = `inbox-${first.initiative_id}`;
      return el("li", { class: "inbox-item", "data-key": first.initiative_key, "aria-labelledby": titleId },
        el("div", { class: "card-top" },
          el("span", { class: "key" }, first.initiative_key, ` · ${first.stage} · owner ${first.owner}`),
          statusBadge(first.initiative_status)),
        el("h3", { id: titleId }, el("button", {
          type: "button", class: "title-button", "aria-label": `${first.initiative_key}: ${first.initiative_title} — open details`,
          onclick: () => openDetail(first.initiative_key, first.initiative_id),
        }, first.initiative_title)),
        el("ul", { class: "outstanding", "aria-label": "Waiting on you" }, group.map((item) =>
          el("li", { "data-decision": item.decision_id, "data-function": item.function },
            el("span", { class: `chip chip-${item.state}`, "aria-label": `${item.function}: ${STATE_TEXT[item.state] || item.state}` },
              el("span", { class: "icon", "aria-hidden": "true" }, STATE_ICON[item.state] || "•"), item.function),
            el("span", {}, `sign “${item.decision_title}” (revision ${item.revision}) for ${item.function}`,
              item.via_team ? el("span", { class: "team" }, ` as a member of ${item.via_team}`) : null,
              item.reason ? el("span", { class: "reason" }, ` — ${item.reason}`) : null)))),
        el("div", { class: "facts" }, el("span", {}, "active ", timeEl(first.last_activity))));
    }));
  }

  // ---- The URL: view, filters, search, sort and group ----------------------------------

  function syncUrl(push) {
    const params = filterParams();
    if (view === "list") params.set("view", "list");
    if (arrange.q) params.set("q", arrange.q);
    if (arrange.sort !== "status") params.set("sort", arrange.sort);
    if (arrange.group) params.set("group", arrange.group);
    if (openKey) params.set("initiative", openKey);
    // Keep the filters first, as links made before had them.
    const query = params.toString();
    const url = query ? `?${query}` : location.pathname;
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }

  function restoreArrange() {
    const params = new URLSearchParams(location.search);
    const sort = params.get("sort") || "status";
    const group = params.get("group") || "";
    arrange = {
      q: (params.get("q") || "").slice(0, 200),
      sort: SORTS.includes(sort) ? sort : "status",
      group: GROUPS.includes(group) ? group : "",
    };
    const form = $("arrange");
    form.elements.q.value = arrange.q;
    form.elements.sort.value = arrange.sort;
    form.elements.group.value = arrange.group;
    view = params.get("view") === "list" ? "list" : "home";
  }

  function arrangeChanged() {
    const form = $("arrange");
    arrange = { q: form.elements.q.value.trim(), sort: form.elements.sort.value, group: form.elements.group.value };
    shown = PAGE;
    syncUrl(false);
    scheduleRender();
  }

  // ---- Filters (the server's: a new filter is a new subscription) -----------------------

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
    syncUrl(false);
    // A new filter is a new subscription: start from a fresh snapshot.
    views.clear();
    lastPosition = 0;
    shown = PAGE;
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
      views.set(payload.initiative_id, payload);
      scheduleRender();
      // The open detail is read again when its initiative moved past what it shows.
      const shows = lastDetail && lastDetail.alignment.initiative_id === payload.initiative_id
        && lastDetail.alignment.version === payload.version;
      if ((openId === payload.initiative_id || openKey === payload.key) && !shows) refreshDetailSoon();
      if (caughtUp) refreshInboxSoon();
    } else if (type === "removed") {
      views.delete(payload.initiative_id);
      scheduleRender();
      refreshInboxSoon();
    } else if (type === "caught_up") {
      if (!caughtUp && performance.getEntriesByName("accord:caught-up").length === 0) performance.mark("accord:caught-up");
      caughtUp = true;
      backoff = 1000;
      renderBoard();
      setConnection("live", "live");
      if (view === "home") refreshInboxSoon();
    } else if (type === "resync") {
      setConnection("connecting", "catching up…");
    }
    if (position !== null && position > lastPosition) lastPosition = position;
  }

  // ---- Rendering the list: search, sort, group, a page at a time ------------------------

  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; renderBoard(); });
  }

  const byKey = (a, b) => a.key.localeCompare(b.key);
  const COMPARE = {
    status: (a, b) => (STATUS_ORDER[a.status] ?? 9) - (STATUS_ORDER[b.status] ?? 9) || byKey(a, b),
    stage: (a, b) => (STAGE_ORDER[a.stage] ?? 9) - (STAGE_ORDER[b.stage] ?? 9) || byKey(a, b),
    owner: (a, b) => a.owner.localeCompare(b.owner) || byKey(a, b),
    age: (a, b) => String(a.last_activity).localeCompare(String(b.last_activity)) || byKey(a, b),
    recent: (a, b) => String(b.last_activity).localeCompare(String(a.last_activity)) || byKey(a, b),
    key: byKey,
  };
  const GROUP_OF = {
    status: (v) => ({ id: v.status, rank: STATUS_ORDER[v.status] ?? 9, label: STATUS_TEXT[v.status] || v.status }),
    stage: (v) => ({ id: v.stage, rank: STAGE_ORDER[v.stage] ?? 9, label: v.stage }),
    owner: (v) => ({ id: v.owner, rank: 0, label: v.owner }),
  };

  // Whether a view matches the search: every word in its key, title, owner or summary.
  function matcher(query) {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length === 0) return () => true;
    return (v) => {
      const text = `${v.key}\n${v.title}\n${v.owner}\n${v.summary || ""}`.toLowerCase();
      return words.every((word) => text.includes(word));
    };
  }

  // The list as drawn: initiatives matching the search in the chosen order, with a
  // heading before each group when grouped.
  function arranged() {
    const matches = [...views.values()].filter(matcher(arrange.q));
    const compare = COMPARE[arrange.sort] || COMPARE.status;
    const groupOf = GROUP_OF[arrange.group];
    if (!groupOf) return { matches: matches.sort(compare), groups: null };
    const groups = new Map();
    for (const v of matches) {
      const g = groupOf(v);
      if (!groups.has(g.id)) groups.set(g.id, { ...g, views: [] });
      groups.get(g.id).views.push(v);
    }
    const ordered = [...groups.values()].sort((a, b) => a.rank - b.rank || a.label.localeCompare(b.label));
    for (const g of ordered) g.views.sort(compare);
    return { matches: ordered.flatMap((g) => g.views), groups: ordered };
  }

  // A card as last drawn when its view has not changed (so focus and scroll stay), a
  // new one otherwise (flashing when it changed live).
  function cardFor(v) {
    const known = drawn.get(v.initiative_id);
    if (known && known.view === v) return known.node;
    const node = card(v);
    if (known && caughtUp) node.classList.add("flash");
    drawn.set(v.initiative_id, { view: v, node });
    return node;
  }

  function renderBoard() {
    const board = $("board");
    const { matches, groups } = arranged();
    const nodes = [];
    let left = shown;
    if (groups) {
      for (const g of groups) {
        if (left <= 0) break;
        nodes.push(groupHeading(g));
        for (const v of g.views.slice(0, left)) nodes.push(cardFor(v));
        left -= g.views.length;
      }
    } else {
      for (const v of matches.slice(0, shown)) nodes.push(cardFor(v));
    }
    // The first cards ever drawn are marked for the Performance API (benches/board.rs):
    // a mark when they go in, and element timing for when they are painted.
    const firstCard = !firstRowsMarked && nodes.find((node) => node.tagName === "ARTICLE");
    if (firstCard) {
      firstRowsMarked = true;
      firstCard.querySelector("h2 button")?.setAttribute("elementtiming", "first-rows");
      performance.mark("accord:first-rows");
    }
    // Put the nodes in place, moving only those out of place.
    let cursor = board.firstChild;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else board.insertBefore(node, cursor);
    }
    while (cursor) {
      const next = cursor.nextSibling;
      cursor.remove();
      cursor = next;
    }
    for (const id of drawn.keys()) if (!views.has(id)) drawn.delete(id);
    const rest = matches.length - Math.min(shown, matches.length);
    $("more").hidden = rest <= 0;
    $("more").textContent = rest > 0 ? `Show ${Math.min(rest, PAGE)} more (${rest} not shown yet)` : "";
    $("empty").hidden = matches.length > 0 || !caughtUp;
    $("empty").textContent = views.size > 0 ? "No initiative matches this search." : "No initiative matches these filters.";
    renderSummary(matches.length);
    renderSuggestions();
  }

  let firstRowsMarked = false;
  const headings = new Map();
  function groupHeading(g) {
    const id = `${arrange.group}:${g.id}`;
    const text = `${g.label} · ${g.views.length}`;
    let node = headings.get(id);
    if (!node || node.dataset.text !== text) {
      node = el("h2", { class: "group-heading", "data-group": g.id, "data-text": text },
        arrange.group === "status" ? statusBadge(g.id) : el("span", {}, g.label),
        el("span", { class: "group-count" }, plural(g.views.length, "initiative")));
      headings.set(id, node);
    }
    return node;
  }

  function showMore() {
    shown += PAGE;
    renderBoard();
  }

  function renderSummary(matching) {
    const counts = { blocked: 0, pending: 0, aligned: 0, no_decisions: 0 };
    for (const v of views.values()) counts[v.status] = (counts[v.status] || 0) + 1;
    const parts = [el("span", { class: "count" }, el("strong", {}, String(views.size)), views.size === 1 ? " initiative" : " initiatives")];
    for (const status of ["blocked", "pending", "aligned", "no_decisions"]) {
      if (counts[status]) parts.push(el("span", { class: "count" }, statusBadge(status), el("strong", {}, String(counts[status]))));
    }
    if (arrange.q && matching !== undefined) {
      parts.push(el("span", { class: "count", id: "search-count" }, el("strong", {}, String(matching)), ` matching “${arrange.q}”`));
    }
    $("summary").replaceChildren(...parts);
  }

  let suggested = "";
  function renderSuggestions() {
    const functions = new Set();
    const owners = new Set();
    for (const v of views.values()) {
      for (const f of v.required_functions) functions.add(f);
      owners.add(v.owner);
    }
    const fs = [...functions].sort();
    const os = [...owners].sort();
    const signature = `${fs.join(",")}|${os.join(",")}`;
    if (signature === suggested) return;
    suggested = signature;
    $("known-functions").replaceChildren(...fs.map((f) => el("option", { value: f })));
    $("known-owners").replaceChildren(...os.slice(0, 500).map((o) => el("option", { value: o })));
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
      (view.functions || []).map((f) => functionChip(view, f))),
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
    agreedList(view),
    el("div", { class: "facts" },
      objections > 0 ? el("span", { class: "warn" }, `⊘ ${plural(objections, "open objection")}`) : null,
      concerns > 0 ? el("span", {}, `! ${plural(concerns, "open concern")}`) : null,
      overrides > 0 ? el("span", { class: "warn" }, `⚑ ${plural(overrides, "override")}`) : null,
      stale > 0 ? el("span", {}, `↺ ${plural(stale, "stale sign-off")}`) : null,
      el("span", { title: "evidence: user research · customer · internal" },
        `evidence ${evidence.user_research} research · ${evidence.customer} customer · ${evidence.internal} internal`),
      el("span", {}, "active ", timeEl(view.last_activity))));
  }

  // Function states count open decisions only; a function no open decision needs that
  // approved the latest accepted decision needing it shows as agreed (from `agreed`).
  function agreedFunction(view, name) {
    const agreed = view.agreed || [];
    for (let i = agreed.length - 1; i >= 0; i--) {
      const f = (agreed[i].functions || []).find((g) => g.function === name);
      if (f) return f.state === "approved" ? { decision: agreed[i], function: f } : null;
    }
    return null;
  }

  function signers(f) {
    return (f.sign_offs || []).map((s) => `${s.signer}${s.via_team ? ` for ${s.via_team}` : ""} (r${s.revision})`).join(", ");
  }

  function functionChip(view, f) {
    const agreed = f.state === "not_applicable" ? agreedFunction(view, f.function) : null;
    if (!agreed) return chip(f.function, f.state);
    const text = `agreed by ${signers(agreed.function) || "—"} on “${agreed.decision.title}”`;
    return el("li", {
      class: "chip chip-agreed", "data-function": f.function, "data-state": "agreed",
      "aria-label": `${f.function}: ${text}`, title: `${f.function}: ${text}`,
    }, el("span", { class: "icon", "aria-hidden": "true" }, "✓"),
    el("span", { class: "fn" }, f.function), el("span", { class: "state" }, "agreed"));
  }

  // What the accepted decisions in force agreed, and by whom (the most recent first).
  function agreedList(view) {
    const agreed = (view.agreed || []).slice(-MAX_OUTSTANDING).reverse();
    if (agreed.length === 0) return null;
    const total = view.counts && view.counts.agreed !== undefined ? view.counts.agreed : agreed.length;
    return el("ul", { class: "agreed", "aria-label": "Agreed" },
      agreed.map((a) => el("li", { "data-decision": a.decision_id },
        el("span", { class: a.overridden ? "warn" : "good" }, a.overridden ? "⚑ accepted over " : "✓ agreed "),
        `“${a.title}” (revision ${a.revision}) — `,
        el("span", { class: "who" }, (a.functions || []).map((f) =>
          f.state === "approved" ? `${f.function}: ${signers(f)}` : `${f.function}: ${STATE_TEXT[f.state] || f.state}`).join("; ")),
        ` · accepted by ${a.accepted_by}`)),
      total > agreed.length ? el("li", { class: "more" }, `and ${total - agreed.length} more…`) : null);
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
  let lastDetail = null;
  function openDetail(key, id) {
    lastFocus = document.activeElement;
    openKey = key;
    openId = id || null;
    lastDetail = null;
    asOf.key = null;
    $("detail").hidden = false;
    $("detail-key").textContent = key;
    $("detail-title").textContent = "";
    $("detail-main").replaceChildren(el("p", { class: "none" }, "loading…"));
    $("detail-timeline").replaceChildren();
    $("detail-history").hidden = true;
    closeDecisionPage(false);
    $("detail").focus();
    syncUrl(false);
    loadDetail();
  }

  function closeDetail() {
    openKey = null;
    openId = null;
    lastDetail = null;
    asOf.key = null;
    $("detail").hidden = true;
    syncUrl(false);
    if (lastFocus && document.contains(lastFocus)) lastFocus.focus();
  }

  function refreshDetailSoon() {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(loadDetail, 250);
  }

  function showDetailError(text) {
    $("detail-main").replaceChildren(el("p", { class: "none" }, text));
  }

  async function loadDetail() {
    const key = openKey;
    if (!key) return;
    let response;
    try {
      response = await fetch(`/api/initiatives/${encodeURIComponent(key)}`, { headers: headers(), cache: "no-store" });
    } catch {
      if (key === openKey) showDetailError("Could not reach the server.");
      return;
    }
    if (key !== openKey) return;
    if (response.status === 401 || response.status === 403) {
      showTokenForm(await errorText(response));
      return;
    }
    if (!response.ok) {
      showDetailError(await errorText(response));
      return;
    }
    const detail = await response.json();
    if (key !== openKey) return;
    // Nothing moved since it was drawn: leave it (and the focus in it) as it is.
    const same = lastDetail && lastDetail.alignment.initiative_id === detail.alignment.initiative_id
      && lastDetail.alignment.version === detail.alignment.version;
    if (!same) renderDetail(detail);
  }

  function renderDetail(detail) {
    const v = detail.alignment;
    lastDetail = detail;
    openId = v.initiative_id;
    $("detail-key").textContent = `${v.key} · ${v.stage} · owner ${v.owner}`;
    $("detail-title").textContent = v.title;
    const body = [
      el("div", { class: "card-top" }, statusBadge(v.status),
        el("span", { class: "numbers" }, `${v.approved_pairs}/${v.total_pairs} sign-offs`)),
      v.summary ? el("p", { class: "summary-text" }, v.summary) : null,
      el("h3", {}, "Decisions"),
      detail.decisions.length > 0 ? detail.decisions.map(decision) : el("p", { class: "none" }, "No decision proposed yet."),
    ];
    if ((detail.feedback || []).length > 0) {
      body.push(el("h3", {}, "Feedback on the initiative"), feedbackList(detail.feedback));
    }
    $("detail-main").replaceChildren(...body.flat().filter(Boolean));
    $("detail-timeline").replaceChildren(el("h3", {}, "Timeline"),
      el("ol", { class: "timeline", "aria-label": "History, newest first" }, detail.timeline.map((entry) =>
        el("li", { class: `tone-${entry.tone}`, "data-type": entry.type },
          el("div", { class: "line1" }, el("span", { class: "actor" }, entry.actor), " · ", timeEl(entry.recorded_at),
            ` · v${entry.version}`),
          el("div", {}, entry.summary)))),
      ...(detail.timeline_truncated ? [el("p", { class: "none" }, "Older events are not shown.")] : []));
    updateAsOf(v.key, v.version);
  }

  // ---- The as-of slider: the alignment at each version, and why ------------------------

  const asOf = { key: null, current: 0, following: true, timer: null, generation: 0 };

  // Sets the slider's range to 1..current; it follows the newest version until moved.
  function updateAsOf(key, current) {
    const range = $("asof-range");
    if (!decisionPage.id) $("detail-history").hidden = false;
    const fresh = asOf.key !== key;
    asOf.key = key;
    asOf.current = current;
    range.max = String(current);
    if (fresh || asOf.following) {
      asOf.following = true;
      range.value = String(current);
      loadAsOf();
    } else {
      labelAsOf(Number(range.value), null);
    }
  }

  function labelAsOf(version, event) {
    const range = $("asof-range");
    const text = `version ${version} of ${asOf.current}`;
    $("asof-value").textContent = text;
    range.setAttribute("aria-valuetext", event ? `${text}: ${event.actor} — ${event.summary}` : text);
    $("asof-earlier").disabled = version <= 1;
    $("asof-later").disabled = version >= asOf.current;
  }

  function asOfMoved() {
    const version = Number($("asof-range").value);
    asOf.following = version >= asOf.current;
    labelAsOf(version, null);
    clearTimeout(asOf.timer);
    asOf.timer = setTimeout(loadAsOf, 120);
  }

  function stepAsOf(delta) {
    const range = $("asof-range");
    const version = Math.min(asOf.current, Math.max(1, Number(range.value) + delta));
    range.value = String(version);
    asOfMoved();
  }

  async function loadAsOf() {
    const key = asOf.key;
    const version = Number($("asof-range").value);
    const mine = ++asOf.generation;
    labelAsOf(version, null);
    let response;
    try {
      response = await fetch(`/api/initiatives/${encodeURIComponent(key)}/as-of?version=${version}`,
        { headers: headers(), cache: "no-store" });
    } catch {
      if (mine === asOf.generation) $("asof-body").replaceChildren(el("p", { class: "none" }, "Could not reach the server."));
      return;
    }
    if (mine !== asOf.generation || key !== asOf.key) return;
    if (!response.ok) {
      $("asof-body").replaceChildren(el("p", { class: "none" }, await errorText(response)));
      return;
    }
    const past = await response.json();
    if (mine !== asOf.generation || key !== asOf.key) return;
    renderAsOf(past);
  }

  function renderAsOf(past) {
    const v = past.alignment;
    const e = past.event;
    labelAsOf(past.version, e);
    $("asof-event").replaceChildren(...(e ? [
      el("span", { class: "line1" }, `v${e.version} · `, el("span", { class: "actor" }, e.actor), " · ", timeEl(e.recorded_at), " · "),
      el("span", { class: `tone-text tone-${e.tone}`, "data-type": e.type }, e.summary),
    ] : [el("span", { class: "none" }, "no event at this version")]));
    const x = past.explanation;
    const state = el("div", { class: "asof-alignment", "aria-label": `Alignment as of version ${past.version}`, role: "group" },
      el("h4", {}, `As of version ${past.version}`),
      el("div", { class: "card-top" }, statusBadge(v.status),
        el("span", { class: "numbers" }, `${v.approved_pairs}/${v.total_pairs} sign-offs`)),
      el("ul", { class: "chips", "aria-label": "Sign-off by function then" }, (v.functions || []).map((f) => chip(f.function, f.state))),
      el("ul", { class: "asof-decisions" }, (v.decisions || []).map((d) =>
        el("li", { "data-decision": d.decision_id }, el("strong", {}, d.title), ` · ${d.status}${d.status === "proposed" ? ` · ${d.alignment}` : ""}`))));
    const why = el("div", { class: "asof-explain", role: "group", "aria-label": `Why, as of version ${past.version}` },
      el("h4", {}, "Why"),
      x.decisions.length === 0 ? el("p", { class: "none" }, "No decision yet.") : x.decisions.map((d) =>
        el("section", { class: "explain-decision", "data-decision": d.decision_id, "aria-label": `Why: ${d.title}` },
          el("div", { class: "explain-title" }, el("strong", {}, d.title), ` · revision ${d.revision} · ${d.status === "proposed" ? d.alignment : d.status}`),
          el("ul", { class: "explain-functions" }, d.functions.map((f) =>
            el("li", { "data-function": f.function, "data-state": f.state },
              el("span", { class: `chip chip-${f.state}` },
                el("span", { class: "icon", "aria-hidden": "true" }, STATE_ICON[f.state] || "•"),
                el("span", { class: "fn" }, f.function), el("span", { class: "state" }, STATE_TEXT[f.state] || f.state)),
              el("span", { class: "why" }, ` ${f.reason}`),
              f.events.length > 0 ? el("ul", { class: "explain-events" }, f.events.map(eventRef)) : null))),
          d.other_objections.length > 0 ? el("div", { class: "explain-other" }, "Objections from other functions: ",
            el("ul", { class: "explain-events" }, d.other_objections.map(eventRef))) : null)),
      x.initiative_objections.length > 0 ? el("div", { class: "explain-other" }, "Objections to the initiative: ",
        el("ul", { class: "explain-events" }, x.initiative_objections.map(eventRef))) : null);
    $("asof-body").replaceChildren(state, why);
    $("asof-body").dataset.version = String(past.version);
  }

  function eventRef(e) {
    return el("li", {}, el("span", { class: "when" }, `v${e.version} · ${e.actor}: `), e.summary);
  }

  // ---- The decision page: its revisions, and the diff between two ----------------------

  const decisionPage = { id: null, generation: 0 };

  function openDecisionPage(d) {
    decisionPage.id = d.decision_id;
    $("detail-main").hidden = true;
    $("detail-history").hidden = true;
    $("detail-timeline").hidden = true;
    $("detail-decision").hidden = false;
    $("decision-page-title").textContent = `Decision: ${d.title}`;
    $("decision-page-body").replaceChildren(el("p", { class: "none" }, "loading…"));
    $("detail-decision").focus();
    loadDiff(null, null);
  }

  function closeDecisionPage(focus) {
    const was = decisionPage.id;
    decisionPage.id = null;
    $("detail-decision").hidden = true;
    $("detail-main").hidden = false;
    $("detail-timeline").hidden = false;
    if (asOf.key) $("detail-history").hidden = false;
    if (focus && was) {
      const button = document.querySelector(`#detail-main [data-decision="${CSS.escape(was)}"] .compare`);
      if (button) button.focus();
    }
  }

  async function loadDiff(from, to) {
    const id = decisionPage.id;
    const key = openKey;
    const mine = ++decisionPage.generation;
    const params = new URLSearchParams();
    if (from) params.set("from", String(from));
    if (to) params.set("to", String(to));
    let response;
    try {
      response = await fetch(`/api/initiatives/${encodeURIComponent(key)}/decisions/${encodeURIComponent(id)}/diff?${params}`,
        { headers: headers(), cache: "no-store" });
    } catch {
      if (mine === decisionPage.generation) $("decision-page-body").replaceChildren(el("p", { class: "none" }, "Could not reach the server."));
      return;
    }
    if (mine !== decisionPage.generation || id !== decisionPage.id) return;
    if (!response.ok) {
      $("decision-page-body").replaceChildren(el("p", { class: "none" }, await errorText(response)));
      return;
    }
    const diff = await response.json();
    if (mine !== decisionPage.generation || id !== decisionPage.id) return;
    renderDiff(diff);
  }

  function revisionOptions(select, diff, selected) {
    select.replaceChildren(...diff.revisions.map((r) => {
      const option = el("option", { value: String(r.number) }, `revision ${r.number} · ${r.number === 1 ? "proposal" : r.kind}`);
      if (r.number === selected) option.selected = true;
      return option;
    }));
  }

  // The two revisions to compare: made once per decision page, so that focus stays on
  // them while the diff below is redrawn.
  function diffPick(diff) {
    let pick = $("diff-pick");
    if (!pick || pick.dataset.decision !== diff.decision_id) {
      const changed = () => loadDiff(pick.elements.from.value, pick.elements.to.value);
      pick = el("form", { id: "diff-pick", class: "diff-pick", "aria-label": "Revisions to compare", "data-decision": diff.decision_id,
        onsubmit: (e) => e.preventDefault() },
      el("label", {}, "From revision", el("select", { name: "from", onchange: changed })),
      el("label", {}, "To revision", el("select", { name: "to", onchange: changed })));
    }
    revisionOptions(pick.elements.from, diff, diff.from);
    revisionOptions(pick.elements.to, diff, diff.to);
    return pick;
  }

  function renderDiff(diff) {
    const revisions = el("ol", { class: "revisions", "aria-label": "Revisions, oldest first" }, diff.revisions.map((r) =>
      el("li", { "data-revision": String(r.number), "data-kind": r.kind },
        el("strong", {}, `Revision ${r.number}`),
        el("span", { class: `kind-badge kind-${r.number === 1 ? "proposal" : r.kind}` }, r.number === 1 ? "proposal" : r.kind),
        ` by ${r.by} `, timeEl(r.at),
        r.number === diff.material_base && r.number > 1 ? el("span", { class: "hint-inline" }, " · approvals must be of this revision or later") : null,
        r.note ? el("div", { class: "note" }, r.note) : null)));
    const low = Math.min(diff.from, diff.to);
    const high = Math.max(diff.from, diff.to);
    const verdict = diff.from === diff.to
      ? el("p", { class: "diff-verdict same", id: "diff-verdict" },
        diff.revisions.length === 1 ? "Only one revision: nothing to compare yet." : "The same revision on both sides.")
      : el("p", { class: `diff-verdict ${diff.material ? "material" : "editorial"}`, id: "diff-verdict" },
        diff.material
          ? `Material change between revision ${low} and ${high}: approvals given before it went stale and must be given again.`
          : `Editorial change only between revision ${low} and ${high}: approvals still count.`);
    const fields = el("div", { class: "diff-fields", id: "diff-fields", "data-from": String(diff.from), "data-to": String(diff.to) },
      diff.fields.map((f) => {
        const name = f.field.replace("_", " ");
        return el("section", { class: "field-diff", "data-field": f.field, "data-changed": String(f.changed), "aria-label": `${name}: ${f.changed ? "changed" : "unchanged"}` },
          el("h4", {}, name, el("span", { class: f.changed ? "changed" : "unchanged" }, f.changed ? " · changed" : " · unchanged")),
          el("p", { class: "diff-text" }, f.ops.length === 0 ? el("span", { class: "none" }, "(empty)") : f.ops.map((op) =>
            op.op === "insert" ? el("ins", { title: "added" }, op.text)
              : op.op === "delete" ? el("del", { title: "removed" }, op.text)
                : document.createTextNode(op.text))));
      }));
    const pick = diffPick(diff);
    const body = $("decision-page-body");
    if (!body.contains(pick)) {
      body.replaceChildren(el("h4", {}, "Revisions"), el("div", { id: "diff-revisions" }), el("h4", {}, "Changes"), pick,
        el("div", { id: "diff-result", "aria-live": "polite" }));
    }
    $("diff-revisions").replaceChildren(revisions);
    $("diff-result").replaceChildren(verdict, fields);
  }

  function decision(d) {
    const open = d.status === "proposed";
    const badge = open ? statusBadge(d.alignment) : el("span", { class: `status status-${d.status}` }, d.status);
    return el("section", { class: "decision", "data-decision": d.decision_id, "aria-label": `Decision: ${d.title}` },
      el("div", { class: "decision-head" }, el("h4", {}, d.title), badge),
      el("button", { type: "button", class: "compare link", onclick: () => openDecisionPage(d) },
        d.revisions.length > 1 ? `Revisions and changes (${d.revisions.length})` : "Revisions"),
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
    `${approve ? "approved" : "rejected"} by `, el("strong", {}, s.signer), s.via_team ? ` for ${s.via_team}` : "", note, " ",
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
    const linked = new URLSearchParams(location.search).get("initiative") || "";
    restoreFilters();
    restoreArrange();
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
    let searching = null;
    const tools = $("arrange");
    tools.addEventListener("submit", (event) => { event.preventDefault(); arrangeChanged(); });
    tools.addEventListener("change", arrangeChanged);
    tools.addEventListener("input", (event) => {
      if (event.target.name !== "q") return;
      clearTimeout(searching);
      searching = setTimeout(arrangeChanged, SEARCH_DELAY);
    });
    $("more").addEventListener("click", showMore);
    if ("IntersectionObserver" in window) {
      // Draw the next page as the end of the list comes near.
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting) && !$("more").hidden && view === "list") showMore();
      }, { rootMargin: "600px" }).observe($("more"));
    }
    for (const link of document.querySelectorAll(".views a")) {
      link.addEventListener("click", (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        showView(link.dataset.view, true);
      });
    }
    window.addEventListener("popstate", () => {
      restoreArrange();
      showView(view, false);
      scheduleRender();
    });
    $("whoami").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = event.target.elements.principal.value.trim();
      if (!value) return;
      setTypedPrincipal(value);
      event.target.reset();
      loadInbox();
    });
    $("me-change").addEventListener("click", () => {
      setTypedPrincipal("");
      renderIdentity();
      $("inbox").replaceChildren();
      $("inbox-count").hidden = true;
      $("inbox-status").textContent = "Say who you are to see the sign-offs waiting on you.";
      $("whoami").elements.principal.focus();
    });
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = event.target.elements.token.value.trim();
      if (!value) return;
      try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode: kept for this page only */ }
      event.target.reset();
      $("token-panel").hidden = true;
      updateTokenStatus();
      identity.known = false;
      connect();
      loadInbox();
      if (openKey) loadDetail();
    });
    $("forget-token").addEventListener("click", () => {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      updateTokenStatus();
      identity.known = false;
      views.clear();
      lastPosition = 0;
      renderBoard();
      connect();
      loadInbox();
    });
    $("detail-close").addEventListener("click", closeDetail);
    $("decision-back").addEventListener("click", () => closeDecisionPage(true));
    $("asof-range").addEventListener("input", asOfMoved);
    $("asof-earlier").addEventListener("click", () => stepAsOf(-1));
    $("asof-later").addEventListener("click", () => stepAsOf(1));
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || $("detail").hidden) return;
      if (decisionPage.id) closeDecisionPage(true); else closeDetail();
    });
    setInterval(() => {
      for (const node of document.querySelectorAll("time[data-relative]")) {
        node.textContent = relative(node.getAttribute("datetime"));
      }
    }, 30000);
    showView(view, false);
    connect();
    openLinkedInitiative(linked);
  }

  // A link such as a webhook message's (`/?initiative=CHECKOUT-42`, or the initiative's
  // id) opens that initiative's detail on load; anything but a well-formed key or UUID is
  // ignored.
  function openLinkedInitiative(linked) {
    const wanted = linked.trim();
    const key = wanted.toUpperCase();
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(wanted)) openDetail(wanted, null);
    else if (/^[A-Z](?:[A-Z0-9]|-(?=[A-Z0-9])){1,31}$/.test(key)) openDetail(key, null);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
