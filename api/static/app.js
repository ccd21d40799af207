// The recsys page: plain DOM code over the JSON API, no build step, nothing downloaded.
"use strict";

const $ = (sel) => document.querySelector(sel);
const tagState = new Map(); // tag -> "and" | "not"
let clip = null; // {blob, name}
let recorder = null;

// Build elements with textContent only: titles and names come from uploads.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function setStatus(text, kind = "") {
  const status = $("#status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

function fmtTime(seconds) {
  if (seconds === undefined || seconds === null || Number.isNaN(seconds)) return "";
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return `${m}:${String(s).padStart(2, "0")}`;
}

// ----- header and tags --------------------------------------------------------------------

async function loadStats() {
  try {
    const h = await api("/health");
    $("#stats").textContent = `${h.tracks} tracks · ${h.artists} singers`;
  } catch (e) {
    $("#stats").textContent = `catalog unavailable: ${e.message}`;
  }
}

async function loadTags() {
  const box = $("#tag-chips");
  try {
    const answer = await api("/tags");
    box.replaceChildren(...answer.tags.map((t) => {
      const chip = el("button", {
        type: "button", class: "chip", "data-tag": t.name,
        title: `${t.count} tracks`, "aria-pressed": "false",
        onclick: () => cycleTag(chip, t.name),
      }, t.name, el("span", { class: "count" }, t.count));
      return chip;
    }));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, `Tags could not be loaded: ${e.message}`));
  }
}

function cycleTag(chip, name) {
  const next = { undefined: "and", and: "not", not: undefined }[tagState.get(name)];
  if (next) tagState.set(name, next);
  else tagState.delete(name);
  chip.classList.toggle("and", next === "and");
  chip.classList.toggle("not", next === "not");
  chip.setAttribute("aria-pressed", next ? "true" : "false");
  chip.title = next === "and" ? "required" : next === "not" ? "excluded" : "";
}

async function searchTags(event) {
  if (event) event.preventDefault();
  const tags = [...tagState].filter(([, s]) => s === "and").map(([t]) => t);
  const not = [...tagState].filter(([, s]) => s === "not").map(([t]) => t);
  const text = $("#text-query").value.trim();
  if (!tags.length && !not.length && !text) {
    setStatus("Type a description or pick at least one tag.", "warn");
    return;
  }
  const body = { tags, not, limit: 20 };
  if (text) body.text = text;
  setStatus("Searching…", "busy");
  try {
    const answer = await api("/search/tags", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    showUnderstood(answer.understood);
    renderTracks(answer, "tag search");
  } catch (e) {
    $("#understood").hidden = true;
    failed(e);
  }
}

function showUnderstood(understood) {
  const box = $("#understood");
  if (!understood) {
    box.hidden = true;
    return;
  }
  const parts = [el("span", {}, "Understood as: ")];
  for (const t of understood.tags || []) parts.push(el("span", { class: "chip and small" }, t));
  for (const t of understood.not_tags || []) {
    parts.push(el("span", { class: "chip not small" }, `not ${t}`));
  }
  if (parts.length === 1) parts.push(el("em", {}, "no tag"));
  box.replaceChildren(...parts);
  box.hidden = false;
}

// ----- clips: upload or record ------------------------------------------------------------

function setClip(blob, name) {
  clip = { blob, name };
  $("#clip-name").textContent = name;
  $("#clip-search-btn").disabled = false;
  const preview = $("#clip-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(blob);
  preview.hidden = false;
}

async function toggleRecording() {
  const button = $("#record-btn");
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    setStatus("This browser cannot record audio; choose a file instead.", "warn");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus(`The microphone is not available: ${e.message}`, "warn");
    return;
  }
  const type = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/ogg"]
    .find((t) => MediaRecorder.isTypeSupported(t)) || "";
  recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    const mime = recorder.mimeType || "audio/webm";
    const blob = new Blob(chunks, { type: mime });
    setClip(blob, `recording.${mime.includes("ogg") ? "ogg" : "webm"}`);
    button.textContent = "● Record";
    button.classList.remove("recording");
    if ($("#clip-mode").value.startsWith("example")) $("#clip-mode").value = "hum";
    setStatus("Recorded. Press Search to find it.");
  };
  recorder.start();
  button.textContent = "■ Stop";
  button.classList.add("recording");
  setStatus("Recording… hum or sing, then press Stop.", "busy");
}

