// jobrunner dashboard: keeps a page live from the SSE feed (/events), without polling.
// A page marks its live part <div id="live" data-live="all|job:ID">; when events come,
// the part is fetched again (?part=1, at most once per REFRESH ms) and swapped in. A job's
// progress bar moves at once from job.progress events, and its output streams from
// /jobs/ID/logs?follow=1. A lost feed reconnects by itself, resuming with Last-Event-ID,
// and the live part is read again once it is back.
"use strict";
(function () {
  const REFRESH = 500;
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");

  function status(text, cls) {
    if (!conn) return;
    conn.textContent = text;
    conn.className = "conn " + cls;
  }

  // a form with data-confirm asks first (how many it will change is in the question)
  document.addEventListener("submit", function (ev) {
    const form = ev.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  // the note an action left (?note=) is shown once, then dropped from the address
  const params = new URLSearchParams(location.search);
  if (params.has("note")) {
    const note = document.createElement("p");
    note.className = "note";
    note.setAttribute("role", "status");
    note.textContent = params.get("note");
    const main = document.getElementById("main");
    main.insertBefore(note, main.firstChild.nextSibling);
    params.delete("note");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? "?" + rest : ""));
  }

  if (!live || !live.dataset.live || !window.EventSource) return;
  const what = live.dataset.live;
  const jobId = what.startsWith("job:") ? what.slice(4) : null;

  let pending = null;
  let again = false;  // an event came while a read was under way: read once more after it
  let lastFetch = 0;
  function settled() {
    pending = null;
    if (again) { again = false; refresh(); }
  }
  function refresh() {
    if (pending) { again = true; return; }
    const wait = Math.max(0, lastFetch + REFRESH - Date.now());
    pending = setTimeout(function () {
      lastFetch = Date.now();
      again = false;  // this read sees every event so far
      const url = new URL(location.href);
      url.searchParams.set("part", "1");
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null) {
            const focused = document.activeElement && document.activeElement.id;
            live.innerHTML = html;
            if (focused) { const el = document.getElementById(focused); if (el) el.focus(); }
          }
          settled();
        })
        .catch(settled);
    }, wait);
  }

  function setProgress(progress, message) {
    const box = document.getElementById("progress");
    if (!box || progress === null || progress === undefined) return;
    const pct = Math.round(progress * 100);
    let bar = box.querySelector(".progress");
    if (!bar) { refresh(); return; }
    bar.setAttribute("aria-valuenow", String(pct));
    bar.querySelector(".bar").style.width = (progress * 100).toFixed(1) + "%";
    const text = box.querySelector(".progress-text");
    if (text) text.textContent = pct + "%" + (message ? " · " + message : "");
  }

  const source = new EventSource("/events" + (jobId ? "?job=" + jobId : ""));
  let lost = false;
  source.onopen = function () {
    status("live", "live");
    // back after a loss: the feed resumes from the last event seen (Last-Event-ID), but
    // one lost before any event came has none to give: read the page's state again
    if (lost) refresh();
    lost = false;
  };
  source.onerror = function () { lost = true; status("reconnecting…", "lost"); };
  function onEvent(ev) {
    let data = {};
    try { data = JSON.parse(ev.data); } catch (e) { /* a keep-alive */ }
    if (ev.type === "job.progress" && jobId) {
      setProgress(data.progress, data.message);
      return;
    }
    refresh();
  }
  ["job.blocked", "job.queued", "job.scheduled", "job.started", "job.progress", "job.retrying",
   "job.succeeded", "job.dead", "job.cancelled", "job.rescued"].forEach(function (type) {
    source.addEventListener(type, onEvent);
  });

  // a job's output, as it is written
  const out = document.getElementById("output");
  if (out && out.dataset.follow === "1" && window.ReadableStream) {
    const skip = Number(out.dataset.end || 0);
    fetch("/jobs/" + out.dataset.job + "/logs?follow=1", { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok || !r.body) return;
        const reader = r.body.getReader();
        const decoder = new TextDecoder();
        let seen = 0;
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return;
            let bytes = chunk.value;
            if (seen < skip) {  // what the page already shows
              const drop = Math.min(bytes.length, skip - seen);
              seen += drop;
              bytes = bytes.subarray(drop);
            }
            if (bytes.length) {
              const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
              out.textContent += decoder.decode(bytes, { stream: true });
              if (atEnd) out.scrollTop = out.scrollHeight;
            }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () { /* the page still shows what was there */ });
  }
})();
