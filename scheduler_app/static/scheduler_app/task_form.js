/* The task form: parameter inputs follow the chosen handler, only the chosen
   schedule type's fields show, and the next fire times preview as you type. */
"use strict";
/* Loaded in <head> with the admin's media: start once the page is parsed. */
document.addEventListener("DOMContentLoaded", function () {
  const config = document.getElementById("scheduler-task-form");
  const form = document.getElementById("scheduledtask_form");
  if (!config || !form) {
    return;
  }
  const PARAM_PREFIX = "param_";
  const SCHEDULE_FIELDS = {
    cron: ["cron_expression", "timezone"],
    interval: ["interval_seconds", "timezone"],
    date: ["run_date", "timezone"],
    manual: [],
  };
  const ALL_SCHEDULE_FIELDS = ["cron_expression", "interval_seconds", "run_date", "timezone"];

  function row(name) {
    return form.querySelector(".form-row.field-" + name);
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(key, value === true ? "" : value);
      }
    });
    if (text) {
      node.textContent = text;
    }
    return node;
  }

  /* Handler and parameters */

  const handlerSelect = form.querySelector("select[name=handler_path]");

  function paramRows() {
    return Array.from(form.querySelectorAll("input[name^='" + PARAM_PREFIX + "']"))
      .map((input) => input.closest(".form-row"))
      .filter(Boolean);
  }

  function buildParamRow(spec, value) {
    const wrapper = el("div", { class: "form-row field-" + spec.field });
    const inner = el("div");
    const flex = el("div", { class: "flex-container" });
    const label = el("label", { for: spec.id, class: spec.required ? "required" : null }, spec.label + ":");
    const input = el("input", {
      type: "text",
      name: spec.field,
      id: spec.id,
      class: "vTextField scheduler-param",
      placeholder: spec.placeholder || null,
      "data-param": spec.name,
      spellcheck: "false",
      autocomplete: "off",
      "aria-describedby": spec.id + "_helptext",
    });
    input.value = value || "";
    flex.append(label, input);
    const help = el("div", { class: "help", id: spec.id + "_helptext" });
    help.append(el("div", {}, spec.help));
    inner.append(flex, help);
    wrapper.append(inner);
    return wrapper;
  }

  function showHandlerDescription(text, broken) {
    const handlerRow = row("handler_path");
    if (!handlerRow) {
      return;
    }
    let box = handlerRow.querySelector(".scheduler-handler-description");
    if (!box) {
      box = el("div", { class: "help scheduler-handler-description" });
      handlerRow.querySelector(".flex-container").after(box);
    }
    box.textContent = text || "";
    box.classList.toggle("broken", Boolean(broken));
  }

  function toggleOtherParameters(acceptsVarKwargs) {
    const otherRow = row("handler_kwargs");
    const textarea = otherRow && otherRow.querySelector("textarea");
    if (!otherRow || !textarea) {
      return;
    }
    const value = textarea.value.trim();
    const empty = value === "" || value === "{}";
    otherRow.hidden = !acceptsVarKwargs && empty && !otherRow.classList.contains("errors");
  }

  function describeSelectedHandler() {
    const option = handlerSelect && handlerSelect.selectedOptions[0];
    if (!option) {
      return;
    }
    const broken = option.dataset.broken;
    showHandlerDescription(broken || option.dataset.description || "", Boolean(broken));
  }

  /* What was typed per parameter name, kept across handler changes. */
  const remembered = {};
  let handlerRequest = 0;
  async function handlerChanged() {
    describeSelectedHandler();
    const path = handlerSelect.value;
    const request = ++handlerRequest;
    let data = { params: [], accepts_var_kwargs: false };
    if (path) {
      try {
        const response = await fetch(config.dataset.handlerUrl + "?path=" + encodeURIComponent(path), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) {
          return;
        }
        data = await response.json();
      } catch (error) {
        return; /* offline: keep the inputs as they are */
      }
    }
    if (request !== handlerRequest) {
      return; /* a later change won */
    }
    paramRows().forEach((oldRow) => {
      const input = oldRow.querySelector("input[name^='" + PARAM_PREFIX + "']");
      remembered[input.dataset.param || input.name.slice(PARAM_PREFIX.length)] = input.value;
      oldRow.remove();
    });
    let anchor = row("handler_path");
    data.params.forEach((spec) => {
      const newRow = buildParamRow(spec, remembered[spec.name]);
      anchor.after(newRow);
      anchor = newRow;
    });
    if (data.broken || !data.found) {
      showHandlerDescription(data.error, true);
    } else {
      showHandlerDescription(data.description, false);
    }
    toggleOtherParameters(data.accepts_var_kwargs);
    form.dispatchEvent(new CustomEvent("scheduler:parameters", { detail: data }));
  }

  if (handlerSelect) {
    handlerSelect.addEventListener("change", handlerChanged);
    describeSelectedHandler();
    toggleOtherParameters(false);
    if (handlerSelect.value) {
      /* Learn whether the handler takes **kwargs; keeps the server-rendered inputs. */
      fetch(config.dataset.handlerUrl + "?path=" + encodeURIComponent(handlerSelect.value), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then((response) => (response.ok ? response.json() : null))
        .then((data) => data && toggleOtherParameters(data.accepts_var_kwargs))
        .catch(() => {});
    }
  }

  /* Schedule fields and preview */

  const typeSelect = form.querySelector("select[name=task_type]");
  let preview = null;

  function showScheduleFields() {
    const shown = SCHEDULE_FIELDS[typeSelect.value] || ALL_SCHEDULE_FIELDS;
    ALL_SCHEDULE_FIELDS.forEach((name) => {
      const fieldRow = row(name);
      if (fieldRow) {
        fieldRow.hidden = !shown.includes(name);
      }
    });
  }

  function ensurePreview() {
    if (preview) {
      return preview;
    }
    const anchor = row("timezone") || row("task_type");
    if (!anchor) {
      return null;
    }
    preview = el("div", { class: "form-row scheduler-preview", id: "scheduler-preview", "aria-live": "polite" });
    anchor.parentNode.insertBefore(preview, null);
    return preview;
  }

  function value(name) {
    const input = form.querySelector("[name=" + name + "]");
    return input ? input.value : "";
  }

  function renderPreview(data) {
    const box = ensurePreview();
    if (!box) {
      return;
    }
    box.replaceChildren();
    box.append(el("div", { class: "scheduler-preview-title" }, config.dataset.previewTitle));
    if (data.description) {
      box.append(el("div", { class: "scheduler-preview-description" }, data.description));
    }
    if (!data.ok) {
      box.append(el("div", { class: "scheduler-preview-error" }, data.error));
      return;
    }
    if (!data.times.length) {
      box.append(el("div", {}, config.dataset.previewNone));
      return;
    }
    const list = el("ol", { class: "scheduler-preview-times" });
    data.times.forEach((time) => {
      const item = el("li", {}, time.text + " ");
      item.append(el("span", { class: "scheduler-preview-relative" }, time.relative));
      list.append(item);
    });
    box.append(list);
    if (data.dst_note) {
      box.append(el("div", { class: "scheduler-preview-dst" }, data.dst_note));
    }
  }

  let previewTimer = null;
  let previewRequest = 0;
  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(async () => {
      if (typeSelect.value === "manual") {
        renderPreview({ ok: true, times: [], description: "" });
        return;
      }
      const params = new URLSearchParams({
        task_type: typeSelect.value,
        cron_expression: value("cron_expression"),
        interval_seconds: value("interval_seconds"),
        run_date_0: value("run_date_0"),
        run_date_1: value("run_date_1"),
        timezone: value("timezone"),
      });
      const request = ++previewRequest;
      try {
        const response = await fetch(config.dataset.previewUrl + "?" + params.toString(), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.ok && request === previewRequest) {
          renderPreview(await response.json());
        }
      } catch (error) {
        /* the preview is a convenience; the form still validates on save */
      }
    }, 250);
  }

  if (typeSelect) {
    showScheduleFields();
    schedulePreview();
    typeSelect.addEventListener("change", () => {
      showScheduleFields();
      schedulePreview();
    });
    ["cron_expression", "interval_seconds", "run_date_0", "run_date_1", "timezone"].forEach((name) => {
      const input = form.querySelector("[name=" + name + "]");
      if (input) {
        input.addEventListener("input", schedulePreview);
        input.addEventListener("change", schedulePreview);
      }
    });
  }
});