async function searchClip() {
  if (!clip) return;
  const mode = $("#clip-mode").value;
  const form = new FormData();
  form.append("file", clip.blob, clip.name);
  form.append("limit", "20");
  let path = "/search/hum";
  if (mode.startsWith("example:")) {
    path = "/search/example";
    form.append("space", mode.split(":")[1]);
  } else if (mode === "singers") {
    path = "/search/similar-singers";
  }
  setStatus("Listening to the clip… (separating the voice takes a few seconds)", "busy");
  $("#understood").hidden = true;
  try {
    const answer = await api(path, { method: "POST", body: form });
    if (mode === "singers") renderArtists(answer, "singers like this clip");
    else renderTracks(answer, mode === "hum" ? "songs this tune comes from" : "similar songs");
  } catch (e) {
    failed(e);
  }
}

// ----- results ----------------------------------------------------------------------------

function failed(error) {
  $("#results").replaceChildren();
  setStatus(error.message, "error");
}

function summary(answer, what) {
  if (!answer.results.length) {
    setStatus(answer.message || "Nothing close enough.", "warn");
  } else {
    setStatus(`${answer.results.length} ${what} · ${Math.round(answer.took_ms)} ms`);
  }
}

function scoreBar(score) {
  const pct = Math.max(0, Math.min(100, Math.round(score * 100)));
  return el("span", { class: "score", title: `score ${score.toFixed(3)}` },
    el("span", { class: "bar", style: `width:${pct}%` }), score.toFixed(2));
}

function trackTags(tags) {
  // payload tags are {name: score}, [name] (tags scored >= 0.5) or [{name, score, source}]
  const list = Array.isArray(tags)
    ? tags.map((t) => (typeof t === "string" ? [t, 1] : [t.name, t.score]))
    : Object.entries(tags || {});
  return el("span", { class: "tags" },
    list.sort((a, b) => b[1] - a[1]).slice(0, 5).map(([t]) => el("span", { class: "tag" }, t)));
}

function renderTracks(answer, what) {
  summary(answer, what);
  $("#results").replaceChildren(...answer.results.map((r) => {
    const p = r.payload;
    const start = p.match_start ?? p.start;
    const end = p.match_end ?? p.end;
    const span = start !== undefined ? `${fmtTime(start)}–${fmtTime(end)}` : "";
    return el("li", { class: "result", "data-id": r.id },
      el("button", {
        class: "play", type: "button", title: span ? `play from ${fmtTime(start)}` : "play",
        "aria-label": `play ${p.title}`, onclick: () => play(r.id, p.title, start || 0),
      }, "▶"),
      el("div", { class: "meta" },
        el("strong", { class: "title" }, p.title ?? `track ${r.id}`),
        el("span", { class: "artist" }, p.artist_id
          ? el("a", { href: `#artist-${p.artist_id}`,
            onclick: (e) => { e.preventDefault(); openArtist(p.artist_id); } }, p.artist)
          : (p.artist || "unknown artist")),
        span ? el("span", { class: "span" }, `match ${span}`) : null,
        trackTags(p.tags)),
      scoreBar(r.score));
  }));
}

function renderArtists(answer, what, target = $("#results")) {
  if (target === $("#results")) summary(answer, what);
  target.replaceChildren(...answer.results.map((r) => {
    const p = r.payload;
    return el("li", { class: "result artist-result", "data-id": r.id },
      el("div", { class: "meta" },
        el("a", { href: `#artist-${r.id}`, class: "title",
          onclick: (e) => { e.preventDefault(); openArtist(r.id); } }, p.name ?? `artist ${r.id}`),
        el("span", { class: "why" }, "closest songs: ",
          (p.closest_tracks || []).map((t) => el("button", {
            type: "button", class: "linkish", title: `similarity ${t.score}`,
            onclick: () => play(t.id, t.title, 0),
          }, `▶ ${t.title}`)))),
      scoreBar(r.score));
  }));
  if (!answer.results.length && target !== $("#results")) {
    target.replaceChildren(el("li", { class: "empty" }, answer.message || "nobody close"));
  }
}

// ----- playing from the matched time ------------------------------------------------------

function play(trackId, title, start) {
  const player = $("#player");
  const src = `/tracks/${trackId}/audio`;
  $("#now-playing").textContent = `${title || `track ${trackId}`} · from ${fmtTime(start)}`;
  const seek = () => {
    player.currentTime = start || 0;
    player.play().catch(() => {});
  };
  if (player.dataset.track === String(trackId)) {
    seek();
    return;
  }
  player.dataset.track = String(trackId);
  player.src = `${src}#t=${(start || 0).toFixed(2)}`;
  player.addEventListener("loadedmetadata", seek, { once: true });
  player.load();
}

