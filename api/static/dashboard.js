// EWC Server dashboard: live updates without a build step.
// - watchList(): polls /ui/progress for unfinished rows of the experiment list.
// - followExperiment(id): server-sent events on the detail page; reloads when the job ends.
// - imageFallbacks(): an <img data-fallback="text"> that fails to load becomes the text.
// The pages have no inline script or handler (their Content-Security-Policy allows only
// this file): what a page needs is started below from its markup.
// Words the server defines (the finished statuses, ...) come from <body data-vocabulary>
// (api/vocabulary.py), never written out here.
"use strict";
const EWC = (() => {
  const VOCABULARY = JSON.parse(document.body.dataset.vocabulary || "{}");
  const FINISHED = new Set(VOCABULARY.finished_statuses || []);
  const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1));

  function setBar(container, p, status) {
    const fill = container.querySelector(".fill");
    const text = container.querySelector(".progress-text");
    const done = p.total_epochs ? (100 * p.epoch) / p.total_epochs : status === "succeeded" ? 100 : 0;
    if (fill) { fill.style.width = done.toFixed(0) + "%"; fill.className = "fill " + status; }
    if (text) text.textContent = `task ${p.task}/${p.num_tasks} · epoch ${p.epoch}/${p.total_epochs}`;
  }

  function badge(status) {
    return `<span class="badge ${status}">${status}</span>`;
  }

  function watchList() {
    const form = document.getElementById("compare-form");
    if (form) form.addEventListener("submit", () => {
      const ids = [...form.querySelectorAll("input[name=pick]:checked")].map((c) => c.value);
      document.getElementById("compare-ids").value = ids.join(",");
      form.querySelectorAll("input[name=pick]").forEach((c) => (c.disabled = true));
    });
    const tick = async () => {
      const rows = [...document.querySelectorAll("#experiments tr[data-id]")]
        .filter((r) => !FINISHED.has(r.dataset.status));
      if (!rows.length) return;
      try {
        const ids = rows.map((r) => r.dataset.id).join(",");
        const resp = await fetch(`/ui/progress?ids=${ids}`, { credentials: "same-origin" });
        if (resp.ok) {
          const data = await resp.json();
          for (const row of rows) {
            const d = data[row.dataset.id];
            if (!d) continue;
            row.dataset.status = d.status;
            row.querySelector(".status").innerHTML = badge(d.status);
            setBar(row.querySelector(".progress"), d, d.status);
            row.querySelector(".avg").textContent = pct(d.average_accuracy);
            row.querySelector(".bwt").textContent = pct(d.bwt);
          }
        }
      } catch (e) { /* the server restarts: try again next tick */ }
      setTimeout(tick, 1500);
    };
    setTimeout(tick, 1000);
  }

  function followExperiment(id, numTasks) {
    const tbody = document.querySelector("#epochs tbody");
    const source = new EventSource(`/ui/experiments/${id}/events`);
    let lastProgress = null;
    source.addEventListener("status", (ev) => {
      const d = JSON.parse(ev.data);
      document.getElementById("status").innerHTML = badge(d.status);
      lastProgress = d.progress;
      setBar(document.getElementById("progress"), d.progress, d.status);
    });
    source.addEventListener("epoch", (ev) => {
      const r = JSON.parse(ev.data);
      const cells = [r.epoch, r.task, r.loss.toFixed(4)];
      for (let j = 0; j < numTasks; j++) cells.push(pct(r.val_accuracy[j]));
      const tr = document.createElement("tr");
      tr.innerHTML = cells.map((c) => `<td class="num">${c}</td>`).join("");
      tbody.appendChild(tr);
      if (lastProgress) {
        lastProgress.epoch = r.epoch; lastProgress.task = r.task;
        setBar(document.getElementById("progress"), lastProgress, "running");
      }
      const img = document.getElementById("curves");
      if (img) img.src = `/ui/experiments/${id}/plots/curves.png?n=${r.epoch}`;
    });
    source.addEventListener("end", () => {
      source.close();
      window.location.reload();
    });
  }

  function imageFallbacks() {
    for (const img of document.querySelectorAll("img[data-fallback]")) {
      const swap = () => img.replaceWith(document.createTextNode(img.dataset.fallback));
      if (img.complete && img.naturalWidth === 0) swap();  // failed before this ran
      else img.addEventListener("error", swap);
    }
  }

  function start() {
    if (document.getElementById("experiments")) watchList();
    const live = document.getElementById("live");
    if (live) followExperiment(Number(live.dataset.experiment), Number(live.dataset.numTasks));
    imageFallbacks();
  }

  return { watchList, followExperiment, imageFallbacks, start };
})();
EWC.start();
