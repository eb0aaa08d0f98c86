// API access: every request goes through `api`, with the key; errors carry the service's reason.
import { askForKey, authHeaders } from "./key.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The readable message of an API error body: FastAPI's `detail` (a string, or a validation list). */
export function errorMessage(status, bodyText) {
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
export async function api(url, { method = "GET", as = "json" } = {}) {
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
