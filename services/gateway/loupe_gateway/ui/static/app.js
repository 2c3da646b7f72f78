// Loupe web UI: vanilla JS over the Custom Vision compatible REST API (same origin).
"use strict";

(() => {
  const TRAINING = "/customvision/v3.3/training";
  const PREDICTION = "/customvision/v3.0/prediction";
  const KEYS_STORAGE = "loupe.keys";
  // Images per upload call and the hint that says so: from the page, which the gateway
  // renders with its configured limits.
  const UPLOAD_BATCH = Number(document.getElementById("upload-selection").dataset.batch);
  const UPLOAD_HINT = document.getElementById("upload-selection").textContent;
  const PAGE_SIZE = 24;      // thumbnails per page
  const UNTAGGED = "untagged"; // the upload tag select's "no tag" value
  const POLL_MS = 500;       // training progress polling period

  const STATUS_TEXT = {
    OK: "uploaded",
    OKDuplicate: "already in the project",
    ErrorSource: "could not be read",
    ErrorImageFormat: "not a supported image (JPEG, PNG, BMP or GIF)",
    ErrorImageSize: "too large",
    ErrorImageDimensions: "image dimensions out of range",
    ErrorStorage: "storage error",
    ErrorLimitExceed: "the project's image limit is reached",
    ErrorTagLimitExceed: "too many tags on the image",
    ErrorInvalidTag: "unknown tag",
    ErrorNegativeAndRegularTagOnSameImage: "Negative and regular tags on the same image",
    ErrorUnknown: "unknown error",
  };

  const $ = (id) => document.getElementById(id);

  /** Creates an element; attrs go to properties (text, className, …) or attributes. */
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k === "className") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c !== null && c !== undefined && c !== false) el.append(c);
    }
    return el;
  }

  const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${(x * 100).toFixed(1)}%`);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

  // ---------------------------------------------------------------- keys

  function loadKeys() {
    try {
      return JSON.parse(localStorage.getItem(KEYS_STORAGE)) || {};
    } catch (_) {
      return {};
    }
  }
  let keys = loadKeys();

  function openKeys() {
    $("training-key").value = keys.trainingKey || "";
    $("prediction-key").value = keys.predictionKey || "";
    $("prediction-resource-id").value = keys.predictionResourceId || "";
    if (!$("keys-dialog").open) $("keys-dialog").showModal();
    $("training-key").focus();
  }

  // ---------------------------------------------------------------- errors and notices

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function errorFromBody(status, statusText, text) {
    let code = `HTTP ${status}`;
    let message = statusText || "Request failed";
    try {
      const body = JSON.parse(text);
      if (body && (body.code || body.message)) {
        code = body.code || code;
        message = body.message || message;
      }
    } catch (_) {
      if (text) message = text.slice(0, 300);
    }
    if (status === 401) message += " Check the keys (Keys button).";
    return new ApiError(status, code, message);
  }

  function showError(err) {
    console.error(err);
    const code = err instanceof ApiError ? err.code : "Error";
    $("error-alert").querySelector("[data-testid=error-code]").textContent = code;
    $("error-alert").querySelector("[data-testid=error-message]").textContent = err.message || String(err);
    $("error-alert").hidden = false;
  }

  function clearError() {
    $("error-alert").hidden = true;
  }

  let noticeTimer = 0;
  function notice(text) {
    const el = $("notice");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { el.hidden = true; }, 4000);
  }

  /** Runs an async action with its button disabled; errors go to the alert area. */
  async function guarded(button, fn) {
    if (button) button.disabled = true;
    try {
      clearError();
      return await fn();
    } catch (err) {
      showError(err);
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- HTTP

  function apiUrl(base, path, query) {
    const url = new URL(base + path, location.origin);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
    return url;
  }

  async function call(method, path, { query, body, headers, prediction = false } = {}) {
    const url = apiUrl(prediction ? PREDICTION : TRAINING, path, query);
    const auth = prediction
      ? { "Prediction-Key": keys.predictionKey || "" }
      : { "Training-Key": keys.trainingKey || "" };
    let resp;
    try {
      resp = await fetch(url, { method, body, headers: { ...auth, ...(headers || {}) } });
    } catch (err) {
      throw new ApiError(0, "NetworkError", `Could not reach the Loupe gateway (${err.message}).`);
    }
    const text = await resp.text();
    if (!resp.ok) throw errorFromBody(resp.status, resp.statusText, text);
    return text ? JSON.parse(text) : null;
  }

  /** One multipart upload batch, through XHR for upload progress events. */
  function uploadBatch(projectId, tagId, files, onProgress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const f of files) form.append("imageData", f, f.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", apiUrl(TRAINING, `/projects/${encodeURIComponent(projectId)}/images`, { tagIds: tagId }));
      xhr.setRequestHeader("Training-Key", keys.trainingKey || "");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable && e.total) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(JSON.parse(xhr.responseText));
          } catch (_) {
            reject(new ApiError(xhr.status, "BadResponse", "The upload answer was not JSON."));
          }
        } else {
          reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "NetworkError", "The upload did not reach the Loupe gateway.")));
      xhr.send(form);
    });
  }

  // ---------------------------------------------------------------- state

  const state = {
    project: null,
    tags: [],
    iterations: [],
    imagesSkip: 0,
    imagesTotal: 0,
    selectedIteration: null,
    pendingFiles: [],
    pollTimer: 0,
    pollingId: null,
    perfSeq: 0,
    storedContinuation: null,
    storedSeq: 0,
    deletedPredictions: new Set(), // dropped from answers that were in flight during the delete
    addedPredictions: new Map(),   // prediction id → [status, text, tagId], kept across reloads
    suggestedContinuation: null,
    suggestedSeq: 0,
    confirmedImages: new Set(), // dropped from suggestion answers that were in flight meanwhile
    generation: 0, // bumps when the view changes; late answers of an older view are dropped
  };

  const pid = () => encodeURIComponent(state.project.id);

  // ---------------------------------------------------------------- routing

  function route() {
    state.generation += 1;
    stopPolling();
    clearError();
    const m = location.hash.match(/^#\/projects\/([^/?#]+)/);
    $("view-projects").hidden = !!m;
    $("view-project").hidden = !m;
    $("crumb-project").hidden = !m;
    if (!keys.trainingKey) {
      openKeys();
      return;
    }
    if (m) showProject(decodeURIComponent(m[1])).catch(showError);
    else showProjects().catch(showError);
  }

  // ---------------------------------------------------------------- projects

  async function showProjects() {
    const gen = state.generation;
    state.project = null;
    document.title = "Projects – Loupe";
    const projects = await call("GET", "/projects");
    if (gen !== state.generation) return;
    projects.sort((a, b) => (b.created || "").localeCompare(a.created || ""));
    const body = $("projects-body");
    body.replaceChildren(...projects.map(projectRow));
    $("projects-empty").hidden = projects.length > 0;
  }

  function projectRow(p) {
    const actions = h("td", { className: "actions" });
    const del = h("button", {
      type: "button", className: "btn secondary small", "data-testid": "project-delete-button",
      "aria-label": `Delete project ${p.name}`, text: "Delete",
    });
    const confirm = h("span", { hidden: true },
      h("button", {
        type: "button", className: "btn danger small", "data-testid": "project-delete-confirm",
        text: "Yes, delete", onclick: (e) => guarded(e.currentTarget, async () => {
          await call("DELETE", `/projects/${encodeURIComponent(p.id)}`);
          notice(`Deleted project ${p.name}.`);
          await showProjects();
        }),
      }),
      h("button", {
        type: "button", className: "btn secondary small", "data-testid": "project-delete-cancel",
        text: "Cancel", onclick: () => { confirm.hidden = true; del.hidden = false; del.focus(); },
      }),
    );
    del.addEventListener("click", () => { del.hidden = true; confirm.hidden = false; confirm.firstChild.focus(); });
    actions.append(del, confirm);
    const type = (p.settings && p.settings.classificationType) || "";
    return h("tr", { "data-testid": "project-row", "data-project-id": p.id, "data-project-name": p.name },
      h("td", {}, h("a", { href: `#/projects/${encodeURIComponent(p.id)}`, "data-testid": "project-link", text: p.name })),
      h("td", { text: type }),
      h("td", { text: when(p.created) }),
      actions);
  }

  $("create-project-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    guarded(form.querySelector("button[type=submit]"), async () => {
      const project = await call("POST", "/projects", {
        query: { name: $("project-name").value.trim(), classificationType: $("project-type").value },
      });
      form.reset();
      location.hash = `#/projects/${encodeURIComponent(project.id)}`;
    });
  });

  // ---------------------------------------------------------------- one project

  async function showProject(id) {
    const gen = state.generation;
    const project = await call("GET", `/projects/${encodeURIComponent(id)}`);
    if (gen !== state.generation) return;
    state.project = project;
    state.selectedIteration = null;
    state.imagesSkip = 0;
    state.pendingFiles = [];
    document.title = `${project.name} – Loupe`;
    $("project-title").textContent = project.name;
    document.querySelector("[data-testid=nav-project-name]").textContent = project.name;
    const type = (project.settings && project.settings.classificationType) || "";
    $("project-meta").textContent = `${type} · created ${when(project.created)}`;
    $("upload-form").reset();
    updateSelection();
    $("upload-summary").hidden = true;
    $("upload-progress-wrap").hidden = true;
    $("train-progress-wrap").hidden = true;
    $("train-error").hidden = true;
    $("performance").hidden = true;
    $("quicktest-result").hidden = true;
    $("images-filter").value = "";
    $("delete-project-confirm").hidden = true;
    $("delete-project-button").hidden = false;
    resetFeedbackSections();
    await Promise.all([loadTags(), loadImages(), loadIterations()]);
    if (gen !== state.generation) return;
    const running = state.iterations.find((it) => it.status === "Training");
    if (running) startPolling(running);
    await Promise.all([loadStored(false), loadSuggested(false)]);
  }

  // ---- tags

  async function loadTags() {
    const gen = state.generation;
    const tags = await call("GET", `/projects/${pid()}/tags`);
    if (gen !== state.generation) return;
    state.tags = tags;
    $("tags-list").replaceChildren(...tags.map((t) => h("li", {
      "data-testid": "tag-row", "data-tag-id": t.id, "data-tag-name": t.name,
    },
    h("span", { className: "tag-name", text: t.name }),
    h("span", { className: "badge", "data-testid": "tag-count", "aria-label": `${t.imageCount} images`, text: String(t.imageCount) }))));
    $("tags-empty").hidden = tags.length > 0;

    const select = $("upload-tag");
    const previous = select.value;
    select.replaceChildren(
      ...tags.map((t) => h("option", { value: t.id, text: t.name })),
      h("option", { value: UNTAGGED, text: "No tag (untagged)" }));
    if (previous === UNTAGGED || tags.some((t) => t.id === previous)) select.value = previous;

    const filter = $("images-filter");
    const shown = filter.value;
    filter.replaceChildren(
      h("option", { value: "", text: "All images" }),
      h("option", { value: "untagged", text: "Untagged" }),
      ...tags.map((t) => h("option", { value: t.id, text: `Tagged ${t.name}` })));
    filter.value = shown === "untagged" || tags.some((t) => t.id === shown) ? shown : "";
    updateSelection();
  }

  $("create-tag-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    guarded(form.querySelector("button[type=submit]"), async () => {
      const name = $("tag-name").value.trim();
      const tag = await call("POST", `/projects/${pid()}/tags`, { query: { name } });
      form.reset();
      await loadTags();
      $("upload-tag").value = tag.id;
      updateSelection();
      notice(`Added tag ${tag.name}.`);
    });
  });

  // ---- upload

  function updateSelection() {
    const n = state.pendingFiles.length;
    $("upload-selection").textContent = n
      ? `${n} image${n === 1 ? "" : "s"} selected.`
      : UPLOAD_HINT;
    $("upload-button").disabled = !(n && $("upload-tag").value);
  }

  $("upload-files").addEventListener("change", (e) => {
    state.pendingFiles = Array.from(e.currentTarget.files || []);
    updateSelection();
  });
  $("upload-tag").addEventListener("change", updateSelection);

  const drop = $("drop-zone");
  ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (e) => {
    e.preventDefault();
    drop.classList.add("dragging");
  }));
  ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragging")));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const files = Array.from((e.dataTransfer && e.dataTransfer.files) || []);
    if (!files.length) return;
    state.pendingFiles = files;
    $("upload-files").value = "";
    updateSelection();
  });

  $("upload-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const files = state.pendingFiles.slice();
    const tagId = $("upload-tag").value;
    if (!files.length || !tagId) return;
    guarded($("upload-button"), () => uploadAll(files, tagId === UNTAGGED ? "" : tagId));
  });

  async function uploadAll(files, tagId) {
    const gen = state.generation;
    const bar = $("upload-progress");
    const label = $("upload-progress-label");
    const batches = [];
    for (let i = 0; i < files.length; i += UPLOAD_BATCH) batches.push(files.slice(i, i + UPLOAD_BATCH));
    $("upload-summary").hidden = true;
    $("upload-progress-wrap").hidden = false;
    bar.value = 0;
    const results = [];
    let failure = null;
    let done = 0;
    for (const [index, batch] of batches.entries()) {
      label.textContent = `Uploading batch ${index + 1} of ${batches.length} (${done} of ${files.length} images sent)`;
      try {
        const summary = await uploadBatch(state.project.id, tagId, batch, (fraction) => {
          bar.value = Math.round(((done + fraction * batch.length) / files.length) * 100);
        });
        const images = (summary && summary.images) || [];
        batch.forEach((file, i) => {
          const r = images[i] || {};
          results.push({ name: r.sourceUrl || file.name, status: r.status || "ErrorUnknown", message: r.message });
        });
      } catch (err) {
        failure = failure || err;
        for (const file of batch) results.push({ name: file.name, status: err.code, message: err.message });
      }
      done += batch.length;
      bar.value = Math.round((done / files.length) * 100);
    }
    label.textContent = `Upload finished: ${files.length} image${files.length === 1 ? "" : "s"}`;
    renderUploadSummary(results);
    state.pendingFiles = [];
    $("upload-files").value = "";
    updateSelection();
    if (gen === state.generation) {
      state.imagesSkip = 0;
      await Promise.all([loadTags(), loadImages(), loadSuggested(false)]);
    }
    if (failure) throw failure;
  }

  function renderUploadSummary(results) {
    const counts = new Map();
    for (const r of results) counts.set(r.status, (counts.get(r.status) || 0) + 1);
    const errors = results.filter((r) => !String(r.status).startsWith("OK"));
    const summary = $("upload-summary");
    summary.className = `summary ${errors.length ? "has-errors" : "ok"}`;
    summary.setAttribute("data-errors", String(errors.length));
    summary.replaceChildren(...[
      h("p", { "data-testid": "upload-summary-counts" },
        `${results.length} image${results.length === 1 ? "" : "s"}: `,
        [...counts.entries()].map(([status, n], i) => [
          i ? ", " : "",
          h("span", { className: `status ${status.startsWith("OK") ? "ok" : "bad"}`, "data-status": status, text: `${n} ${status}` }),
        ])),
      errors.length
        ? h("ul", { className: "upload-errors", "data-testid": "upload-errors" },
          errors.map((r) => h("li", { "data-testid": "upload-error" },
            h("strong", { text: r.name || "(unnamed)" }),
            `: ${r.status} – ${r.message || STATUS_TEXT[r.status] || "failed"}`)))
        : null,
    ].filter(Boolean));
    summary.hidden = false;
  }

  // ---- images

  $("images-filter").addEventListener("change", () => {
    state.imagesSkip = 0;
    loadImages().catch(showError);
  });
  $("images-prev").addEventListener("click", () => {
    state.imagesSkip = Math.max(0, state.imagesSkip - PAGE_SIZE);
    loadImages().catch(showError);
  });
  $("images-next").addEventListener("click", () => {
    state.imagesSkip += PAGE_SIZE;
    loadImages().catch(showError);
  });

  async function loadImages() {
    const gen = state.generation;
    const filter = $("images-filter").value;
    const query = filter === "untagged" ? { taggingStatus: "Untagged" } : filter ? { tagIds: filter } : {};
    const [total, images, untagged] = await Promise.all([
      call("GET", `/projects/${pid()}/images/count`, { query }),
      call("GET", `/projects/${pid()}/images`, { query: { ...query, take: PAGE_SIZE, skip: state.imagesSkip } }),
      call("GET", `/projects/${pid()}/images/count`, { query: { taggingStatus: "Untagged" } }),
    ]);
    if (gen !== state.generation) return;
    const untaggedCount = $("untagged-count");
    untaggedCount.textContent = `(${Number(untagged) || 0} untagged)`;
    untaggedCount.setAttribute("data-count", String(Number(untagged) || 0));
    state.imagesTotal = Number(total) || 0;
    if (state.imagesSkip && state.imagesSkip >= state.imagesTotal) {
      state.imagesSkip = Math.max(0, Math.floor((state.imagesTotal - 1) / PAGE_SIZE) * PAGE_SIZE);
      return loadImages();
    }
    $("image-grid").replaceChildren(...images.map((img) => {
      const names = (img.tags || []).map((t) => t.tagName).join(", ");
      return h("li", { className: "tile", "data-testid": "image-tile", "data-image-id": img.id },
        h("a", { href: img.originalImageUri || img.thumbnailUri || "#", target: "_blank", rel: "noopener" },
          h("img", {
            src: img.thumbnailUri || img.originalImageUri || "", loading: "lazy",
            alt: names ? `Image tagged ${names}` : "Untagged image", width: 120, height: 120,
          })),
        h("span", { className: "tile-caption", text: names || "untagged" }));
    }));
    const pages = Math.max(1, Math.ceil(state.imagesTotal / PAGE_SIZE));
    const page = Math.floor(state.imagesSkip / PAGE_SIZE) + 1;
    $("images-count").textContent = `(${state.imagesTotal})`;
    $("images-page").textContent = `Page ${page} of ${pages}`;
    $("images-prev").disabled = page <= 1;
    $("images-next").disabled = page >= pages;
    $("images-empty").hidden = images.length > 0;
  }

  // ---- training

  $("train-button").addEventListener("click", async (e) => {
    const button = e.currentTarget;
    button.disabled = true; // stays disabled while the iteration trains
    $("train-error").hidden = true;
    const iteration = await guarded(null, async () => {
      const type = $("train-type").value;
      const query = type === "Advanced" ? { trainingType: type, reservedBudgetInHours: 1 } : {};
      const started = await call("POST", `/projects/${pid()}/train`, { query });
      await loadIterations();
      return started;
    });
    if (iteration) startPolling(iteration);
    else button.disabled = false;
  });

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = 0;
    state.pollingId = null;
    $("train-button").disabled = false;
  }

  function showTraining(it) {
    const wrap = $("train-progress-wrap");
    const bar = $("train-progress");
    const status = $("train-status");
    wrap.hidden = false;
    wrap.setAttribute("data-status", it.status);
    if (it.status === "Training") {
      const p = it.progress || {};
      const percent = typeof p.percent === "number" ? Math.max(0, Math.min(100, p.percent)) : null;
      if (percent === null) bar.removeAttribute("value");
      else bar.value = percent;
      status.textContent = `${it.name}: training${p.stage ? ` – ${p.stage}` : ""}${percent === null ? "" : ` (${Math.round(percent)}%)`}`;
    } else if (it.status === "Completed") {
      bar.value = 100;
      status.textContent = `${it.name}: Completed`;
    } else {
      bar.value = 0;
      status.textContent = `${it.name}: ${it.status}`;
    }
  }

  function startPolling(iteration) {
    stopPolling();
    const gen = state.generation;
    state.pollingId = iteration.id;
    $("train-button").disabled = true;
    showTraining(iteration);
    const tick = async () => {
      if (gen !== state.generation || state.pollingId !== iteration.id) return;
      let it;
      try {
        it = await call("GET", `/projects/${pid()}/iterations/${encodeURIComponent(iteration.id)}`);
      } catch (err) {
        if (gen === state.generation) { stopPolling(); showError(err); }
        return;
      }
      if (gen !== state.generation || state.pollingId !== iteration.id) return;
      showTraining(it);
      if (it.status === "Training") {
        state.pollTimer = setTimeout(tick, POLL_MS);
        return;
      }
      stopPolling();
      if (it.status === "Failed") {
        const box = $("train-error");
        box.textContent = `Training failed: ${it.trainingErrorDetails || "no details were given."}`;
        box.hidden = false;
      }
      await loadIterations().catch(showError);
      if (it.status === "Completed") {
        selectIteration(it.id).catch(showError);
        loadSuggested(false).catch(showError);
      }
    };
    state.pollTimer = setTimeout(tick, POLL_MS);
  }

  // ---- iterations, performance, publish

  async function loadIterations() {
    const gen = state.generation;
    const its = await call("GET", `/projects/${pid()}/iterations`);
    if (gen !== state.generation) return;
    its.sort((a, b) => (b.created || "").localeCompare(a.created || ""));
    state.iterations = its;
    $("iterations-body").replaceChildren(...its.map((it) => {
      const selected = state.selectedIteration && state.selectedIteration.id === it.id;
      return h("tr", {
        "data-testid": "iteration-row", "data-iteration-id": it.id, "data-iteration-name": it.name,
        className: selected ? "selected" : "", "aria-current": selected ? "true" : null,
      },
      h("th", { scope: "row", text: it.name }),
      h("td", {}, h("span", { className: `status ${it.status.toLowerCase()}`, "data-testid": "iteration-status", text: it.status })),
      h("td", { "data-testid": "iteration-training-type", text: it.trainingType === "Advanced" ? "Advanced" : "Quick" }),
      h("td", { text: when(it.trainedAt) }),
      h("td", { "data-testid": "iteration-publish-name", text: it.publishName || "–" }),
      h("td", { className: "actions" }, it.status === "Completed"
        ? h("button", {
          type: "button", className: "btn secondary small", "data-testid": "iteration-select",
          "aria-label": `Show performance of ${it.name}`, text: "Performance",
          onclick: () => selectIteration(it.id).catch(showError),
        })
        : null));
    }));
    $("iterations-empty").hidden = its.length > 0;
    if (state.selectedIteration) {
      const fresh = its.find((it) => it.id === state.selectedIteration.id);
      if (fresh) { state.selectedIteration = fresh; updatePublishForm(); }
    }
    renderQuickTestModels();
  }

  async function selectIteration(id) {
    const it = state.iterations.find((x) => x.id === id);
    if (!it) return;
    state.selectedIteration = it;
    document.querySelectorAll("[data-testid=iteration-row]").forEach((row) => {
      const on = row.getAttribute("data-iteration-id") === id;
      row.classList.toggle("selected", on);
      if (on) row.setAttribute("aria-current", "true"); else row.removeAttribute("aria-current");
    });
    $("performance-title").textContent = `Performance of ${it.name}`;
    $("publish-name").value = it.publishName || it.name.replace(/[^A-Za-z0-9_-]+/g, "");
    updatePublishForm();
    $("performance").hidden = false;
    await loadPerformance();
  }

  function updatePublishForm() {
    const it = state.selectedIteration;
    $("unpublish-button").hidden = !(it && it.publishName);
  }

  let thresholdTimer = 0;
  $("threshold").addEventListener("input", () => {
    $("threshold-value").textContent = `${Math.round(Number($("threshold").value) * 100)}%`;
    clearTimeout(thresholdTimer);
    thresholdTimer = setTimeout(() => loadPerformance().catch(showError), 200);
  });

  async function loadPerformance() {
    const it = state.selectedIteration;
    if (!it) return;
    const seq = ++state.perfSeq;
    const threshold = Number($("threshold").value);
    const perf = await call("GET", `/projects/${pid()}/iterations/${encodeURIComponent(it.id)}/performance`, { query: { threshold } });
    if (seq !== state.perfSeq) return; // a newer threshold was asked for meanwhile
    const row = (name, p, overall) => h("tr", {
      "data-testid": overall ? "performance-overall" : "performance-row", "data-tag-name": overall ? null : name,
      className: overall ? "overall" : "",
    },
    h("th", { scope: "row", text: name }),
    h("td", { "data-metric": "precision", text: pct(p.precision) }),
    h("td", { "data-metric": "recall", text: pct(p.recall) }),
    h("td", { "data-metric": "averagePrecision", text: pct(p.averagePrecision) }));
    $("performance-body").replaceChildren(
      row("All tags", perf, true),
      ...(perf.perTagPerformance || []).map((t) => row(t.name, t, false)));
    $("performance").setAttribute("data-threshold", String(threshold));
  }

  $("publish-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const it = state.selectedIteration;
    if (!it) return;
    guarded(e.currentTarget.querySelector("button[type=submit]"), async () => {
      if (!keys.predictionResourceId) {
        throw new ApiError(0, "MissingPredictionResource", "Enter the prediction resource id first (Keys button).");
      }
      const name = $("publish-name").value.trim();
      await call("POST", `/projects/${pid()}/iterations/${encodeURIComponent(it.id)}/publish`, {
        query: { publishName: name, predictionId: keys.predictionResourceId },
      });
      await loadIterations();
      $("quicktest-model").value = name;
      notice(`Published ${it.name} as ${name}.`);
    });
  });

  $("unpublish-button").addEventListener("click", (e) => {
    const it = state.selectedIteration;
    if (!it) return;
    guarded(e.currentTarget, async () => {
      await call("DELETE", `/projects/${pid()}/iterations/${encodeURIComponent(it.id)}/publish`);
      await loadIterations();
      notice(`Unpublished ${it.name}.`);
    });
  });

  // ---- quick test

  function renderQuickTestModels() {
    const select = $("quicktest-model");
    const previous = select.value;
    const published = state.iterations.filter((it) => it.publishName);
    select.replaceChildren(...(published.length
      ? published.map((it) => h("option", { value: it.publishName, text: `${it.publishName} (${it.name})` }))
      : [h("option", { value: "", text: "Nothing published yet" })]));
    if (published.some((it) => it.publishName === previous)) select.value = previous;
    select.disabled = !published.length;
    $("quicktest-file").disabled = !published.length;
    $("quicktest-hint").hidden = published.length > 0;
  }

  let previewUrl = null;
  $("quicktest-file").addEventListener("change", (e) => {
    const input = e.currentTarget;
    const file = input.files && input.files[0];
    const name = $("quicktest-model").value;
    if (!file || !name) return;
    guarded(null, async () => {
      const result = await call("POST", `/${pid()}/classify/iterations/${encodeURIComponent(name)}/image`, {
        prediction: true, body: file, headers: { "Content-Type": "application/octet-stream" },
      });
      if (previewUrl) URL.revokeObjectURL(previewUrl);
      previewUrl = URL.createObjectURL(file);
      $("quicktest-preview").src = previewUrl;
      $("quicktest-preview").alt = `Tested image ${file.name}`;
      const predictions = (result.predictions || []).slice().sort((a, b) => b.probability - a.probability);
      $("predictions").replaceChildren(...predictions.map((p) => {
        const fill = h("span", { className: "bar-fill" });
        fill.style.width = `${Math.max(0, Math.min(1, p.probability)) * 100}%`;
        return h("li", { "data-testid": "prediction-row", "data-tag-name": p.tagName, "data-probability": p.probability },
          h("span", { className: "prediction-name", text: p.tagName }),
          h("span", { className: "bar", "aria-hidden": "true" }, fill),
          h("span", { className: "prediction-value", text: pct(p.probability) }));
      }));
      $("quicktest-result").hidden = false;
      input.value = "";
    });
  });

  // ---- stored predictions: add them to the training set

  function tagSelect(testid, label, selectedId) {
    const select = h("select", { "data-testid": testid, "aria-label": label },
      state.tags.map((t) => h("option", { value: t.id, text: t.name })));
    if (state.tags.some((t) => t.id === selectedId)) select.value = selectedId;
    return select;
  }

  function topOf(predictions) {
    return (predictions || []).reduce((best, p) => (!best || p.probability > best.probability ? p : best), null);
  }

  function setTileStatus(el, status, text) {
    el.textContent = text;
    el.className = `tile-status ${String(status).startsWith("OK") ? "ok" : "bad"}`;
    el.setAttribute("data-status", status);
  }

  function resetFeedbackSections() {
    state.storedContinuation = null;
    state.suggestedContinuation = null;
    state.deletedPredictions.clear();
    state.addedPredictions.clear();
    state.confirmedImages.clear();
    $("stored-grid").replaceChildren();
    $("stored-empty").hidden = true;
    $("stored-more").hidden = true;
    $("suggested-grid").replaceChildren();
    $("suggested-empty").hidden = true;
    $("suggested-more").hidden = true;
    $("untagged-count").textContent = "";
  }

  async function loadStored(append) {
    const gen = state.generation;
    const seq = ++state.storedSeq;
    const token = {
      session: "", continuation: append ? (state.storedContinuation || "") : "", maxCount: PAGE_SIZE,
      orderBy: $("stored-order").value, tags: [], iterationId: null, startTime: null, endTime: null,
      application: "",
    };
    $("stored-grid").setAttribute("data-state", "loading");
    let result;
    try {
      result = await call("POST", `/projects/${pid()}/predictions/query`, {
        body: JSON.stringify(token), headers: { "Content-Type": "application/json" },
      });
    } finally {
      if (seq === state.storedSeq) $("stored-grid").setAttribute("data-state", "ready");
    }
    if (gen !== state.generation || seq !== state.storedSeq) return;
    const tiles = (result.results || []).filter((p) => !state.deletedPredictions.has(p.id)).map(storedTile);
    if (append) $("stored-grid").append(...tiles);
    else $("stored-grid").replaceChildren(...tiles);
    $("stored-grid").setAttribute("data-order", token.orderBy);
    state.storedContinuation = (result.token && result.token.continuation) || null;
    $("stored-more").hidden = !state.storedContinuation;
    $("stored-empty").hidden = $("stored-grid").children.length > 0;
  }

  function storedTile(p) {
    const top = topOf(p.predictions);
    const status = h("p", { className: "tile-status", "data-testid": "stored-status", "aria-live": "polite" });
    const select = tagSelect("stored-tag-select", "Tag for this image", top && top.tagId);
    const li = h("li", {
      className: "tile card-tile", "data-testid": "stored-tile", "data-prediction-id": p.id,
      "data-top-tag": top ? top.tagName : null, "data-probability": top ? top.probability : null,
    });
    const add = h("button", {
      type: "button", className: "btn primary small", "data-testid": "stored-add-button",
      text: "Add to training set", disabled: !state.tags.length,
    });
    add.addEventListener("click", () => guarded(add, async () => {
      if (state.addedPredictions.has(p.id)) return;
      const tagId = select.value;
      if (!tagId) throw new ApiError(0, "NoTag", "Create a tag first.");
      const summary = await call("POST", `/projects/${pid()}/images/predictions`, {
        body: JSON.stringify({ images: [{ id: p.id, tagIds: [tagId] }] }),
        headers: { "Content-Type": "application/json" },
      });
      const entry = (summary.images || [])[0] || { status: summary.isBatchSuccessful ? "OK" : "ErrorUnknown" };
      const tagName = (state.tags.find((t) => t.id === tagId) || {}).name || "";
      const ok = String(entry.status).startsWith("OK");
      const text = ok
        ? `${entry.status}: added as ${tagName}${entry.status === "OKDuplicate" ? " (already in the project)" : ""}`
        : `${entry.status}: ${STATUS_TEXT[entry.status] || "failed"}`;
      setTileStatus(status, entry.status, text);
      if (ok) {
        li.classList.add("done");
        state.addedPredictions.set(p.id, [entry.status, text, tagId]);
      }
      await Promise.all([loadTags(), loadImages()]);
    }).then(() => { add.disabled = state.addedPredictions.has(p.id); }));
    const del = h("button", {
      type: "button", className: "btn secondary small", "data-testid": "stored-delete-button",
      text: "Delete", "aria-label": "Delete this stored prediction",
    });
    del.addEventListener("click", () => guarded(del, async () => {
      await call("DELETE", `/projects/${pid()}/predictions`, { query: { ids: p.id } });
      state.deletedPredictions.add(p.id);
      li.remove();
      $("stored-empty").hidden = $("stored-grid").children.length > 0;
      notice("Deleted the stored prediction.");
    }));
    const added = state.addedPredictions.get(p.id);
    if (added) {
      setTileStatus(status, added[0], added[1]);
      li.classList.add("done");
      if (state.tags.some((t) => t.id === added[2])) select.value = added[2];
      add.disabled = true;
    }
    li.append(
      h("a", { href: p.originalImageUri || p.thumbnailUri || "#", target: "_blank", rel: "noopener" },
        h("img", {
          src: p.thumbnailUri || p.originalImageUri || "", loading: "lazy", width: 120, height: 120,
          alt: top ? `Predicted ${top.tagName}` : "Predicted image",
        })),
      h("div", { className: "tile-top", "data-testid": "stored-top-tag" },
        top ? `${top.tagName} ` : "no prediction ", top ? h("span", { className: "prob", text: pct(top.probability) }) : null),
      h("span", { className: "tile-caption", text: when(p.created) }),
      h("div", { className: "tile-actions" }, select, add, del),
      status);
    return li;
  }

  $("stored-order").addEventListener("change", () => guarded(null, () => loadStored(false)));
  $("stored-refresh").addEventListener("click", (e) => guarded(e.currentTarget, () => loadStored(false)));
  $("stored-more").addEventListener("click", (e) => guarded(e.currentTarget, () => loadStored(true)));

  // ---- suggested tags (Smart Labeler) for untagged images

  function latestTrained() {
    return state.iterations.find((it) => it.status === "Completed") || null;
  }

  async function loadSuggested(append) {
    const gen = state.generation;
    const seq = ++state.suggestedSeq;
    const it = latestTrained();
    const hint = $("suggested-hint");
    if (!it || !state.tags.length) {
      $("suggested-grid").replaceChildren();
      $("suggested-more").hidden = true;
      $("suggested-empty").hidden = true;
      hint.textContent = "Train an iteration to get tag suggestions for untagged images.";
      $("suggested-refresh").disabled = true;
      return;
    }
    $("suggested-refresh").disabled = false;
    let threshold = Number($("suggested-threshold").value);
    if (!Number.isFinite(threshold)) threshold = 0.5;
    threshold = Math.max(0, Math.min(1, threshold));
    const token = {
      tagIds: state.tags.map((t) => t.id), threshold, session: "",
      continuation: append ? (state.suggestedContinuation || "") : "",
      maxCount: PAGE_SIZE, sortBy: $("suggested-sort").value,
    };
    $("suggested-grid").setAttribute("data-state", "loading");
    let result;
    try {
      result = await call("POST", `/projects/${pid()}/images/suggested`, {
        query: { iterationId: it.id }, body: JSON.stringify(token), headers: { "Content-Type": "application/json" },
      });
    } finally {
      if (seq === state.suggestedSeq) $("suggested-grid").setAttribute("data-state", "ready");
    }
    if (gen !== state.generation || seq !== state.suggestedSeq) return;
    hint.textContent = `Untagged images with the tags that ${it.name} suggests: confirm a suggestion to tag the image.`;
    const tiles = (result.results || []).filter((img) => !state.confirmedImages.has(img.id)).map(suggestedTile);
    if (append) $("suggested-grid").append(...tiles);
    else $("suggested-grid").replaceChildren(...tiles);
    state.suggestedContinuation = (result.token && result.token.continuation) || null;
    $("suggested-more").hidden = !state.suggestedContinuation;
    $("suggested-empty").hidden = $("suggested-grid").children.length > 0;
  }

  function suggestedTile(img) {
    const top = topOf(img.predictions);
    const status = h("p", { className: "tile-status", "data-testid": "suggested-status", "aria-live": "polite" });
    const select = tagSelect("suggested-tag-select", "Tag to apply", top && top.tagId);
    const li = h("li", {
      className: "tile card-tile", "data-testid": "suggested-tile", "data-image-id": img.id,
      "data-suggested-tag": top ? top.tagName : null, "data-probability": top ? top.probability : null,
    });
    const confirm = h("button", {
      type: "button", className: "btn primary small", "data-testid": "suggested-confirm-button", text: "Confirm",
    });
    confirm.addEventListener("click", () => guarded(confirm, async () => {
      const tagId = select.value;
      if (!tagId) throw new ApiError(0, "NoTag", "Create a tag first.");
      await call("POST", `/projects/${pid()}/images/tags`, {
        body: JSON.stringify({ tags: [{ imageId: img.id, tagId }] }),
        headers: { "Content-Type": "application/json" },
      });
      const tagName = (state.tags.find((t) => t.id === tagId) || {}).name || "";
      state.confirmedImages.add(img.id);
      li.remove();
      $("suggested-empty").hidden = $("suggested-grid").children.length > 0;
      notice(`Tagged the image as ${tagName}.`);
      await Promise.all([loadTags(), loadImages()]);
    }));
    li.append(
      h("a", { href: img.originalImageUri || img.thumbnailUri || "#", target: "_blank", rel: "noopener" },
        h("img", {
          src: img.thumbnailUri || img.originalImageUri || "", loading: "lazy", width: 120, height: 120,
          alt: top ? `Untagged image, suggested ${top.tagName}` : "Untagged image",
        })),
      h("div", { className: "tile-top", "data-testid": "suggested-tag" },
        top ? `${top.tagName} ` : "no suggestion ", top ? h("span", { className: "prob", text: pct(top.probability) }) : null),
      h("div", { className: "tile-actions" }, select, confirm),
      status);
    return li;
  }

  $("suggested-refresh").addEventListener("click", (e) => guarded(e.currentTarget, () => loadSuggested(false)));
  $("suggested-more").addEventListener("click", (e) => guarded(e.currentTarget, () => loadSuggested(true)));
  $("suggested-sort").addEventListener("change", () => guarded(null, () => loadSuggested(false)));
  $("suggested-threshold").addEventListener("change", () => guarded(null, () => loadSuggested(false)));

  // ---- delete project

  $("delete-project-button").addEventListener("click", () => {
    $("delete-project-button").hidden = true;
    $("delete-project-confirm").hidden = false;
    $("delete-project-confirm-button").focus();
  });
  $("delete-project-cancel").addEventListener("click", () => {
    $("delete-project-confirm").hidden = true;
    $("delete-project-button").hidden = false;
    $("delete-project-button").focus();
  });
  $("delete-project-confirm-button").addEventListener("click", (e) => guarded(e.currentTarget, async () => {
    const project = state.project;
    await call("DELETE", `/projects/${pid()}`);
    notice(`Deleted project ${project.name}.`);
    location.hash = "#/";
  }));

  // ---------------------------------------------------------------- wiring

  $("error-alert").querySelector("[data-testid=error-dismiss]").addEventListener("click", clearError);
  $("keys-button").addEventListener("click", openKeys);
  $("keys-cancel").addEventListener("click", () => $("keys-dialog").close());
  $("keys-form").addEventListener("submit", () => {
    // method="dialog": the dialog closes itself after this handler
    keys = {
      trainingKey: $("training-key").value.trim(),
      predictionKey: $("prediction-key").value.trim(),
      predictionResourceId: $("prediction-resource-id").value.trim(),
    };
    localStorage.setItem(KEYS_STORAGE, JSON.stringify(keys));
    notice("Keys saved in this browser.");
    setTimeout(route, 0);
  });
  window.addEventListener("hashchange", route);
  route();
})();
