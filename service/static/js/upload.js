// Upload: the Options panel, the drop zone, one upload at a time with its progress or its refusal.
import { api, errorMessage } from "./api.js";
import { $, element } from "./dom.js";
import { formatBytes } from "./format.js";
import { upsertJob } from "./jobs.js";
import { askForKey, authHeaders } from "./key.js";

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
export async function loadOptions() {
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
