// The API key: kept in this browser, sent with every request; a dialog asks for it when the service
// answers 401.
import { $ } from "./dom.js";
import { loadJobs } from "./jobs.js";

const KEY_STORAGE = "roadnet.apiKey";

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function authHeaders() {
  const key = apiKey();
  return key ? { "X-API-Key": key } : {};
}

let pendingKeyRequest = null; // one dialog for all requests refused at the same time

/** Shows the key dialog; resolves true when a key was saved, false when the user cancelled. */
export function askForKey(reason) {
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
