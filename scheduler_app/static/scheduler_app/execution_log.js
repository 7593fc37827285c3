/* The execution page: while the run goes on, new log lines, status and progress
   appear every second; polling stops when the run ends, and the page reloads
   once to show the result. */
"use strict";
/* Loaded in <head> with the admin's media: start once the page is parsed. */
document.addEventListener("DOMContentLoaded", function () {
  /* "Cancel this run" and other forms that ask first. */
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
  const panel = document.getElementById("execution-live");
  if (!panel || panel.dataset.finished === "true") {
    return;
  }
  const POLL_MS = 1000;
  const log = document.getElementById("execution-log");
  const statuses = document.querySelectorAll("[data-live-status]");
  const progress = panel.querySelector("[data-live-progress]");
  const progressText = panel.querySelector("[data-live-progress-text]");
  let offset = parseInt(panel.dataset.offset, 10) || 0;

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  }

  /* The rule of scheduler_app/controls.py and admin/display.py visible_text: each
     control character but newline and tab is shown as Python writes it (\x1b,
     \r) in a muted span; the rest is text (textContent, never HTML). */
  const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

  function controlSpan(char) {
    const code = char.charCodeAt(0);
    const span = document.createElement("span");
    span.className = "scheduler-control";
    span.title = "U+" + code.toString(16).toUpperCase().padStart(4, "0");
    span.textContent =
      char === "\r" ? "\\r" : "\\x" + code.toString(16).padStart(2, "0");
    return span;
  }

  function visibleFragment(text) {
    const fragment = document.createDocumentFragment();
    let shown = 0;
    for (const match of text.matchAll(CONTROL)) {
      if (match.index > shown) {
        fragment.append(text.slice(shown, match.index));
      }
      fragment.append(controlSpan(match[0]));
      shown = match.index + 1;
    }
    if (shown < text.length) {
      fragment.append(text.slice(shown));
    }
    return fragment;
  }

  function append(lines) {
    if (!lines.length) {
      return;
    }
    const follow = atBottom();
    const text = lines.join("\n");
    log.append(visibleFragment(log.hasChildNodes() ? "\n" + text : text));
    if (follow) {
      log.scrollTop = log.scrollHeight;
    }
  }

  function showProgress(data) {
    if (data.progress_done === null || data.progress_done === undefined) {
      return;
    }
    progress.hidden = false;
    if (data.progress_total) {
      progress.max = data.progress_total;
      progress.value = data.progress_done;
      progressText.textContent = data.progress_done + " / " + data.progress_total;
    } else {
      progress.removeAttribute("value");
      progressText.textContent = String(data.progress_done);
    }
  }

  async function poll() {
    try {
      const response = await fetch(panel.dataset.logUrl + "?offset=" + offset, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) {
        const data = await response.json();
        append(data.lines);
        offset = data.offset;
        statuses.forEach((status) => {
          status.innerHTML = data.status_html; /* built server-side with format_html */
        });
        /* The fields that change with the run: plain text, never markup. */
        Object.entries(data.fields || {}).forEach(([name, text]) => {
          document.querySelectorAll('[data-live-field="' + name + '"]').forEach((field) => {
            field.textContent = text;
          });
        });
        showProgress(data);
        if (data.finished) {
          panel.dataset.finished = "true";
          const note = panel.querySelector("[data-live-note]");
          if (note) {
            note.remove();
          }
          setTimeout(() => window.location.reload(), 1500);
          return;
        }
      }
    } catch (error) {
      /* a dropped request: try again next second */
    }
    setTimeout(poll, POLL_MS);
  }

  setTimeout(poll, POLL_MS);
});
