// The item page from the keyboard: k keeps, 1-7 discard with that category, u undoes the
// last decision while its undo delay runs. The next item replaces this one without a full
// page reload. No inline script: the page's Content-Security-Policy allows this file only.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
let last = null; // {kind, itemId, queue, until}

async function post(path, body) {
  return fetch(path, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
    body: JSON.stringify(body),
  });
}

function toast(text) {
  const element = document.getElementById("toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { element.hidden = true; }, 4000);
}

async function show(url, queue) {
  const response = await fetch(url, {credentials: "same-origin"});
  const main = document.getElementById("main");
  if (response.status === 204) {
    main.innerHTML = "";
    const done = document.createElement("p");
    done.className = "empty";
    done.textContent = "Queue done: nothing else waiting.";
    main.append(done);
    return;
  }
  main.innerHTML = await response.text(); // our own server-rendered, escaped fragment
  const item = document.getElementById("item");
  if (item) {
    history.replaceState(null, "", `/item/${queue}/${item.dataset.kind}/${encodeURIComponent(item.dataset.itemId)}`);
  }
}

async function decide(decision, category) {
  const item = document.getElementById("item");
  if (!item) return;
  const {kind, itemId, queue} = {kind: item.dataset.kind, itemId: item.dataset.itemId, queue: item.dataset.queue};
  const response = await post("/decide", {kind, item_id: itemId, decision, category});
  if (!response.ok) { toast(`Not recorded: ${await response.text()}`); return; }
  last = {kind, itemId, queue};
  toast(`${decision}${category ? " (" + category + ")" : ""} · u to undo`);
  await show(`/next/${queue}?fragment=1`, queue);
}

async function undo() {
  if (!last) return;
  const {kind, itemId, queue} = last;
  const response = await post("/undo", {kind, item_id: itemId});
  const result = response.ok ? await response.json() : {undone: false};
  if (!result.undone) { toast("Too late to undo: already sent"); return; }
  last = null;
  toast("Undone");
  await show(`/item/${queue}/${kind}/${encodeURIComponent(itemId)}?fragment=1`, queue);
}

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
  const buttons = [...document.querySelectorAll('#item button[data-decision="discard"]')];
  if (event.key === "k") decide("keep", null);
  else if (event.key === "u") undo();
  else if (/^[1-9]$/.test(event.key) && buttons[Number(event.key) - 1]) {
    decide("discard", buttons[Number(event.key) - 1].dataset.category);
  } else return;
  event.preventDefault();
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("#item button[data-decision]");
  if (button) decide(button.dataset.decision, button.dataset.category || null);
});
