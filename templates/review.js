// The review page's one script (served from /static/review.js; the CSP allows no other): each
// decision, edit and note is POSTed to the JSON API as it is made, with the revision the page was
// loaded at, so a change made meanwhile in another tab is refused (409) and the page says so.
"use strict";
(function () {
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const run = meta("counterpoint-run");
  const token = meta("counterpoint-token");
  const header = meta("counterpoint-token-header");
  const status = document.getElementById("review-status");
  let revision = Number(meta("counterpoint-revision"));
  let stale = false;

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  // Saves go one after another, each with the revision the one before it left: a note saved on
  // blur and the click that caused the blur must not race each other into a 409.
  let queue = Promise.resolve(true);
  function save(change) {
    const result = queue.then(() => send(change));
    queue = result.catch(() => false);
    return result;
  }

  async function send(change) {
    if (stale) {
      say("Not saved: this review was changed elsewhere. Reload the page to see the latest version.", true);
      return false;
    }
    say("Saving…");
    let response;
    try {
      response = await fetch(`/api/runs/${encodeURIComponent(run)}/review`, {
        method: "POST",
        headers: { "Content-Type": "application/json", [header]: token },
        body: JSON.stringify({ ...change, revision }),
        credentials: "same-origin",
      });
    } catch (error) {
      say("Not saved: the server does not answer (is counterpoint serve still running?).", true);
      return false;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 409) {
      stale = true;
      say(`Not saved: this review was changed in another tab or window (now revision ${body.revision}). ` +
        "Reload the page to see it, then make your change again.", true);
      return false;
    }
    if (!response.ok) {
      say(`Not saved: ${body.error || "HTTP " + response.status}`, true);
      return false;
    }
    revision = body.revision;
    document.getElementById("review-revision").textContent = String(revision);
    const decided = Object.values(body.decisions).filter((entry) => entry.decision).length;
    document.getElementById("review-progress").textContent =
      `${decided} of ${body.rebuttals_total} rebuttals decided`;
    say(`Saved (revision ${revision}).`);
    return true;
  }

  function show(tools, state) {
    tools.dataset.state = state;
    for (const button of tools.querySelectorAll("button[data-decision]")) {
      button.setAttribute("aria-pressed", String(button.dataset.decision === state));
    }
  }

  for (const tools of document.querySelectorAll(".review-tools")) {
    const id = tools.dataset.rebuttal;
    const editor = tools.querySelector(".review-edit");
    const text = tools.querySelector('textarea[data-field="text"]');
    for (const button of tools.querySelectorAll("button[data-decision]")) {
      button.addEventListener("click", async () => {
        const decision = button.dataset.decision;
        if (decision === "edit") {  // the edit is saved with its text
          editor.hidden = false;
          text.focus();
          return;
        }
        if (await save({ decisions: { [id]: { decision: decision || null } } })) {
          editor.hidden = true;
          show(tools, decision);
        }
      });
    }
    tools.querySelector("button[data-save-edit]").addEventListener("click", async () => {
      if (await save({ decisions: { [id]: { decision: "edit", text: text.value } } })) show(tools, "edit");
    });
    tools.querySelector('textarea[data-field="note"]').addEventListener("change", (event) => {
      save({ decisions: { [id]: { note: event.target.value } } });
    });
  }
  for (const box of document.querySelectorAll(".claim-review")) {
    box.querySelector("textarea").addEventListener("change", (event) => {
      save({ claim_notes: { [box.dataset.claim]: event.target.value } });
    });
  }
})();
