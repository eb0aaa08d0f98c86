// The result map: a finished job's tile layers and roads, the layer controls and the downloads.
import { ApiError, api } from "./api.js";
import { $, announce, element } from "./dom.js";
import { formatLength } from "./format.js";
import { jobName, jobs, renderJob } from "./jobs.js";
import { authHeaders } from "./key.js";

const BASEMAP_STORAGE = "roadnet.basemap";
const NARROW = "(max-width: 700px)"; // app.css: one column, the map below the jobs

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
export let selectedJobId = null;
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

export function clearResult() {
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

export async function showResult(job) {
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
