// The opencrs console: one static page talking to the same API, with a token only.
// Every value from the API is put in the page as text (textContent, attributes), never
// parsed as HTML: names and meta are user input.
"use strict";

const PAGE_SIZE = 12;
const SEARCH_PAGES = 20; // pages of 100 a search reads before it stops
const state = { appId: "", token: "", page: 1, total: 0, query: "", pending: null };
const $ = (id) => document.getElementById(id);

// The API's base: the directory the console page is served under (/prod/ when deployed).
const BASE = location.pathname.replace(/\/console(\/(index\.html)?)?$/, "/");

class ApiFailure extends Error {
  constructor(statusCode, message) {
    super(message);
    this.statusCode = statusCode;
  }
}

async function api(method, path, { query = {}, body = null } = {}) {
  const url = new URL(BASE + path, location.origin);
  const init = { method, headers: { Authorization: state.token } };
  if (body === null) {
    url.searchParams.set("appId", state.appId);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
  } else {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify({ appId: state.appId, ...body });
  }
  let reply;
  try {
    const response = await fetch(url, init);
    reply = await response.json();
  } catch (error) {
    throw new ApiFailure(-1, "the service did not answer (" + error.message + ")");
  }
  if (reply.statusCode !== 0) {
    const result = reply.result;
    const text = typeof result === "string" ? result : (result && result.message) || reply.msg || "request refused";
    throw new ApiFailure(reply.statusCode, text);
  }
  return reply.result;
}

function show(message, ok = false) {
  const box = $("message");
  box.textContent = message;
  box.className = ok ? "ok" : "";
  box.hidden = !message;
}

function failed(error) {
  if (error instanceof ApiFailure) show("statusCode " + error.statusCode + ": " + error.message);
  else show(String(error.message || error));
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function button(text, onClick, name) {
  const node = element("button", text);
  node.type = "button";
  if (name) node.dataset.action = name;
  node.addEventListener("click", onClick);
  return node;
}

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(new Error("could not read " + file.name));
    reader.readAsDataURL(file);
  });
}

function imageSource(base64) {
  // JPEG or PNG by magic number; the bytes only ever come from this API.
  const type = base64.startsWith("iVBOR") ? "image/png" : "image/jpeg";
  return "data:" + type + ";base64," + base64;
}

// -- sign in -----------------------------------------------------------------------------

async function signIn(appId, token) {
  state.appId = appId.trim();
  state.token = token.trim();
  try {
    await api("GET", "targets/count");
  } catch (error) {
    state.token = "";
    failed(error);
    return;
  }
  sessionStorage.setItem("opencrs", JSON.stringify({ appId: state.appId, token: state.token }));
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  $("library").textContent = "library " + state.appId;
  show("");
  await loadPage(1);
}

function signOut() {
  sessionStorage.removeItem("opencrs");
  state.token = "";
  location.reload();
}

// -- the gallery -------------------------------------------------------------------------

async function loadPage(page) {
  try {
    state.query = "";
    const result = await api("GET", "targets/infos", { query: { pageNum: page, pageSize: PAGE_SIZE } });
    state.page = page;
    state.total = result.total;
    render(result.targets);
    const pages = Math.max(1, Math.ceil(state.total / PAGE_SIZE));
    $("page").textContent = "page " + page + " of " + pages;
    $("prev").disabled = page <= 1;
    $("next").disabled = page >= pages;
    $("count").textContent = "(" + state.total + " targets)";
  } catch (error) {
    failed(error);
  }
}

async function search(text) {
  const wanted = text.trim().toLowerCase();
  if (!wanted) return loadPage(1);
  const found = [];
  try {
    for (let page = 1; page <= SEARCH_PAGES; page++) {
      const result = await api("GET", "targets/infos", { query: { pageNum: page, pageSize: 100 } });
      found.push(...result.targets.filter((t) => String(t.name).toLowerCase().includes(wanted)));
      if (page * 100 >= result.total) break;
    }
    state.query = wanted;
    render(found);
    $("page").textContent = found.length + " matching “" + text.trim() + "”";
    $("prev").disabled = $("next").disabled = true;
  } catch (error) {
    failed(error);
  }
}

function render(targets) {
  const list = $("targets");
  list.replaceChildren();
  for (const target of targets) list.append(card(target));
}

function card(target) {
  const item = element("li");
  item.dataset.targetId = target.targetId;
  const image = element("img");
  image.alt = "";
  item.append(image, element("div", target.name, "name"));
  item.append(element("div", "size " + target.size + " · detection " + target.detectableRate +
    " · tracking " + target.trackableRate + " (0 best)", "muted"));
  if (target.state && target.state !== "indexed") item.append(element("div", target.state, "muted"));
  const active = element("input");
  active.type = "checkbox";
  active.checked = target.active === "1";
  active.dataset.action = "active";
  active.addEventListener("change", () => setActive(target, active));
  const label = element("label", " active");
  label.prepend(active);
  const actions = element("div", undefined, "actions");
  actions.append(label, button("Edit", () => edit(target), "edit"), button("Delete", () => remove(target), "delete"));
  item.append(actions);
  loadThumbnail(target.targetId, image);
  return item;
}

async function loadThumbnail(targetId, image) {
  try {
    const target = await api("GET", "target/" + encodeURIComponent(targetId));
    if (target.trackingImage) image.src = imageSource(target.trackingImage);
  } catch (error) {
    image.alt = "no image";
  }
}

async function setActive(target, box) {
  try {
    await api("PUT", "target/" + encodeURIComponent(target.targetId), { body: { active: box.checked ? "1" : "0" } });
    target.active = box.checked ? "1" : "0";
    show((box.checked ? "Activated " : "Deactivated ") + target.name, true);
  } catch (error) {
    box.checked = !box.checked;
    failed(error);
  }
}

