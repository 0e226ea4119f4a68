// shoal playground: plain JavaScript over the public HTTP API, no build step.
// The API key lives in this tab's sessionStorage only.
"use strict";

const KEY_STORAGE = "shoal.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 250;
const QUEUE_MS = 2000;
const $ = (id) => document.getElementById(id);

class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || "http_error";
    this.title = body.title || `HTTP ${status}`;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function newRequestId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(method, path, { json, form, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  const key = apiKey();
  if (key) init.headers.Authorization = `Bearer ${key}`;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(path, init);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new Problem(response.status, body || {});
  return { body, headers: response.headers };
}

function showProblem(error) {
  const box = $("problem");
  if (!error) {
    box.hidden = true;
    return;
  }
  box.textContent = error instanceof Problem ? `${error.title} (${error.code}): ${error.message}` : String(error);
  if (error instanceof Problem && error.status === 401) {
    box.textContent += " — enter an API key above.";
    $("api-key").focus();
  }
  box.hidden = false;
}

function option(value, label) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = label;
  return element;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

// --- the form's choices: formats from the OpenAPI document, voices from /v1/voices

async function loadFormats() {
  const { body } = await api("GET", "/openapi.json");
  const formats = body.components.schemas.AudioFormat.enum;
  const select = $("format");
  select.replaceChildren(...formats.map((f) => option(f, f)));
  select.value = formats.includes("wav") ? "wav" : formats[0];
}

async function loadVoices() {
  const { body } = await api("GET", "/v1/voices");
  const voice = $("voice");
  const chosen = voice.value;
  const engine = document.createElement("optgroup");
  engine.label = `${body.engine} voices`;
  engine.append(...body.voices.map((v) => option(v.id, `${v.name} (${v.id})`)));
  const cloned = document.createElement("optgroup");
  cloned.label = "cloned voices";
  cloned.append(...body.cloned_voices.map((v) => option(v.id, `${v.name || "unnamed"} (${v.id})`)));
  voice.replaceChildren(option("", `default${body.default_voice ? ` (${body.default_voice})` : ""}`), engine, cloned);
  if ([...voice.options].some((o) => o.value === chosen)) voice.value = chosen;

  const language = $("language");
  const tags = Object.keys(body.languages || {}).sort();
  language.replaceChildren(option("", "from the voice"), ...tags.map((t) => option(t, t)));

  const list = $("cloned");
  list.replaceChildren(
    ...body.cloned_voices.map((v) => {
      const item = document.createElement("li");
      item.textContent = `${v.name || "unnamed"} — ${v.id} — ${v.duration_seconds.toFixed(1)} s `;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => deleteVoice(v.id));
      item.appendChild(remove);
      return item;
    }),
  );
}

async function deleteVoice(id) {
  try {
    await api("DELETE", `/v1/voices/${encodeURIComponent(id)}`);
    showProblem(null);
    await loadVoices();
  } catch (error) {
    showProblem(error);
  }
}

// --- a job: submit, then poll until it ends

function markStatus(status) {
  const badge = $("job-status");
  if (badge.textContent === status) return;
  badge.textContent = status;
  badge.dataset.status = status;
  const step = document.createElement("li");
  step.textContent = `${new Date().toLocaleTimeString()} ${status}`;
  step.dataset.status = status;
  $("timeline").appendChild(step);
}

function showJob(job) {
  markStatus(job.status);
  if (job.status === "failed" || job.status === "canceled") {
    const error = $("job-error");
    error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : job.status;
    error.hidden = false;
  }
  if (job.status === "succeeded" && job.audio) {
    const player = $("player");
    player.src = job.audio.url;
    const link = $("download");
    link.href = job.audio.url;
    link.download = `${job.id}.${job.audio.format}`;
    $("audio-facts").textContent =
      `${job.audio.format}, ${job.audio.duration_seconds.toFixed(2)} s, ` +
      `${job.audio.sample_rate} Hz, ${job.audio.bytes.toLocaleString()} bytes`;
    $("result").hidden = false;
  }
}

async function follow(jobId) {
  for (;;) {
    const { body } = await api("GET", `/v1/jobs/${encodeURIComponent(jobId)}`);
    showJob(body);
    if (TERMINAL.has(body.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function submitJob(event) {
  event.preventDefault();
  const request = { text: $("text").value, format: $("format").value };
  if ($("voice").value) request.voice = $("voice").value;
  if ($("language").value) request.language = $("language").value;
  const button = $("submit");
  button.disabled = true;
  $("timeline").replaceChildren();
  $("job-status").textContent = "";
  $("job-error").hidden = true;
  $("result").hidden = true;
  $("player").removeAttribute("src");
  try {
    const sent = await api("POST", "/v1/jobs", { json: request, headers: { "X-Request-ID": newRequestId() } });
    showProblem(null);
    $("job-id").textContent = sent.body.id;
    $("request-id").textContent = sent.headers.get("x-request-id") || "";
    $("job").hidden = false;
    showJob(sent.body);
    await follow(sent.body.id);
  } catch (error) {
    showProblem(error);
  } finally {
    button.disabled = false;
  }
}

async function uploadVoice(event) {
  event.preventDefault();
  const form = new FormData();
  form.append("audio", $("voice-audio").files[0]);
  form.append("transcript", $("voice-transcript").value);
  if ($("voice-name").value) form.append("name", $("voice-name").value);
  try {
    const { body } = await api("POST", "/v1/voices", { form });
    showProblem(null);
    await loadVoices();
    $("voice").value = body.id;
    event.target.reset();
  } catch (error) {
    showProblem(error);
  }
}

// --- the queue and the workers, refreshed while the page is open

async function refreshQueue() {
  try {
    const { body } = await api("GET", "/v1/queue");
    const queues = $("queues").tBodies[0];
    queues.replaceChildren(
      ...Object.entries(body.queues).map(([name, counts]) => {
        const row = document.createElement("tr");
        row.dataset.queue = name;
        [name, counts.waiting, counts.running].forEach((value) => cell(row, String(value)));
        return row;
      }),
    );
    $("oldest").textContent = `${body.oldest_waiting_seconds.toFixed(1)} s`;
    const workers = $("workers").tBodies[0];
    workers.replaceChildren(
      ...body.workers.map((w) => {
        const row = document.createElement("tr");
        const seen = Math.max(0, Date.now() / 1000 - w.last_seen);
        [w.name, w.engine || "–", w.queues.join(", "), `${seen.toFixed(0)} s ago`].forEach((v) => cell(row, v));
        return row;
      }),
    );
  } catch (error) {
    if (!(error instanceof Problem && error.status === 401)) showProblem(error);
  }
}

// --- the key, and start-up

function showKeyState() {
  $("key-state").textContent = apiKey() ? "a key is set for this tab" : "no key set";
}

async function loadAll() {
  try {
    await Promise.all([loadFormats(), loadVoices()]);
    showProblem(null);
  } catch (error) {
    showProblem(error);
  }
  await refreshQueue();
}

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    $("api-key").value = "";
    showKeyState();
    loadAll();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    showKeyState();
  });
  $("job-form").addEventListener("submit", submitJob);
  $("voice-form").addEventListener("submit", uploadVoice);
  showKeyState();
  loadAll();
  setInterval(refreshQueue, QUEUE_MS);
}

start();
