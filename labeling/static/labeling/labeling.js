/* The labeling tool's pages. Plain JS, no build step.
 *
 * Time conversion is NOT done here: every change of the relative delay or of the absolute
 * date/clock is sent to /labeling/api/time/ (labeling/time_editor.py), so the browser and
 * the server can never disagree about time zones or DST. */
"use strict";

const Labeling = (() => {
  const csrfToken = () => document.querySelector("#csrf [name=csrfmiddlewaretoken]").value;

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (_) { data = { code: "http", detail: `HTTP ${response.status}` }; }
    // Every labeling error is {"code", "detail"}; detail is the sentence to show.
    if (!response.ok) throw new Error(data.detail || `HTTP ${response.status}`);
    return data;
  }

  function queue() {
    const rows = Array.from(document.querySelectorAll("#queue .task-row"));
    let current = rows.length ? 0 : -1;
    const show = () => rows.forEach((row, i) => row.classList.toggle("selected", i === current));
    show();
    document.addEventListener("keydown", (event) => {
      if (event.target.closest("select, input, textarea") || !rows.length) return;
      if (event.key === "j") current = Math.min(current + 1, rows.length - 1);
      else if (event.key === "k") current = Math.max(current - 1, 0);
      else if (event.key === "Enter") { window.location.href = rows[current].dataset.href; return; }
      else return;
      event.preventDefault();
      show();
      rows[current].scrollIntoView({ block: "nearest" });
    });
    ["filter-rule", "filter-companion", "filter-state"].forEach((id) => {
      document.getElementById(id).addEventListener("change", (e) => e.target.form.submit());
    });
  }

  function task(taskId) {
    const el = (id) => document.getElementById(id);
    const hours = el("delay-hours"), minutes = el("delay-minutes");
    const date = el("reply-date"), clock = el("reply-clock");
    const status = el("status");
    let sequence = 0; // answers to older conversions are dropped, the latest edit wins

    const cutAfter = () => {
      const checked = document.querySelector(".cut-choice:checked");
      return checked ? Number(checked.value) : null;
    };
    const delayMinutes = () => {
      if (hours.value === "" && minutes.value === "") return null;
      return Number(hours.value || 0) * 60 + Number(minutes.value || 0);
    };
    const say = (text, isError) => { status.textContent = text; status.classList.toggle("error", !!isError); };

    function strikeAfterCut() {
      let after = false;
      document.querySelectorAll("#turns .turn").forEach((turn) => {
        turn.classList.toggle("cut", after);
        if (Number(turn.dataset.turnId) === cutAfter()) after = true;
      });
    }

    async function convert(body, apply) {
      const mine = ++sequence;
      try {
        const result = await postJson("/labeling/api/time/", { task_id: taskId, cut_after_id: cutAfter(), ...body });
        if (mine !== sequence) return;
        apply(result);
        el("relative-text").textContent = result.relative;
        say("");
      } catch (error) {
        if (mine === sequence) say(error.message, true);
      }
    }
    const fromRelative = () => {
      const delay = delayMinutes();
      if (delay === null || cutAfter() === null) return;
      convert({ delay_minutes: delay }, (r) => { date.value = r.local_date; clock.value = r.local_time; });
    };
    const fromAbsolute = () => {
      if (!date.value || !clock.value || cutAfter() === null) return;
      convert({ local_date: date.value, local_time: clock.value }, (r) => {
        hours.value = r.hours; minutes.value = r.minutes;
      });
    };

    hours.addEventListener("input", fromRelative);
    minutes.addEventListener("input", fromRelative);
    date.addEventListener("input", fromAbsolute);
    clock.addEventListener("input", fromAbsolute);
    document.querySelectorAll(".cut-choice").forEach((radio) =>
      radio.addEventListener("change", () => { strikeAfterCut(); fromRelative(); }));

    async function save(action) {
      say("Saving…");
      try {
        const label = await postJson(`/labeling/api/tasks/${taskId}/label/`, {
          action, cut_after_id: cutAfter(), delay_minutes: delayMinutes(), reply_text: el("reply-text").value,
        });
        el("label-state").textContent = { draft: "Draft", skipped: "No delay needed", submitted: "Submitted" }[label.state] || label.state;
        say({ draft: "Draft saved.", skip: "Marked as no delay needed.", submit: "Submitted for review." }[action]);
      } catch (error) {
        say(error.message, true);
      }
    }
    el("save-draft").addEventListener("click", () => save("draft"));
    el("skip").addEventListener("click", () => save("skip"));
    el("submit").addEventListener("click", () => save("submit"));
    strikeAfterCut();
  }

  function review() {
    document.querySelectorAll(".review-item").forEach((item) => {
      const decide = async (decision) => {
        const out = item.querySelector(".review-status");
        try {
          const result = await postJson(`/labeling/api/labels/${item.dataset.labelId}/review/`, {
            decision, note: item.querySelector(".review-note").value,
          });
          out.textContent = { approved: "Approved", sent_back: "Sent back", rejected: "Rejected" }[result.state];
          out.classList.remove("error");
          item.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        } catch (error) {
          out.textContent = error.message;
          out.classList.add("error");
        }
      };
      item.querySelector(".approve").addEventListener("click", () => decide("approve"));
      item.querySelector(".send-back").addEventListener("click", () => decide("send_back"));
      item.querySelector(".reject").addEventListener("click", () => decide("reject"));
    });
  }

  return { queue, task, review };
})();

// Each page names itself in <body data-page> (labeling/templates), the task page its task in
// #turns[data-task-id]: no inline script starts a page, so /labeling/ runs under the site's
// script-src 'self' without 'unsafe-inline'. The script tag closes <body>: the page is parsed.
(() => {
  const page = document.body.dataset.page;
  if (page === "queue") Labeling.queue();
  else if (page === "review") Labeling.review();
  else if (page === "task") Labeling.task(Number(document.getElementById("turns").dataset.taskId));
})();
