// The roadnet web page: upload a GeoTIFF, follow its job, see and download the roads.
// It uses only the HTTP API (the same one documented at /docs) and Leaflet, served by the service.
// The entry module (no build step): each part of the page is a module in js/ (README.md).
import { api } from "./js/api.js";
import { loadJobs, poll, showJobsError, upsertJob } from "./js/jobs.js";
import { showResult } from "./js/map.js";
import { loadOptions } from "./js/upload.js";

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
