// Renders /openapi.json without any third-party code: operations grouped by tag, each with its
// parameters, request body and responses; schemas at the end. Text nodes only, never parsed as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function typeName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return typeName(schema.items) + "[]";
  if (schema.type === "object" && schema.additionalProperties) {
    return "map<string, " + typeName(schema.additionalProperties) + ">";
  }
  if (schema.enum) return schema.enum.join(" | ");
  return schema.format ? schema.type + " (" + schema.format + ")" : (schema.type || "object");
}

function schemaLink(schema) {
  const name = typeName(schema);
  const ref = schema && (schema.$ref || (schema.items && schema.items.$ref));
  return ref ? el("a", {href: "#schema-" + ref.split("/").pop()}, name) : el("code", {}, name);
}

function table(headers, rows) {
  return el("table", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h))),
    ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
}

function operation(path, method, op) {
  const body = el("div", {class: "body"});
  if (op["x-sdk-operation"]) body.append(el("p", {}, "SDK: ", el("code", {}, op["x-sdk-operation"])));
  if (op.security) body.append(el("p", {}, "Key header: ", el("code", {}, Object.keys(op.security[0])[0])));
  if ((op.parameters || []).length) {
    body.append(el("h3", {}, "Parameters"), table(["name", "in", "type", "required", "description"],
      op.parameters.map((p) => [el("code", {}, p.name), p.in, schemaLink(p.schema),
        p.required ? "yes" : "", p.description || ""])));
  }
  if (op.requestBody) {
    body.append(el("h3", {}, "Request body"), table(["content type", "schema"],
      Object.entries(op.requestBody.content).map(([ct, c]) => [el("code", {}, ct), schemaLink(c.schema)])));
  }
  body.append(el("h3", {}, "Responses"), table(["status", "description", "body"],
    Object.entries(op.responses).map(([status, r]) => [status, r.description || "",
      r.content ? schemaLink(Object.values(r.content)[0].schema) : ""])));
  const details = el("details", {class: "op", "data-search": (method + " " + path + " " + (op.summary || "")).toLowerCase()},
    el("summary", {}, el("span", {class: "method " + method}, method.toUpperCase()),
      el("span", {class: "path"}, path), el("span", {class: "summary"}, op.summary || "")),
    body);
  return details;
}

function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("description").textContent = doc.info.description || "";
  const groups = new Map();
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = (op.tags || ["other"])[0];
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push(operation(path, method, op));
    }
  }
  const ops = document.getElementById("ops");
  ops.replaceChildren(...[...groups].map(([tag, nodes]) => el("section", {}, el("h2", {}, tag), ...nodes)));
  const schemas = document.getElementById("schemas");
  schemas.replaceChildren(el("h2", {}, "Schemas"), ...Object.entries(doc.components.schemas).map(([name, s]) =>
    el("div", {id: "schema-" + name}, el("h3", {}, name), table(["field", "type"],
      Object.entries(s.properties || {}).map(([f, fs]) => [el("code", {}, f), schemaLink(fs)])))));
  document.getElementById("filter").addEventListener("input", (event) => {
    const q = event.target.value.trim().toLowerCase();
    for (const node of ops.querySelectorAll("details.op")) node.hidden = q && !node.dataset.search.includes(q);
  });
}

fetch(document.body.dataset.spec).then((r) => r.json()).then(render).catch((err) => {
  document.getElementById("ops").replaceChildren(el("p", {}, "Could not load the document: " + err));
});
