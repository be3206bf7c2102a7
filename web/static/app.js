// Upload page: POST the chosen pages to /batch_ocr, poll /tasks/<id> for each, then show the page
// with the recognised boxes drawn over it (SVG overlay), the text and a JSON download.
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const POLL_FIRST_MS = 400;
  const POLL_MAX_MS = 2000;

  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const button = document.getElementById("submit-button");
  const formError = document.getElementById("form-error");
  const results = document.getElementById("results");
  const template = document.getElementById("doc-template");

  function showFormError(message) {
    formError.textContent = message;
    formError.hidden = !message;
  }

  // The JSON error of a failed response, or a readable fallback.
  async function errorMessage(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = body && body.error ? body.error : "";
    } catch (e) {
      detail = "";
    }
    const retry = response.headers.get("Retry-After");
    const suffix = retry ? " (retry in " + retry + " s)" : "";
    return (detail || response.status + " " + response.statusText) + suffix;
  }

  function plural(n, noun) {
    return n + " " + noun + (n === 1 ? "" : "s");
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function setState(card, state, cls) {
    const badge = card.querySelector(".doc-state");
    badge.textContent = state;
    badge.className = "doc-state badge" + (cls ? " " + cls : "");
    card.dataset.state = state;
  }

  function setProgress(card, progress, state) {
    const bar = card.querySelector(".doc-progress");
    const text = card.querySelector(".doc-progress-text");
    const done = progress && progress.done ? progress.done : 0;
    const total = progress && progress.total ? progress.total : 0;
    if (total > 0) {
      bar.max = total;
      bar.value = Math.min(done, total);
      text.textContent = done + " / " + total + " words recognised";
    } else {
      bar.removeAttribute("value");  // indeterminate until the page is detected
      text.textContent = state === "STARTED" ? "detecting text" : "waiting for a worker";
    }
  }

  function showError(card, message) {
    const el = card.querySelector(".doc-error");
    el.textContent = message;
    el.hidden = false;
    setState(card, "failed", "failure");
    card.querySelector(".doc-progress-row").hidden = true;
  }

  function drawBoxes(svg, doc) {
    svg.setAttribute("viewBox", "0 0 " + doc.width + " " + doc.height);
    svg.replaceChildren();
    doc.words.forEach(function (word, i) {
      const poly = document.createElementNS(SVG_NS, "polygon");
      poly.setAttribute("points", word.quad.map(function (p) { return p[0] + "," + p[1]; }).join(" "));
      poly.setAttribute("class", "box");
      poly.dataset.index = String(i);
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = word.text + " (" + Math.round(word.confidence * 100) + "%)";
      poly.appendChild(title);
      svg.appendChild(poly);
    });
  }

  function showResult(card, file, doc) {
    setState(card, "done", "success");
    card.querySelector(".doc-progress-row").hidden = true;
    const page = card.querySelector(".page");
    const img = card.querySelector(".page-image");
    const svg = card.querySelector(".overlay");
    img.addEventListener("error", function () {
      // The browser cannot show this format (e.g. TIFF): draw the boxes on a blank page.
      img.hidden = true;
      page.classList.add("no-image");
    });
    img.src = URL.createObjectURL(file);
    drawBoxes(svg, doc);
    const lines = doc.lines ? doc.lines.length : 0;
    card.querySelector(".doc-stats").textContent =
      plural(doc.words.length, "word") + ", " + plural(lines, "line") + ", " + doc.width + "\u00d7" + doc.height + " px";
    card.querySelector(".doc-text").textContent = doc.text || "(no text found)";
    const link = card.querySelector(".doc-download");
    const blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
    link.href = URL.createObjectURL(blob);
    link.download = (file.name.replace(/\.[^.]*$/, "") || "page") + ".ocr.json";
    card.querySelector(".doc-result").hidden = false;
  }

  async function poll(card, task, file) {
    let delay = POLL_FIRST_MS;
    for (;;) {
      let response;
      try {
        response = await fetch(task.status_url, { headers: { Accept: "application/json" } });
      } catch (e) {
        setState(card, "reconnecting");
        await sleep(POLL_MAX_MS);
        continue;
      }
      if (response.status === 503) {
        const retry = parseInt(response.headers.get("Retry-After") || "2", 10);
        setState(card, "service unavailable, retrying");
        await sleep(Math.max(1, retry) * 1000);
        continue;
      }
      if (!response.ok) {
        showError(card, await errorMessage(response));
        return;
      }
      const status = await response.json();
      if (status.state === "SUCCESS") {
        showResult(card, file, status.result);
        return;
      }
      if (status.state === "FAILURE") {
        showError(card, "OCR failed: " + (status.error || "unknown error"));
        return;
      }
      setState(card, status.state === "STARTED" ? "running" : "queued");
      setProgress(card, status.progress, status.state);
      await sleep(delay);
      delay = Math.min(POLL_MAX_MS, Math.round(delay * 1.3));
    }
  }

  function newCard(task) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector(".doc-name").textContent = task.filename || "page";
    card.dataset.taskId = task.id;
    results.prepend(card);
    return card;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    showFormError("");
    const files = Array.from(input.files || []);
    if (files.length === 0) {
      showFormError("Choose at least one image first.");
      return;
    }
    const data = new FormData();
    files.forEach(function (f) { data.append("file", f, f.name); });
    button.disabled = true;
    let response;
    try {
      response = await fetch(form.action, { method: "POST", body: data, headers: { Accept: "application/json" } });
    } catch (e) {
      showFormError("Could not reach the server: " + e.message);
      button.disabled = false;
      return;
    }
    button.disabled = false;
    let body = null;
    try {
      body = await response.clone().json();
    } catch (e) {
      body = null;
    }
    if (response.status !== 202) {
      showFormError("Upload refused: " + (await errorMessage(response)));
    }
    // On 202, and on a 503 after part of the batch was queued, poll whatever was accepted.
    const tasks = body && Array.isArray(body.tasks) ? body.tasks : [];
    tasks.slice().reverse().forEach(function (task, k) {
      poll(newCard(task), task, files[tasks.length - 1 - k]);
    });
    if (response.status === 202) {
      form.reset();
    }
  });
})();