// ----- artists ----------------------------------------------------------------------------

async function openArtist(id) {
  const view = $("#artist-view");
  const body = $("#artist-body");
  view.hidden = false;
  body.replaceChildren(el("p", { class: "status busy" }, "Loading…"));
  try {
    const [artist, similar] = await Promise.all([
      api(`/artists/${id}`), api(`/artists/${id}/similar?limit=8`)]);
    $("#artist-title").textContent = artist.name;
    const similarList = el("ol", { class: "results compact" });
    renderArtists(similar, "", similarList);
    body.replaceChildren(
      el("h3", {}, `Songs (${artist.n_tracks})`),
      el("ol", { class: "results compact" }, artist.tracks.map((t) => el("li", { class: "result" },
        el("button", { class: "play", type: "button", "aria-label": `play ${t.title}`,
          onclick: () => play(t.id, t.title, 0) }, "▶"),
        el("div", { class: "meta" }, el("strong", {}, t.title), trackTags(t.tags)),
        el("button", { type: "button", class: "linkish", title: "songs with a voice like this",
          onclick: () => similarTracks(t.id, t.title) }, "similar")))),
      el("h3", {}, "Singers who sound alike"),
      similarList);
    view.scrollIntoView({ behavior: "smooth", block: "start" });
    highlightOnMap(id);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error" }, e.message));
  }
}

async function similarTracks(id, title) {
  setStatus("Searching…", "busy");
  try {
    const answer = await api(`/tracks/${id}/similar?space=timbre&limit=20`);
    renderTracks(answer, `songs with a voice like “${title}”`);
    $(".results-panel").scrollIntoView({ behavior: "smooth" });
  } catch (e) {
    failed(e);
  }
}

// ----- the map of singers -----------------------------------------------------------------

async function loadMap() {
  const svg = $("#singer-map");
  const ns = "http://www.w3.org/2000/svg";
  try {
    const map = await api("/singers/map");
    svg.replaceChildren();
    if (!map.points.length) {
      const text = document.createElementNS(ns, "text");
      text.setAttribute("x", "300");
      text.setAttribute("y", "200");
      text.setAttribute("text-anchor", "middle");
      text.textContent = "No singers yet: ingest some songs.";
      svg.append(text);
      return;
    }
    const xs = map.points.map((p) => p.x);
    const ys = map.points.map((p) => p.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const sx = (x) => 30 + ((x - x0) / (x1 - x0 || 1)) * 540;
    const sy = (y) => 30 + ((y - y0) / (y1 - y0 || 1)) * 340;
    for (const p of map.points) {
      const g = document.createElementNS(ns, "g");
      g.setAttribute("class", `point ${p.gender || "unknown"}`);
      g.setAttribute("data-id", p.id);
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      const c = document.createElementNS(ns, "circle");
      c.setAttribute("cx", sx(p.x));
      c.setAttribute("cy", sy(p.y));
      c.setAttribute("r", 7);
      const title = document.createElementNS(ns, "title");
      title.textContent = `${p.name} (${p.tracks ?? "?"} songs)`;
      const label = document.createElementNS(ns, "text");
      const right = sx(p.x) > 300; // keep labels inside the picture
      label.setAttribute("x", sx(p.x) + (right ? -10 : 10));
      label.setAttribute("y", sy(p.y) + 4);
      label.setAttribute("text-anchor", right ? "end" : "start");
      label.textContent = p.name;
      g.append(title, c, label);
      g.addEventListener("click", () => openArtist(p.id));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter") openArtist(p.id); });
      svg.append(g);
    }
  } catch (e) {
    svg.replaceChildren();
    $(".map-panel .hint").textContent = `The map could not be drawn: ${e.message}`;
  }
}

function highlightOnMap(id) {
  for (const g of document.querySelectorAll("#singer-map .point")) {
    g.classList.toggle("selected", g.dataset.id === String(id));
  }
}

// ----- wiring -----------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#tag-form").addEventListener("submit", searchTags);
  $("#clip-file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) setClip(file, file.name);
  });
  $("#record-btn").addEventListener("click", toggleRecording);
  $("#clip-search-btn").addEventListener("click", searchClip);
  const hash = location.hash.match(/^#artist-(\d+)$/);
  if (hash) openArtist(Number(hash[1]));
  loadStats();
  loadTags();
  loadMap();
});
