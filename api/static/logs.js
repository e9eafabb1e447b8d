// EWC Server dashboard: the Logs section of an experiment's page follows the job's log.
// The page renders the lines stored so far; while the job runs (data-follow) new ones
// arrive as server-sent events from /ui/experiments/<id>/logs?follow=true, after the last
// rendered line (data-after; a reconnect resumes with Last-Event-ID), until `end`.
// No inline script (the page's Content-Security-Policy allows only same-origin files).
"use strict";
(() => {
  const pre = document.getElementById("log-lines");
  if (!pre || !pre.dataset.follow) return;
  const id = Number(pre.dataset.experiment);
  const after = Number(pre.dataset.after) || 0;
  const stamp = (t) => t.replace(/(\.\d{3})\d*/, "$1").replace(/\+00:00$/, "Z");
  const source = new EventSource(`/ui/experiments/${id}/logs?follow=true&after=${after}`);
  source.addEventListener("line", (ev) => {
    const d = JSON.parse(ev.data);
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const span = document.createElement("span");
    span.className = "log-" + String(d.level).toLowerCase();
    span.textContent = `${stamp(d.time)} ${d.level} [attempt ${d.attempt}] ${d.message}\n`;
    pre.appendChild(span);
    pre.hidden = false;
    const none = document.getElementById("no-logs");
    if (none) none.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    pre.dataset.follow = "";
    pre.dataset.ended = "1";
  });
})();
