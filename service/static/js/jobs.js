// The jobs list: one row per job, newest first, polled while a job is queued or running.
import { api } from "./api.js";
import { $, announce, element } from "./dom.js";
import { formatLength, formatTime } from "./format.js";
import { clearResult, selectedJobId, showResult } from "./map.js";

const TERMINAL = new Set(["successful", "failed", "dismissed"]);
const POLL_MS = 1000;
export const jobs = new Map(); // jobID -> { job, row, parts }
let nextJobsPage = null;

export function jobName(job) {
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

export function renderJob(entry) {
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

export function upsertJob(job) {
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

export function showJobsError(text) {
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

export async function loadJobs(url = "jobs") {
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
export async function poll() {
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
