// fastapi-dls /docs: renders /openapi.json as a list of operations. Plain
// JavaScript, no library, no external request.
"use strict";

(function () {
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  let spec = null;

  function resolve(s) {
    for (let i = 0; s && s.$ref && i < 10; i++) {
      const name = s.$ref.replace("#/components/schemas/", "");
      s = Object.assign({ _name: name }, spec.components.schemas[name]);
    }
    return s || {};
  }

  function typeText(s) {
    s = resolve(s);
    if (s.type === "array") return typeText(s.items) + "[]";
    if (s.enum) return (s.type || "") + " (" + s.enum.join(" | ") + ")";
    return (s._name ? s._name : (s.type || "any")) + (s.format ? " (" + s.format + ")" : "");
  }

  // schema renders an object's fields as a table, nested objects inline, to a bounded depth.
  function schema(s, depth) {
    s = resolve(s);
    if (s.type === "array") {
      return el("div", { class: "schema" }, el("div", { text: "array of " + typeText(s.items) }),
        depth < 3 && resolve(s.items).properties ? schema(s.items, depth + 1) : null);
    }
    if (!s.properties) {
      return el("div", { class: "schema", text: typeText(s) + (s.description ? ": " + s.description : "") });
    }
    const req = new Set(s.required || []);
    const rows = Object.entries(s.properties).map(([name, p]) => {
      const r = resolve(p);
      const nested = depth < 3 && (r.properties || (r.type === "array" && resolve(r.items).properties))
        ? schema(p, depth + 1) : null;
      return el("tr", {},
        el("td", {}, el("code", { text: name }), req.has(name) ? " *" : ""),
        el("td", { text: typeText(p) }),
        el("td", {}, (p.description || r.description || ""), nested));
    });
    return el("div", { class: "schema" }, s._name ? el("div", { class: "muted", text: s._name }) : null,
      el("table", {}, el("tr", {}, el("th", { text: "field" }), el("th", { text: "type" }), el("th", { text: "" })), ...rows));
  }

  function content(c) {
    if (!c) return null;
    const [type, media] = Object.entries(c)[0];
    return el("div", {}, el("div", { class: "muted", text: type }), media.schema ? schema(media.schema, 0) : null);
  }

  function operation(path, method, op) {
    const admin = (op.security || []).length > 0;
    const body = el("div", {});
    if (op.description) body.append(el("p", { text: op.description }));
    if (op.parameters && op.parameters.length) {
      body.append(el("h4", { text: "Parameters" }));
      body.append(el("ul", {}, ...op.parameters.map((p) =>
        el("li", {}, el("code", { text: p.name }), " (" + p.in + (p.required ? ", required" : "") + ") " + (p.description || "")))));
    }
    if (op.requestBody) {
      body.append(el("h4", { text: "Request body" }), content(op.requestBody.content));
    }
    body.append(el("h4", { text: "Responses" }));
    for (const [code, r] of Object.entries(op.responses || {})) {
      if (r.$ref) { // a shared error answer: its body is the Error shape, shown once above
        const resp = spec.components.responses[r.$ref.replace("#/components/responses/", "")];
        body.append(el("div", {}, el("b", { text: code + " " }), resp.description || "", el("span", { class: "muted", text: " (Error)" })));
        continue;
      }
      body.append(el("div", {}, el("b", { text: code + " " }), r.description || "", content(r.content)));
    }
    return el("details", { class: "op", id: (method + path).replace(/[^a-zA-Z0-9]+/g, "-") },
      el("summary", {}, el("span", { class: "method " + method, text: method.toUpperCase() }), el("code", { text: path }),
        el("span", { text: op.summary || "" }), admin ? el("span", { class: "tag-admin", text: "operator: admin token (none from loopback by default)" }) : null),
      body);
  }

  async function init() {
    const ops = document.getElementById("ops");
    try {
      const resp = await fetch("/openapi.json", { cache: "no-store" });
      spec = await resp.json();
    } catch (e) {
      ops.replaceChildren(el("p", { text: "Could not load /openapi.json: " + e.message }));
      return;
    }
    document.getElementById("intro").replaceChildren(
      el("h2", { text: spec.info.title + " " + spec.info.version }), el("p", { text: spec.info.description || "" }),
      el("h3", { text: "Error answers" }),
      el("p", { text: "Every error answer is JSON of this shape, with the HTTP status repeated:" }),
      schema({ $ref: "#/components/schemas/Error" }, 0));
    const all = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) all.push([path, method, op]);
    }
    all.sort((a, b) => (a[2]["x-order"] ?? 0) - (b[2]["x-order"] ?? 0));
    const groups = new Map();
    for (const [path, method, op] of all) {
      const tag = (op.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(path, method, op));
    }
    const out = [];
    for (const t of spec.tags || []) {
      if (!groups.has(t.name)) continue;
      out.push(el("h2", { text: t.name }), el("p", { class: "muted", text: t.description || "" }), ...groups.get(t.name));
      groups.delete(t.name);
    }
    for (const [name, list] of groups) out.push(el("h2", { text: name }), ...list);
    ops.replaceChildren(...out);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
