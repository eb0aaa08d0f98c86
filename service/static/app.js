// The roadnet web page: upload a GeoTIFF, follow its job, see and download the roads.
// It uses only the HTTP API (the same one documented at /docs) and Leaflet, served by the service.
"use strict";

(() => {
  const KEY_STORAGE = "roadnet.apiKey";
  const BASEMAP_STORAGE = "roadnet.basemap";
  const TERMINAL = new Set(["successful", "failed", "dismissed"]);
  const POLL_MS = 1000;
  const NARROW = "(max-width: 700px)"; // app.css: one column, the map below the jobs

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- API access

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function apiKey() {
    return localStorage.getItem(KEY_STORAGE) || "";
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { "X-API-Key": key } : {};
  }

  /** The readable message of an API error body: FastAPI's `detail` (a string, or a validation list). */
  function errorMessage(status, bodyText) {
    let detail;
    try {
      detail = JSON.parse(bodyText).detail;
    } catch {
      detail = undefined;
    }
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => {
          const where = (item.loc || []).filter((part) => part !== "body").join(".");
          return where ? `${where}: ${item.msg}` : item.msg;
        })
        .join("; ");
    }
    if (status === 0) return "The service cannot be reached; check that it is running.";
    if (status === 413) return "The file is larger than this service accepts.";
    return `The service answered HTTP ${status}.`;
  }

  /**
   * One API request with the key; a 401 asks for a key and tries again.
   * `as` is "json" (null for 204), "blob", or "none".
   */
  async function api(url, { method = "GET", as = "json" } = {}) {
    for (;;) {
      let response;
      try {
        response = await fetch(url, { method, headers: authHeaders() });
      } catch {
        throw new ApiError(0, errorMessage(0, ""));
      }
      if (response.ok) {
        if (as === "blob") return response.blob();
        if (as === "json" && response.status !== 204) return response.json();
        return null;
      }
      const message = errorMessage(response.status, await response.text());
      if (response.status === 401 && (await askForKey(message))) continue;
      throw new ApiError(response.status, message);
    }
  }

  // ---------------------------------------------------------------- API key dialog

  let pendingKeyRequest = null; // one dialog for all requests refused at the same time

  /** Shows the key dialog; resolves true when a key was saved, false when the user cancelled. */
  function askForKey(reason) {
    if (pendingKeyRequest) return pendingKeyRequest;
    const dialog = $("key-dialog");
    $("key-reason").textContent = apiKey()
      ? `The service refused the stored key: ${reason}`
      : "This service needs an API key.";
    $("key-input").value = "";
    pendingKeyRequest = new Promise((resolve) => {
      const finish = (saved) => {
        dialog.removeEventListener("close", onClose);
        pendingKeyRequest = null;
        resolve(saved);
      };
      const onClose = () => {
        const key = dialog.returnValue === "save" ? $("key-input").value.trim() : "";
        if (key) {
          localStorage.setItem(KEY_STORAGE, key);
          $("key-button").hidden = false;
        }
        finish(Boolean(key));
      };
      dialog.addEventListener("close", onClose);
      dialog.showModal();
    });
    return pendingKeyRequest;
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("key-dialog").close("save");
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close("cancel"));
  $("key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("key-button").hidden = true;
    $("key-dialog").close("cancel");
  });
  $("key-button").addEventListener("click", () => askForKey("").then((saved) => saved && loadJobs()));
  $("key-button").hidden = !apiKey();

  // ---------------------------------------------------------------- formatting

  function formatBytes(bytes) {
    const units = ["B", "kB", "MB", "GB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
  }

  function formatLength(metres) {
    return metres >= 1000 ? `${(metres / 1000).toFixed(2)} km` : `${Math.round(metres)} m`;
  }

  function formatTime(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString(undefined, {
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // ---------------------------------------------------------------- upload

  /** The upload's form: the file, and the options the user set (the API's defaults apply to the rest). */
  function uploadForm(file) {
    const form = new FormData();
    form.append("file", file);
    for (const input of $("options-fields").querySelectorAll("input")) {
      if (input.type === "checkbox" ? input.checked : input.value !== "") form.append(input.name, input.value);
    }
    return form;
  }

  /** The Options panel, built from the process description so it offers exactly what the API accepts. */
  async function loadOptions() {
    let process;
    try {
      process = await api("processes/road-extraction");
    } catch {
      return; // the panel stays hidden; uploads take the defaults
    }
    const fields = $("options-fields");
    for (const [name, input] of Object.entries(process.inputs || {})) {
      const schemas = input.schema.anyOf || [input.schema];
      const schema = schemas.find((item) => item.type && item.type !== "null") || {};
      if (!["integer", "number", "boolean"].includes(schema.type)) continue; // the file has its own control
      const field = element("input");
      field.name = name;
      if (schema.type === "boolean") {
        field.type = "checkbox";
        field.value = "true";
      } else {
        field.type = "number";
        field.step = schema.type === "integer" ? "1" : "any";
        field.placeholder = "default";
        const min = schema.minimum ?? schema.exclusiveMinimum;
        const max = schema.maximum ?? schema.exclusiveMaximum;
        if (min !== undefined) field.min = min;
        if (max !== undefined) field.max = max;
      }
      // Lengths in metres are named *_m; their generated titles end in " M": say the unit instead.
      const title = name.endsWith("_m") ? `${(input.title || name).replace(/ M$/, "")} (m)` : input.title || name;
      const label = element("label", "option");
      label.append(element("span", "", title), field, element("small", "hint", input.description || ""));
      fields.append(label);
    }
    $("options").hidden = fields.children.length === 0;
  }

  /** POST /jobs with XMLHttpRequest, whose upload events give the progress fetch cannot. */
  function send(file, onProgress) {
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "jobs");
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
      xhr.onload = () => resolve({ status: xhr.status, body: xhr.responseText });
      xhr.onerror = () => resolve({ status: 0, body: "" });
      xhr.send(uploadForm(file));
    });
  }

  async function upload(file) {
    const row = element("li", "upload");
    const name = element("span", "name", file.name);
    const size = element("span", "size", formatBytes(file.size));
    const bar = element("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Upload of ${file.name}`);
    const message = element("p", "message", "Uploading…");
    row.append(name, size, bar, message);
    $("uploads").prepend(row);

    for (;;) {
      const answer = await send(file, (fraction) => {
        bar.value = fraction;
        message.textContent = fraction < 1 ? `Uploading… ${Math.round(fraction * 100)} %` : "Checking the scene…";
      });
      if (answer.status === 201) {
        const job = JSON.parse(answer.body);
        upsertJob(job);
        row.remove();
        return;
      }
      const text = errorMessage(answer.status, answer.body);
      if (answer.status === 401 && (await askForKey(text))) {
        bar.value = 0;
        continue;
      }
      row.classList.add("failed");
      bar.remove();
      message.textContent = text;
      message.setAttribute("role", "alert");
      const dismiss = element("button", "link", "Dismiss");
      dismiss.type = "button";
      dismiss.addEventListener("click", () => row.remove());
      row.append(dismiss);
      return;
    }
  }

  async function uploadAll(files) {
    for (const file of files) await upload(file); // one at a time: uploads share the network link
  }

  const dropZone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => {
    uploadAll([...event.target.files]);
    event.target.value = ""; // choosing the same file again is a new upload
  });
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("dragging");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("dragging");
    uploadAll([...event.dataTransfer.files]);
  });

  // ---------------------------------------------------------------- jobs list

  const jobs = new Map(); // jobID -> { job, row, parts }
  let nextJobsPage = null;

  function jobName(job) {
    return job.filename || `job ${job.jobID.slice(0, 8)}`;
  }

  /** What a job's row says under its status: the road count and length once it has succeeded. */
  function jobMessage(job) {
    const summary = job.summary || {};
    if (job.status === "successful" && summary.segments !== undefined) {
      const length = summary.total_length_m ? `, ${formatLength(summary.total_length_m)}` : "";
      return `${summary.segments} roads${length}; click to view`;
    }
    return job.message || "";
  }

  /**
   * A job's row: a button that opens its result (its state: aria-disabled until the job has succeeded,
   * aria-current while shown), then Cancel or Delete beside it, never inside it.
   */
  function jobRow(job) {
    const row = element("li", "job");
    row.dataset.jobId = job.jobID;
    const parts = {
      open: element("button", "open"),
      name: element("span", "name"),
      status: element("span", "status"),
      time: element("span", "time"),
      bar: element("progress"),
      message: element("p", "message"),
      action: element("button", "secondary small"),
    };
    parts.status.id = `status-${job.jobID}`;
    parts.message.id = `message-${job.jobID}`;
    parts.open.type = "button";
    parts.open.append(parts.name);
    parts.open.setAttribute("aria-describedby", `${parts.status.id} ${parts.message.id}`);
    parts.bar.max = 100;
    parts.action.type = "button";
    parts.action.addEventListener("click", () => removeJob(job.jobID));
    parts.open.addEventListener("click", () => {
      const entry = jobs.get(job.jobID);
      if (entry && entry.job.status === "successful") showResult(entry.job);
    });
    const head = element("div", "head");
    head.append(parts.open, parts.action);
    const meta = element("div", "meta");
    meta.append(parts.status, parts.time);
    row.append(head, meta, parts.bar, parts.message);
    return { row, parts };
  }

  function renderJob(entry) {
    const { job, row, parts } = entry;
    const active = !TERMINAL.has(job.status);
    const selected = job.jobID === selectedJobId;
    row.dataset.status = job.status;
    row.classList.toggle("selectable", job.status === "successful");
    row.classList.toggle("selected", selected);
    parts.open.setAttribute("aria-disabled", String(job.status !== "successful"));
    if (selected) parts.open.setAttribute("aria-current", "true");
    else parts.open.removeAttribute("aria-current");
    parts.open.title = job.status === "successful" ? "Show this job's result on the map" : job.jobID;
    parts.name.textContent = jobName(job);
    parts.status.textContent = job.status === "running" ? `running ${Math.round(job.progress ?? 0)} %` : job.status;
    parts.time.textContent = formatTime(job.created);
    parts.bar.hidden = !active;
    parts.bar.setAttribute("aria-label", `Progress of ${jobName(job)}`);
    parts.bar.value = job.progress ?? 0;
    if (job.status === "accepted" && !job.progress) parts.bar.removeAttribute("value"); // indeterminate
    parts.message.textContent = jobMessage(job);
    parts.action.textContent = active ? "Cancel" : "Delete";
    parts.action.setAttribute("aria-label", `${active ? "Cancel" : "Delete"} ${jobName(job)}`);
    parts.action.title = active ? "Stop this job and delete its files" : "Delete this job and its results";
  }

  /** Says `text` to screen readers (a polite live region). */
  function announce(text) {
    $("announcer").textContent = text;
  }

  function byNewest(a, b) {
    return (b.job.created || "").localeCompare(a.job.created || "");
  }

  function placeRows() {
    const list = $("jobs");
    const ordered = [...jobs.values()].sort(byNewest);
    ordered.forEach((entry, index) => {
      if (list.children[index] !== entry.row) list.insertBefore(entry.row, list.children[index] || null);
    });
    $("jobs-empty").hidden = jobs.size > 0;
  }

  function upsertJob(job) {
    // Dismissed jobs were cancelled or deleted by their owner: their files are gone, so they leave the list.
    if (job.status === "dismissed") {
      dropJob(job.jobID);
      return;
    }
    let entry = jobs.get(job.jobID);
    if (!entry) {
      entry = { job, ...jobRow(job) };
      jobs.set(job.jobID, entry);
    } else if (entry.job.status !== job.status) {
      announce(`${jobName(job)}: ${job.status}. ${jobMessage(job)}`);
    }
    entry.job = job;
    renderJob(entry);
    placeRows();
  }

  function dropJob(jobId) {
    const entry = jobs.get(jobId);
    if (!entry) return;
    entry.row.remove();
    jobs.delete(jobId);
    if (jobId === selectedJobId) clearResult();
    placeRows();
  }

  /** DELETE /jobs/{id}: cancels a queued or running job, deletes a finished one. */
  async function removeJob(jobId) {
    const entry = jobs.get(jobId);
    const active = entry && !TERMINAL.has(entry.job.status);
    if (!active && !window.confirm(`Delete ${jobName(entry.job)} and its results?`)) return;
    try {
      await api(`jobs/${jobId}`, { method: "DELETE", as: "none" });
      dropJob(jobId);
    } catch (error) {
      if (error.status === 404) dropJob(jobId);
      else showJobsError(error.message);
    }
  }

  function showJobsError(text) {
    $("jobs-error").textContent = text;
    $("jobs-error").hidden = !text;
  }

  /** The jobs of a GET /jobs page: a bare list, or OGC API - Processes' {"jobs": [...], "links": [...]}. */
  function pageJobs(page) {
    return Array.isArray(page) ? page : page.jobs || [];
  }

  function nextLink(page) {
    const link = (Array.isArray(page) ? [] : page.links || []).find((item) => item.rel === "next");
    return link ? link.href : null;
  }

  async function loadJobs(url = "jobs") {
    try {
      const page = await api(url);
      pageJobs(page).forEach(upsertJob);
      nextJobsPage = nextLink(page);
      $("jobs-more").hidden = !nextJobsPage;
      showJobsError("");
    } catch (error) {
      showJobsError(error.message);
    }
  }

  $("jobs-more").addEventListener("click", () => nextJobsPage && loadJobs(nextJobsPage));

  /** Polls the status document of every job still queued or running. */
  async function poll() {
    const active = [...jobs.values()].filter((entry) => !TERMINAL.has(entry.job.status));
    await Promise.all(
      active.map(async ({ job }) => {
        try {
          upsertJob(await api(`jobs/${job.jobID}`));
          showJobsError("");
        } catch (error) {
          if (error.status === 404) dropJob(job.jobID);
          else showJobsError(error.message); // e.g. the service restarts: keep polling, say why it stalls
        }
      }),
    );
    window.setTimeout(poll, POLL_MS);
  }

  // ---------------------------------------------------------------- result map

  // zoomSnap 0.25: a scene fills the map more tightly than whole zoom levels allow.
  const map = L.map("map", { zoomSnap: 0.25, maxZoom: 22 }).setView([20, 0], 2);
  const basemap = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    zIndex: 0,
    attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
  });
  // The job's tile layers, bottom to top; the road lines lie above them all (Leaflet's overlay pane).
  const TILE_LAYERS = ["scene", "probability", "mask"];
  // Roads coloured by confidence (the mean probability along them), ColorBrewer RdYlBu: red, yellow, blue
  // tell low from high for colour-blind eyes too.
  const CONFIDENCE_STOPS = [
    [0, [215, 48, 39]],
    [0.5, [254, 224, 144]],
    [1, [69, 117, 180]],
  ];
  const ROAD_COLOUR = "#ff2d95"; // a road with no confidence (a job finished before roads had one)
  const roadStyle = { weight: 3, opacity: 0.95 };
  // SVG (one element per road) up to this many roads; a city-sized network draws on one canvas instead,
  // which stays smooth to pan with tens of thousands of lines (clicks still find the road).
  const MAX_SVG_ROADS = 3000;
  const roadHighlight = { color: "#ffffff", weight: 6 };
  let selectedJobId = null;
  let result = null; // the selected job's layers and download URLs

  /** The colour of confidence `value` (0-1) on CONFIDENCE_STOPS. */
  function confidenceColour(value) {
    if (typeof value !== "number") return ROAD_COLOUR;
    const v = Math.min(1, Math.max(0, value));
    const upper = CONFIDENCE_STOPS.findIndex(([stop]) => stop >= v);
    if (upper <= 0) return `rgb(${CONFIDENCE_STOPS[0][1].join(",")})`;
    const [[a, low], [b, high]] = [CONFIDENCE_STOPS[upper - 1], CONFIDENCE_STOPS[upper]];
    const t = (v - a) / (b - a);
    return `rgb(${low.map((c, i) => Math.round(c + (high[i] - c) * t)).join(",")})`;
  }

  const legend = L.control({ position: "bottomright" });
  legend.onAdd = () => {
    const box = element("div", "legend");
    const gradient = CONFIDENCE_STOPS.map(([stop, rgb]) => `rgb(${rgb.join(",")}) ${stop * 100}%`).join(", ");
    const bar = element("span", "ramp");
    bar.style.background = `linear-gradient(to right, ${gradient})`;
    box.append(element("strong", "", "Road confidence"), element("span", "", "0"), bar, element("span", "", "1"));
    return box;
  };

  /** A tile layer whose tiles are fetched with the API key (an <img> cannot send the header). */
  const KeyedTileLayer = L.TileLayer.extend({
    createTile(coords, done) {
      const tile = document.createElement("img");
      tile.alt = "";
      fetch(this.getTileUrl(coords), { headers: authHeaders() })
        .then((response) => {
          if (!response.ok) throw new Error(`tile ${coords.z}/${coords.x}/${coords.y}: HTTP ${response.status}`);
          return response.blob();
        })
        .then((blob) => {
          tile.onload = () => {
            URL.revokeObjectURL(tile.src);
            done(null, tile);
          };
          tile.onerror = () => done(new Error("the tile is not an image"), tile);
          tile.src = URL.createObjectURL(blob);
        })
        .catch((error) => done(error, tile));
      return tile;
    },
  });

  /** The tile layer of `layer` of a job from its TileJSON: only within its bounds, scaled past its maxzoom. */
  function jobTiles(jobId, layer, tilejson, zIndex) {
    return new KeyedTileLayer(`jobs/${jobId}/tiles/${layer}/{z}/{x}/{y}.png`, {
      bounds: bboxBounds(tilejson.bounds),
      maxNativeZoom: tilejson.maxzoom,
      maxZoom: 22,
      zIndex,
      className: `tiles-${layer}`,
    });
  }

  function showBasemapStatus(text) {
    $("basemap-status").textContent = text;
    $("basemap-status").hidden = !text;
    if (text) announce(text);
  }

  $("basemap-toggle").checked = localStorage.getItem(BASEMAP_STORAGE) === "on";
  function applyBasemap() {
    const on = $("basemap-toggle").checked;
    localStorage.setItem(BASEMAP_STORAGE, on ? "on" : "off");
    showBasemapStatus("");
    if (on) basemap.addTo(map).bringToBack();
    else basemap.remove();
  }
  basemap.on("tileerror", () => {
    if (!$("basemap-status").textContent) {
      showBasemapStatus("The basemap cannot load: this computer has no internet, or OpenStreetMap cannot be reached.");
    }
  });
  basemap.on("tileload", () => showBasemapStatus(""));
  $("basemap-toggle").addEventListener("change", applyBasemap);
  applyBasemap();

  /** Leaflet bounds from an RFC 7946 bbox: [west, south, east, north] or its 3-D form. */
  function bboxBounds(bbox) {
    if (!Array.isArray(bbox) || (bbox.length !== 4 && bbox.length !== 6)) return null;
    const half = bbox.length / 2;
    return L.latLngBounds([bbox[1], bbox[0]], [bbox[half + 1], bbox[half]]);
  }

  function resultLayers() {
    return result ? [...Object.values(result.tiles), result.roads].filter(Boolean) : [];
  }

  function clearResult() {
    resultLayers().forEach((layer) => layer.remove());
    legend.remove();
    result = null;
    selectedJobId = null;
    history.replaceState(null, "", location.pathname + location.search);
    $("result-title").textContent = "No job selected";
    $("result-summary").textContent = "";
    $("layers").disabled = true;
    $("download-roads").disabled = true;
    $("download-mask").disabled = true;
    $("map-placeholder").hidden = false;
    jobs.forEach(renderJob);
  }

  function roadPopup(feature) {
    const props = feature.properties || {};
    const box = element("div", "road-popup");
    box.append(element("strong", "", `Road: ${formatLength(Number(props.length_m) || 0)}`));
    const table = element("table");
    for (const [key, value] of Object.entries(props)) {
      if (key === "length_m" || value === null || typeof value === "object") continue;
      const shown = key === "confidence" ? `${Math.round(value * 100)} %` : String(value);
      const tr = element("tr");
      tr.append(element("th", "", key), element("td", "", shown));
      table.append(tr);
    }
    if (table.children.length) box.append(table);
    return box;
  }

  /** The TileJSON of each tile layer of a job; null for one it lacks (a job finished before map tiles). */
  async function loadTileJsons(jobId) {
    const documents = await Promise.all(
      TILE_LAYERS.map((layer) =>
        api(`jobs/${jobId}/tiles/${layer}/tilejson.json`).catch((error) =>
          error.status === 404 ? null : Promise.reject(error),
        ),
      ),
    );
    return Object.fromEntries(TILE_LAYERS.map((layer, i) => [layer, documents[i]]));
  }

  async function showResult(job) {
    clearResult();
    selectedJobId = job.jobID;
    history.replaceState(null, "", `#job=${job.jobID}`); // a reload (or a bookmark) comes back to it
    jobs.forEach(renderJob);
    $("result-title").textContent = jobName(job);
    $("result-title").title = jobName(job);
    $("result-summary").textContent = "loading…";
    $("result-error").hidden = true;
    const base = `jobs/${job.jobID}/results`;
    try {
      const [roads, tilejsons] = await Promise.all([api(`${base}/roads`), loadTileJsons(job.jobID)]);
      if (selectedJobId !== job.jobID) return; // the user chose another job meanwhile
      const count = (roads.features || []).length;
      const style = (feature) => ({ ...roadStyle, color: confidenceColour(feature.properties?.confidence) });
      const roadsLayer = L.geoJSON(roads, {
        renderer: count > MAX_SVG_ROADS ? L.canvas({ tolerance: 4 }) : undefined,
        style,
        onEachFeature: (feature, layer) => {
          layer.bindPopup(() => roadPopup(feature));
          layer.on("mouseover", () => layer.setStyle(roadHighlight));
          layer.on("mouseout", () => layer.setStyle(style(feature)));
        },
      });
      // The map frames the scene's lon/lat bounds: its TileJSON's, the status document's bbox, else the
      // GeoJSON's; the roads' own extent is the last resort (it can be smaller than the scene).
      const bounds =
        bboxBounds(tilejsons.scene?.bounds) ||
        bboxBounds(job.bbox) ||
        bboxBounds(job.scene?.bbox) ||
        bboxBounds(roads.bbox) ||
        roadsLayer.getBounds();
      if (!bounds.isValid()) throw new ApiError(0, "The result carries no bounds and no roads to place on the map.");
      const tiles = {};
      TILE_LAYERS.forEach((layer, i) => {
        const tilejson = tilejsons[layer];
        tiles[layer] = tilejson ? jobTiles(job.jobID, layer, tilejson, i + 1) : null;
        $(`layer-${layer}`).disabled = !tilejson;
      });
      result = { roads: roadsLayer, tiles, downloads: { roads: `${base}/roads`, mask: `${base}/mask` } };
      const total = (roads.features || []).reduce((sum, f) => sum + (Number(f.properties?.length_m) || 0), 0);
      $("result-summary").textContent = `${count} roads, ${formatLength(total)}`;
      $("layers").disabled = false;
      $("download-roads").disabled = false;
      $("download-mask").disabled = false;
      $("map-placeholder").hidden = true;
      applyLayers();
      map.fitBounds(bounds, { padding: [16, 16] });
      if (window.matchMedia(NARROW).matches) $("result-title").scrollIntoView(); // the map is below the jobs
    } catch (error) {
      if (selectedJobId !== job.jobID) return;
      $("result-summary").textContent = "";
      $("result-error").textContent = `The result cannot be shown: ${error.message}`;
      $("result-error").hidden = false;
    }
  }

  /** Shows the layers whose boxes are checked, the mask and probability at the slider's opacity. */
  function applyLayers() {
    if (!result) return;
    const opacity = Number($("overlay-opacity").value) / 100;
    for (const [name, layer] of Object.entries(result.tiles)) {
      if (!layer) continue;
      if (name !== "scene") layer.setOpacity(opacity);
      if ($(`layer-${name}`).checked) layer.addTo(map);
      else layer.remove();
    }
    if ($("layer-roads").checked) {
      result.roads.addTo(map);
      legend.addTo(map);
    } else {
      map.closePopup();
      result.roads.remove();
      legend.remove();
    }
  }
  $("layers").addEventListener("input", applyLayers);

  /** Downloads through fetch, so the API key travels as a header, then saves the blob under a good name. */
  async function download(what, filename) {
    if (!result) return;
    const button = $(`download-${what}`);
    button.disabled = true;
    try {
      const blob = await api(result.downloads[what], { as: "blob" });
      const url = URL.createObjectURL(blob);
      const link = element("a");
      link.href = url;
      link.download = filename;
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      $("result-error").textContent = `Download failed: ${error.message}`;
      $("result-error").hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  function downloadName(suffix) {
    const entry = jobs.get(selectedJobId);
    const stem = entry ? jobName(entry.job).replace(/\.[^.]*$/, "") : selectedJobId;
    return `${stem}${suffix}`;
  }

  $("download-roads").addEventListener("click", () => download("roads", downloadName("-roads.geojson")));
  $("download-mask").addEventListener("click", () => download("mask", downloadName("-mask.tif")));

  // ---------------------------------------------------------------- start

  /** The job named in the address (#job=ID), shown once the list is loaded. */
  async function showJobFromAddress() {
    const jobId = new URLSearchParams(location.hash.slice(1)).get("job");
    if (!jobId) return;
    try {
      const job = await api(`jobs/${encodeURIComponent(jobId)}`);
      upsertJob(job);
      if (job.status === "successful") showResult(job);
    } catch (error) {
      showJobsError(`The job in the address cannot be shown: ${error.message}`);
    }
  }

  loadJobs().then(showJobFromAddress).then(poll);
  loadOptions();
})();
