"""The HTML page of one job: its status and plots, redrawn as the job's events arrive.

A browser cannot send an `Authorization` header with a plain `<img>` or `EventSource`, so the page
holds no data itself: it asks for the API key once, keeps it in the tab's sessionStorage (gone
when the tab closes; never in a cookie or the URL), and fetches everything with the header: the
job, each plot (shown from a blob: URL) and the event stream `GET /v1/jobs/{id}/events`, read
with fetch. An `epoch` event redraws the plots (at most one redraw in flight); a `status` event
re-reads the job. Without the event stream the page polls every 2 s.

Its Content-Security-Policy (`headers(page)`) lets the page run only its own script and style
(by their hashes), talk only to this origin, show images only from blob: URLs, and never be
framed.
"""

import base64
import hashlib
import re
from string import Template

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dendrite job</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
  header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
  #status { font-weight: 600; }
  #error { color: #b00020; white-space: pre-wrap; }
  #plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 1rem; }
  figure { margin: 0; border: 1px solid #ddd; padding: .5rem; border-radius: 4px; }
  figure img { max-width: 100%; }
  figcaption { font-size: .9rem; color: #555; }
  form[hidden] { display: none; }
</style>
</head>
<body>
<header>
  <h1>dendrite job <code id="job-id"></code></h1>
  <span id="status">loading…</span>
  <span id="progress"></span>
</header>
<form id="key-form" hidden>
  <label>API key (kept in this tab only) <input id="key" type="password" autocomplete="off"
    size="40"></label>
  <button type="submit">Show the job</button>
</form>
<p id="error"></p>
<div id="plots"></div>
<script>
"use strict";
const jobId = $job_id;
const base = "/v1/jobs/" + encodeURIComponent(jobId);
const KEY = "dendrite-api-key";
const FINAL = ["succeeded", "failed", "cancelled"];
const el = (id) => document.getElementById(id);
el("job-id").textContent = jobId;
let job = null, drawing = false, again = false, lastEventId = null;

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers["Authorization"] = "Bearer " + key;
  const response = await fetch(path, Object.assign({}, options, {headers}));
  if (response.status === 401) {
    sessionStorage.removeItem(KEY);
    el("key-form").hidden = false;
    throw new Error("an API key is needed");
  }
  return response;
}

async function loadJob() {
  const response = await api(base);
  if (!response.ok) throw new Error((await response.json()).detail);
  job = await response.json();
  el("status").textContent = job.status + (job.error ? ": " + job.error : "");
  el("progress").textContent = "epoch " + job.progress.epoch + " of " + job.progress.epochs;
  document.title = "dendrite job " + jobId + " (" + job.status + ")";
  return job;
}

function figureFor(name) {
  let figure = document.getElementById("plot-" + name);
  if (!figure) {
    figure = document.createElement("figure");
    figure.id = "plot-" + name;
    figure.innerHTML = "<img alt=''><figcaption></figcaption>";
    figure.querySelector("img").alt = name;
    el("plots").appendChild(figure);
  }
  return figure;
}

async function drawPlot(name, url) {
  const figure = figureFor(name);
  const response = await api(url);
  const caption = figure.querySelector("figcaption");
  const img = figure.querySelector("img");
  if (response.ok) {
    const old = img.src;
    img.src = URL.createObjectURL(await response.blob());
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    img.hidden = false;
    caption.textContent = name;
  } else {
    img.hidden = !img.src;
    caption.textContent = name + ": " + (await response.json()).detail;
  }
}

async function drawAll() {
  if (drawing) { again = true; return; }
  drawing = true;
  try {
    do {
      again = false;
      const plots = (job && job.links) ? job.links.plots : {};
      for (const [name, url] of Object.entries(plots)) {
        if (name.endsWith(".png")) await drawPlot(name.slice(0, -4), url);
      }
    } while (again);
  } finally { drawing = false; }
}

function handle(event, data) {
  if (event === "epoch") {
    try {
      const payload = JSON.parse(data);
      if (payload.epoch !== undefined && job) {
        el("progress").textContent = "epoch " + payload.epoch + " of " + job.progress.epochs;
      }
    } catch (error) { /* the plots are redrawn anyway */ }
    drawAll();
  } else if (event === "status") {
    loadJob().then(drawAll);
  }
}

async function stream() {
  const headers = {"Accept": "text/event-stream"};
  if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
  const response = await api(base + "/events", {headers});
  if (!response.ok || !response.body) return false;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return true;
    buffer += value.replace(/\\r\\n?/g, "\\n");
    let end;
    while ((end = buffer.indexOf("\\n\\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = [];
      for (const line of block.split("\\n")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") lastEventId = text;
      }
      if (data.length) handle(event, data.join("\\n"));
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function follow() {
  while (job && !FINAL.includes(job.status)) {
    let streamed = false;
    try { streamed = await stream(); } catch (error) { /* reconnect below */ }
    await sleep(streamed ? 200 : 2000);
    await loadJob();
    await drawAll();
  }
}

async function start() {
  el("error").textContent = "";
  try {
    await loadJob();
    await drawAll();
    await follow();
  } catch (error) {
    el("error").textContent = String(error.message || error);
  }
}

el("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, el("key").value.trim());
  el("key").value = "";
  el("key-form").hidden = true;
  start();
});
start();
</script>
</body>
</html>
""")


def _source(page: str, element: str) -> str:
    """The CSP source of the page's one `element` (script or style): its hash."""
    match = re.search(rf"<{element}>(.*?)</{element}>", page, re.DOTALL)
    assert match is not None
    digest = hashlib.sha256(match[1].encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def render(job_id_json: str) -> str:
    """The page for one job; `job_id_json` is the id as a JSON string literal."""
    # "<" escaped: nothing in the id can close the script element.
    return _PAGE.substitute(job_id=job_id_json.replace("<", "\\u003c"))


def headers(page: str) -> dict[str, str]:
    """The response headers of a rendered page: its Content-Security-Policy."""
    policy = [
        "default-src 'none'",
        f"script-src {_source(page, 'script')}",
        f"style-src {_source(page, 'style')}",
        "img-src blob:",  # the plots, fetched with the key
        "connect-src 'self'",  # the API and its event stream
        "base-uri 'none'",
        "form-action 'none'",  # the key form is handled by the script
        "frame-ancestors 'none'",
    ]
    return {"Content-Security-Policy": "; ".join(policy), "Cache-Control": "no-store"}
