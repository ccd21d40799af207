// A plain, offline reader of /openapi.json (Swagger UI would need a CDN).
"use strict";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function resolve(spec, schema) {
  if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()];
  return schema || {};
}

function example(spec, content) {
  const media = content && (content["application/json"] || content["multipart/form-data"]);
  if (!media) return null;
  const schema = resolve(spec, media.schema);
  const ex = media.example || (schema.examples && schema.examples[0]);
  if (ex) return el("pre", {}, JSON.stringify(ex, null, 2));
  if (schema.properties) {
    return el("ul", {}, Object.entries(schema.properties).map(([name, p]) =>
      el("li", {}, el("code", {}, name), " ", (p.description || p.type || ""))));
  }
  return null;
}

fetch("/openapi.json").then((r) => r.json()).then((spec) => {
  const root = document.getElementById("docs");
  root.replaceChildren(el("section", { class: "panel results-panel" },
    el("h2", {}, spec.info.title, " ", spec.info.version),
    el("p", {}, spec.info.summary || ""),
    el("pre", { class: "wrap" }, spec.info.description || "")));
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const params = (op.parameters || []).map((p) => el("li", {},
        el("code", {}, p.name), ` (${p.in}${p.required ? ", required" : ""}) `,
        p.description || ""));
      const responses = Object.entries(op.responses || {}).map(([code, r]) =>
        el("li", {}, el("code", {}, code), " ", r.description || ""));
      root.append(el("section", { class: "panel" },
        el("h2", {}, el("code", {}, method.toUpperCase()), " ", path),
        el("p", {}, el("strong", {}, op.summary || "")),
        el("p", { class: "hint" }, op.description || ""),
        params.length ? el("div", {}, el("h3", {}, "Parameters"), el("ul", {}, params)) : null,
        op.requestBody ? el("div", {}, el("h3", {}, "Body"),
          example(spec, op.requestBody.content)) : null,
        el("h3", {}, "Responses"), el("ul", {}, responses)));
    }
  }
}).catch((e) => {
  document.getElementById("docs").textContent = `Could not read /openapi.json: ${e.message}`;
});
