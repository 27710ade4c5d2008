// Refrain local studio: create songs, follow their progress, play and download the library.
"use strict";
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, { headers: { "Content-Type": "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || `request failed (${response.status})`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function songItem(song) {
  const meta = song.metadata || {};
  const item = element("li", { class: "song" });
  const title = element("h3", {}, song.title || "Untitled", element("span", { class: "ai" }, "AI-generated"));
  const provenance = [meta.content_credentials === "c2pa" && "C2PA content credentials",
    meta.watermark && meta.watermark.applied && `${meta.watermark.backend} watermark`].filter(Boolean).join(" · ");
  const details = [`${song.duration_s.toFixed(0)} s`, meta.genre, meta.bpm && `${meta.bpm} bpm`, meta.key,
    `seed ${song.seed}`, `${song.engine} engine`, meta.integrated_lufs !== undefined && `${meta.integrated_lufs} LUFS`]
    .filter(Boolean).join(" · ");
  const audio = element("audio", { controls: "", preload: "none", src: song.urls.m4a || song.urls.mp3 || song.urls.wav,
    "aria-label": `Play ${song.title}` });
  const downloads = element("div", { class: "downloads" });
  const labels = { m4a: "M4A", mp3: "MP3 320k", "preview.mp3": "MP3 preview", wav: "WAV 24-bit", flac: "FLAC" };
  for (const [fmt, label] of Object.entries(labels)) {  // HLS is for streaming, not a download
    if (song.urls[fmt]) downloads.append(element("a", { href: song.urls[fmt], download: "" }, `Download ${label}`));
  }
  item.append(title, element("div", { class: "meta" }, details));
  if (provenance) item.append(element("div", { class: "meta provenance" }, `Provenance: ${provenance}`));
  item.append(audio, downloads);
  if (song.lyrics) item.append(element("pre", { class: "lyrics" }, song.lyrics));
  return item;
}

async function loadLibrary() {
  const songs = await api("/api/v1/songs?status=complete");
  $("songs").replaceChildren(...songs.map(songItem));
}

function followJob(job) {
  const box = element("div", { class: "job", "data-job": job.id });
  const label = element("div", {}, "queued");
  const bar = element("progress", { max: "1", value: "0", "aria-label": "progress" });
  box.append(label, bar);
  $("jobs").prepend(box);
  // Server-Sent Events; the browser reconnects by itself with Last-Event-ID and misses nothing.
  const events = new EventSource(`/api/v1/jobs/${job.id}/events`);
  events.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    label.textContent = p.total ? `${p.stage} ${p.step}/${p.total}` : p.stage;
    bar.max = Math.max(p.total, 1);
    bar.value = p.step;
  });
  events.addEventListener("complete", async () => { events.close(); box.remove(); await loadLibrary(); await refreshPlan(); });
  events.addEventListener("error", (e) => {
    if (!e.data) return;  // a dropped connection: EventSource retries on its own
    events.close();
    label.textContent = `Failed: ${JSON.parse(e.data).message}`;
    label.className = "error";
  });
}

async function create(event) {
  event.preventDefault();
  $("error").hidden = true;
  const body = {
    prompt: $("prompt").value, lyrics: $("lyrics").value, style: $("style").value, title: $("title").value,
    instrumental: $("instrumental").checked, duration_s: Number($("duration").value || 30),
    variations: Number($("variations").value || 2), engine: $("engine").value || undefined,
  };
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  $("create").disabled = true;
  try {
    followJob(await api("/api/v1/songs", { method: "POST", body: JSON.stringify(body) }));
  } catch (e) {
    $("error").textContent = e.message;
    $("error").hidden = false;
  } finally {
    $("create").disabled = false;
  }
}

// Accounts mode: the studio asks who is there; a 401 shows the sign-in form (the session is a cookie).
async function signIn(event) {
  event.preventDefault();
  $("signin-error").hidden = true;
  const body = { email: $("email").value, password: $("password").value };
  try {
    await api("/api/v1/auth/login", { method: "POST", body: JSON.stringify(body) });
    $("signin").hidden = true;
    $("studio").hidden = false;
    await refreshPlan();
    await start();
  } catch (error) {
    $("signin-error").textContent = error.message;
    $("signin-error").hidden = false;
  }
}

// The caller's plan and credits; where the studio sells the paid plan, the upgrade and billing buttons.
function showPlan(me) {
  const names = { free: "Free plan", paid: "Paid plan (billed per song)", custom: "Studio plan" };
  const per = me.period === "day" ? "today" : "this month";
  $("plan-text").textContent = `${names[me.plan] || me.plan} · ${me.credits_left} of ${me.monthly_limit} credits left ${per}`;
  $("upgrade").hidden = !(me.billing && me.plan === "free");
  $("manage").hidden = !(me.billing && me.plan === "paid");
  $("plan").hidden = !me.email;  // the local studio's one user has no account to show
}

async function goToBilling(path) {
  $("plan-error").hidden = true;
  try {
    const { url } = await api(path, { method: "POST" });
    window.location.assign(url);
  } catch (error) {
    $("plan-error").textContent = error.message;
    $("plan-error").hidden = false;
  }
}

async function refreshPlan() {
  try { showPlan(await api("/api/v1/me")); } catch (error) { /* the page goes on without the plan bar */ }
}

async function init() {
  $("signin-form").addEventListener("submit", signIn);
  $("upgrade").addEventListener("click", () => goToBilling("/api/v1/billing/checkout"));
  $("manage").addEventListener("click", () => goToBilling("/api/v1/billing/portal"));
  try {
    showPlan(await api("/api/v1/me"));
  } catch (error) {
    if (error.status === 401) {
      $("studio").hidden = true;
      $("signin").hidden = false;
      return;
    }
    throw error;
  }
  await start();
}

async function start() {
  const { engines, default: fallback } = await api("/api/v1/engines");
  $("engine").replaceChildren(...engines.map((name) => element("option", name === fallback ? { selected: "" } : {}, name)));
  $("create-form").addEventListener("submit", create);
  await loadLibrary();
}

init();
