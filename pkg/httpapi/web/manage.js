// fastapi-dls management page. Plain JavaScript, no library, no build step.
//
// Data: GET /-/origins?leases=true (the operator API). Actions: DELETE
// /-/lease/{ref}, DELETE /-/origin/{ref}/leases, DELETE /-/leases/expired.
// From loopback the server needs no token (unless DLS_ADMIN_LOOPBACK=false);
// from anywhere else the operator API answers 401 and this page asks for DLS_ADMIN_TOKEN, which it keeps in
// sessionStorage (this tab only, gone when it closes) and sends as a bearer.
//
// Large sites: the filtered list is paginated, PAGE_ROWS table rows (origin
// heads plus leases) per page, so the DOM stays small whatever the lease count;
// filtering works on the in-memory list and is debounced.
"use strict";

(function () {
  const PAGE_ROWS = 100;
  const TOKEN_KEY = "fastapi-dls.admin-token";
  const DAY = 24 * 3600 * 1000;

  const $ = (id) => document.getElementById(id);
  const state = { origins: [], rows: [], page: 0, loadedAt: 0, refused: false };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c != null) e.append(c);
    }
    return e;
  }

  // ---- API ----------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
  }

  class APIError extends Error {
    constructor(status, detail) {
      super(detail || ("HTTP " + status));
      this.status = status;
    }
  }

  async function api(method, path) {
    const headers = { "Accept": "application/json" };
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    const resp = await fetch(path, { method, headers, cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) {
      let detail = "";
      try { detail = (await resp.json()).detail || ""; } catch (e) { /* not JSON */ }
      throw new APIError(resp.status, detail);
    }
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  // ---- times ----------------------------------------------------------------

  function parseTime(s) {
    if (!s) return NaN;
    return Date.parse(s);
  }

  function utcText(ms) {
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function timeCell(s) {
    const ms = parseTime(s);
    if (isNaN(ms)) return el("span", { class: "muted", text: "—" });
    const d = new Date(ms);
    return el("time", { datetime: d.toISOString(), title: utcText(ms), text: d.toLocaleString() });
  }

  function duration(ms) {
    const abs = Math.abs(ms);
    const d = Math.floor(abs / DAY);
    const h = Math.floor((abs % DAY) / 3600000);
    const m = Math.floor((abs % 3600000) / 60000);
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    return m + " min";
  }

  // ---- rows -----------------------------------------------------------------

  function leaseState(l, now) {
    const exp = parseTime(l.lease_expires);
    if (isNaN(exp)) return "all";
    if (exp <= now) return "expired";
    if (exp - now <= DAY) return "soon";
    return "ok";
  }

  function lastSeen(o) {
    let best = parseTime(o.origin_updated);
    for (const l of o.leases || []) {
      const u = parseTime(l.lease_updated);
      if (!isNaN(u) && (isNaN(best) || u > best)) best = u;
    }
    return isNaN(best) ? "" : new Date(best).toISOString();
  }

  // osText is the platform, with the version when the platform does not
  // already say it (Linux guests send "Debian GNU/Linux 12 (bookworm)" and "12").
  function osText(o) {
    const p = o.os_platform || "", v = o.os_version || "";
    if (!p) return v || "—";
    return v && !p.includes(v) ? p + " " + v : p;
  }

  function originText(o) {
    return [o.hostname, o.origin_ref, o.os_platform, o.os_version, o.guest_driver_version].join(" ").toLowerCase();
  }

  function leaseText(l) {
    return [l.product_name, l.lease_ref].join(" ").toLowerCase();
  }

  // buildRows turns the filtered origins into the flat list of table rows
  // that pages are cut from.
  function buildRows() {
    const q = $("filter").value.trim().toLowerCase();
    const want = $("state").value;
    const now = Date.now();
    const rows = [];
    let leases = 0, origins = 0;
    for (const o of state.origins) {
      const originHit = q === "" || o._text.includes(q);
      const ls = (o.leases || []).filter((l) =>
        (originHit || l._text.includes(q)) && (want === "all" || leaseState(l, now) === want));
      if (!originHit && ls.length === 0) continue;
      if (want !== "all" && ls.length === 0) continue;
      origins++;
      leases += ls.length;
      rows.push({ origin: o, shown: ls.length });
      for (const l of ls) rows.push({ origin: o, lease: l });
    }
    state.rows = rows;
    $("count").textContent = origins + (origins === 1 ? " origin, " : " origins, ") +
      leases + (leases === 1 ? " lease" : " leases") + (q || want !== "all" ? " match" : "");
  }

  function originRow(o, continued) {
    const leases = (o.leases || []).length;
    const head = el("div", { class: "origin-head" },
      el("span", { class: "host", text: (o.hostname || "(no hostname)") + (continued ? " (continued)" : "") }),
      el("span", { class: "field" }, "OS ", el("b", { text: osText(o) })),
      el("span", { class: "field" }, "Driver ", el("b", { text: o.guest_driver_version || "—" })),
      el("span", { class: "field" }, "Last seen ", lastSeen(o) ? timeCell(lastSeen(o)) : el("b", { text: "—" })),
      el("span", { class: "ref", text: o.origin_ref }),
      el("span", { class: "act" },
        leases > 0 ? el("button", {
          type: "button", class: "danger small", "data-action": "return-all", "data-origin": o.origin_ref,
          onclick: () => returnAll(o),
        }, "Return all " + leases) : el("span", { class: "muted", text: "no leases" })));
    return el("tr", { class: "origin", "data-origin": o.origin_ref }, el("td", { colspan: "6" }, head));
  }

  function leaseRow(o, l, now) {
    const st = leaseState(l, now);
    const exp = parseTime(l.lease_expires);
    let left = "—";
    if (!isNaN(exp)) left = exp <= now ? "expired " + duration(now - exp) + " ago" : duration(exp - now);
    return el("tr", { class: "lease", "data-lease": l.lease_ref, "data-origin": o.origin_ref },
      el("td", { class: "feature", "data-label": "Feature" }, l.product_name || "—",
        el("div", { class: "ref", text: l.lease_ref })),
      el("td", { "data-label": "Created" }, timeCell(l.lease_created)),
      el("td", { "data-label": "Expires" }, timeCell(l.lease_expires)),
      el("td", { "data-label": "Next renewal" }, timeCell(l.lease_renewal)),
      el("td", { class: "left " + st, "data-label": "Time left", text: left }),
      el("td", {}, el("button", {
        type: "button", class: "danger small", "data-action": "return", "data-lease": l.lease_ref,
        onclick: () => returnOne(o, l),
      }, "Return")));
  }

  function render() {
    const body = $("rows");
    const pages = Math.max(1, Math.ceil(state.rows.length / PAGE_ROWS));
    if (state.page >= pages) state.page = pages - 1;
    const start = state.page * PAGE_ROWS;
    const slice = state.rows.slice(start, start + PAGE_ROWS);
    const now = Date.now();
    const frag = document.createDocumentFragment();
    slice.forEach((r, i) => {
      if (i === 0 && r.lease) frag.append(originRow(r.origin, true));
      frag.append(r.lease ? leaseRow(r.origin, r.lease, now) : originRow(r.origin, false));
    });
    if (slice.length === 0) {
      const text = state.origins.length === 0 ? "No guest has registered yet." : "Nothing matches the filter.";
      frag.append(el("tr", {}, el("td", { colspan: "6", class: "empty", text: state.refused ? "Not loaded." : text })));
    }
    body.replaceChildren(frag);
    $("page").textContent = "Page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    $("pager").classList.toggle("hidden", pages <= 1);
  }

  function summarize() {
    const now = Date.now();
    let total = 0, soon = 0, expired = 0;
    const features = new Map();
    for (const o of state.origins) {
      for (const l of o.leases || []) {
        total++;
        const st = leaseState(l, now);
        if (st === "soon") soon++;
        if (st === "expired") { expired++; continue; }
        features.set(l.product_name, (features.get(l.product_name) || 0) + 1);
      }
    }
    $("summary").textContent = total + (total === 1 ? " lease" : " leases") + " on " + state.origins.length +
      (state.origins.length === 1 ? " origin" : " origins");
    const parts = [...features.entries()].sort().map(([f, n]) => n + " × " + f);
    if (soon) parts.push(soon + " expiring within a day");
    if (expired) parts.push(expired + " expired");
    $("summary-detail").textContent = parts.join(" · ");
  }

  // ---- messages, auth, confirmation ------------------------------------------

  function message(kind, text) {
    const m = $("message");
    m.className = "notice " + kind;
    m.textContent = text;
    m.classList.toggle("hidden", !text);
  }

  function showAuth(why) {
    $("auth").classList.remove("hidden");
    $("auth-text").textContent = why;
    $("auth-token").focus();
  }

  // refused handles a 401 of the operator API; other errors are shown as they are.
  function failed(what, err) {
    if (err instanceof APIError && err.status === 401) {
      state.refused = true;
      if (!state.loadedAt) {
        $("summary").textContent = "—";
        $("summary-detail").textContent = "Not loaded: the admin token is needed.";
      }
      showAuth(token()
        ? "The server refused the admin token for " + what + ". Enter the right DLS_ADMIN_TOKEN; it is kept in this browser tab only."
        : "Refused: " + what + " needs the admin token (DLS_ADMIN_TOKEN), as this page is not opened from the server itself. It is kept in this browser tab only.");
      message("error", "Refused: " + what + " (" + (err.message || "401") + ")");
      return;
    }
    message("error", "Could not " + what + ": " + err.message);
  }

  // confirmAction asks in the page's dialog and resolves true on "ok". The
  // dialog's close event is queued, not dispatched at once: a quick second
  // action can open the dialog again before the first round's event arrives,
  // so the event settles a round only while the dialog is closed, and a new
  // round first settles the one before (as cancelled).
  let pendingConfirm = null;

  function settleConfirm(ok) {
    const resolve = pendingConfirm;
    pendingConfirm = null;
    if (resolve) resolve(ok);
  }

  function confirmAction(title, text, okLabel) {
    const d = $("confirm");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    settleConfirm(false);
    return new Promise((resolve) => {
      pendingConfirm = resolve;
      d.returnValue = "";
      d.showModal();
      $("confirm-cancel").focus();
    });
  }

  async function act(what, method, path, done) {
    try {
      await api(method, path);
    } catch (err) {
      failed(what, err);
      return;
    }
    message("info", done);
    await load();
  }

  async function returnOne(o, l) {
    const ok = await confirmAction("Return this lease?",
      "Return the " + (l.product_name || "lease") + " lease " + l.lease_ref + " of " + (o.hostname || o.origin_ref) +
      "? The guest loses its licence at its next renewal and asks for a new lease.", "Return lease");
    if (ok) await act("return lease " + l.lease_ref, "DELETE", "/-/lease/" + encodeURIComponent(l.lease_ref),
      "Lease " + l.lease_ref + " returned.");
  }

  async function returnAll(o) {
    const n = (o.leases || []).length;
    const ok = await confirmAction("Return all leases of this origin?",
      "Return all " + n + " leases of " + (o.hostname || o.origin_ref) + " (" + o.origin_ref + ")?", "Return all");
    if (ok) await act("return the leases of " + (o.hostname || o.origin_ref), "DELETE",
      "/-/origin/" + encodeURIComponent(o.origin_ref) + "/leases", "Leases of " + (o.hostname || o.origin_ref) + " returned.");
  }

  async function removeExpired() {
    const ok = await confirmAction("Remove expired leases?",
      "Remove every lease whose expiry has passed, now (the daemon's own sweep waits DLS_LEASE_GRACE).", "Remove expired");
    if (ok) await act("remove expired leases", "DELETE", "/-/leases/expired", "Expired leases removed.");
  }

  // ---- loading -----------------------------------------------------------------

  async function loadInfo() {
    try {
      const s = await api("GET", "/status");
      $("version").textContent = "version " + (s.version || "?") + (s.commit ? " (" + s.commit.slice(0, 12) + ")" : "");
    } catch (e) { $("version").textContent = ""; }
    try {
      const c = await api("GET", "/-/config");
      const told = c.DLS_URL + ":" + c.DLS_PORT;
      const nodes = Array.isArray(c.DLS_NODES) ? c.DLS_NODES : [];
      if (nodes.length > 1 || (nodes.length === 1 && nodes[0] !== told)) {
        $("dls-address").textContent = nodes.join("\n");
        $("dls-address-note").textContent = "DLS_NODES, in the order guests try them, in every client token.";
      } else {
        $("dls-address").textContent = told;
      }
    } catch (e) { $("dls-address").textContent = "unknown"; }
    await loadHealth();
  }

  async function loadHealth() {
    const b = $("health");
    let up = false, text = "down";
    try {
      const resp = await fetch("/-/health", { cache: "no-store" });
      const h = await resp.json();
      up = resp.ok && h.status === "up";
      text = h.status || (up ? "up" : "down");
    } catch (e) { text = "unreachable"; }
    b.textContent = "health: " + text;
    b.className = "badge " + (up ? "up" : "down");
  }

  async function load() {
    let origins;
    try {
      origins = await api("GET", "/-/origins?leases=true");
    } catch (err) {
      failed("list the origins and leases", err);
      state.origins = [];
      buildRows();
      render();
      return;
    }
    state.refused = false;
    $("auth").classList.add("hidden");
    for (const o of origins) {
      o._text = originText(o);
      for (const l of o.leases || []) l._text = leaseText(l);
    }
    origins.sort((a, b) => (a.hostname || "").localeCompare(b.hostname || "") || a.origin_ref.localeCompare(b.origin_ref));
    state.origins = origins;
    state.loadedAt = Date.now();
    summarize();
    buildRows();
    render();
    document.body.dataset.loaded = String(state.loadedAt);
  }

  let filterTimer = 0;
  function onFilter() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.page = 0; buildRows(); render(); }, 120);
  }

  function init() {
    $("confirm").addEventListener("close", () => {
      if (!$("confirm").open) settleConfirm($("confirm").returnValue === "ok");
    });
    $("filter").addEventListener("input", onFilter);
    $("state").addEventListener("change", onFilter);
    $("refresh").addEventListener("click", () => { message("", ""); loadHealth(); load(); });
    $("remove-expired").addEventListener("click", removeExpired);
    $("prev").addEventListener("click", () => { state.page--; render(); window.scrollTo(0, 0); });
    $("next").addEventListener("click", () => { state.page++; render(); window.scrollTo(0, 0); });
    $("auth-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("auth-token").value.trim();
      try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage disabled: nothing kept */ }
      $("auth-token").value = "";
      message("", "");
      load();
    });
    $("auth-forget").addEventListener("click", () => {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
      message("info", "Admin token forgotten.");
    });
    loadInfo();
    load();
    setInterval(loadHealth, 30000);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