function edit(target) {
  $("edit-name").value = target.name;
  $("edit-size").value = target.size;
  $("edit-meta").value = target.meta || "";
  const dialog = $("edit");
  dialog.onclose = async () => {
    if (dialog.returnValue !== "save") return;
    try {
      await api("PUT", "target/" + encodeURIComponent(target.targetId), {
        body: { name: $("edit-name").value, size: $("edit-size").value, meta: $("edit-meta").value },
      });
      show("Saved " + $("edit-name").value, true);
      await refresh();
    } catch (error) {
      failed(error);
    }
  };
  dialog.showModal();
}

async function remove(target) {
  if (!confirm("Delete “" + target.name + "”? It cannot be undone.")) return;
  try {
    await api("DELETE", "target/" + encodeURIComponent(target.targetId));
    show("Deleted " + target.name, true);
    await refresh();
  } catch (error) {
    failed(error);
  }
}

function refresh() {
  return state.query ? search(state.query) : loadPage(state.page);
}

// -- adding targets ----------------------------------------------------------------------

async function addFiles(files) {
  const images = [...files].filter((f) => /^image\/(jpeg|png)$/.test(f.type));
  if (!images.length) return show("Only JPEG and PNG images can be targets");
  const progress = $("add-progress");
  progress.hidden = false;
  progress.max = images.length;
  let added = 0;
  for (let i = 0; i < images.length; i++) {
    const file = images[i];
    progress.value = i;
    $("add-status").textContent = "Adding " + (i + 1) + " of " + images.length + ": " + file.name;
    try {
      const image = await fileBase64(file);
      const similar = await api("POST", "similar", { body: { image } });
      let allowSimilar = "0";
      if (similar.results.length) {
        if (!(await lookAlikes(file.name, similar.results))) continue;
        allowSimilar = "1";
      }
      const name = file.name.replace(/\.[^.]+$/, "").slice(0, 64) || "target";
      await api("POST", "targets", { body: { image, name, size: "20", allowSimilar } });
      added++;
    } catch (error) {
      failed(error);
    }
  }
  progress.value = images.length;
  $("add-status").textContent = added + " of " + images.length + " added";
  await loadPage(1);
}

function lookAlikes(fileName, results) {
  $("look-alikes-title").textContent = fileName + " looks like " + results.length +
    " target(s) already in the library:";
  const list = $("look-alikes-list");
  list.replaceChildren();
  for (const target of results) {
    const item = element("li");
    const image = element("img");
    image.alt = "";
    if (target.trackingImage) image.src = imageSource(target.trackingImage);
    item.append(image, element("div", target.name, "name"), element("div", "score " + target.score, "muted"));
    list.append(item);
  }
  $("look-alikes").hidden = false;
  return new Promise((resolve) => {
    const done = (answer) => () => {
      $("look-alikes").hidden = true;
      resolve(answer);
    };
    $("create-anyway").onclick = done(true);
    $("skip").onclick = done(false);
  });
}

// -- try a photo -------------------------------------------------------------------------

async function tryPhoto(file) {
  $("try-results").replaceChildren();
  $("try-status").textContent = "Searching…";
  try {
    const image = await fileBase64(file);
    const answer = await api("POST", "similar", { body: { image } });
    const picture = new Image();
    picture.src = "data:" + file.type + ";base64," + image;
    await picture.decode();
    draw(picture, answer.results);
    $("try-status").textContent = answer.results.length
      ? answer.results.length + " target(s) found"
      : "Nothing in the library matches this photo";
  } catch (error) {
    $("try-status").textContent = "";
    failed(error);
  }
}

function draw(picture, results) {
  const canvas = $("try-canvas");
  canvas.width = picture.naturalWidth;
  canvas.height = picture.naturalHeight;
  canvas.hidden = false;
  const pen = canvas.getContext("2d");
  pen.drawImage(picture, 0, 0);
  const line = Math.max(2, Math.round(canvas.width / 300));
  results.forEach((target, i) => {
    const colour = ["#e53935", "#1e88e5", "#43a047", "#fb8c00"][i % 4];
    pen.strokeStyle = pen.fillStyle = colour;
    pen.lineWidth = line;
    pen.beginPath();
    target.corners.forEach(([x, y], k) => (k ? pen.lineTo(x, y) : pen.moveTo(x, y)));
    pen.closePath();
    pen.stroke();
    const [x, y] = target.corners[0];
    pen.font = 6 * line + "px sans-serif";
    pen.fillText(target.name, x + line, y + 7 * line); // fillText draws text, never markup
    const how = target.wholeImage ? "whole image" : target.inliers + " inliers";
    const item = element("li", target.name + " — score " + target.score + ", " + how);
    item.dataset.corners = JSON.stringify(target.corners);
    $("try-results").append(item);
  });
}

// -- wiring ------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("app-id").value, $("token").value);
  });
  $("sign-out").addEventListener("click", signOut);
  $("prev").addEventListener("click", () => loadPage(state.page - 1));
  $("next").addEventListener("click", () => loadPage(state.page + 1));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("search").value);
  });
  $("clear-search").addEventListener("click", () => {
    $("search").value = "";
    loadPage(1);
  });
  // Each choice is taken once and the input emptied, so the same file can be chosen again.
  $("files").addEventListener("change", (event) => {
    const files = [...event.target.files];
    event.target.value = "";
    addFiles(files);
  });
  $("try-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    event.target.value = "";
    if (file) tryPhoto(file);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  const saved = JSON.parse(sessionStorage.getItem("opencrs") || "null");
  if (saved && saved.token) signIn(saved.appId, saved.token);
});
