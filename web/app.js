// The operator console: settings, sign-in, hash routes (#/ and #/motors/{id}), and the refresh while open.

import { ApiError, createApi } from "./api.js";
import { currentUser, finishSignIn, signOut, signOutLocally, startSignIn } from "./auth.js";
import { renderFleet } from "./fleet.js";
import { renderHistory, renderMotor } from "./motor.js";

const VIEWS = ["view-loading", "view-signin", "view-fleet", "view-motor"];
const DEFAULT_REFRESH_S = 10;

let config;
let api;
let timer = null;
let generation = 0; // each refresh's number: an answer that a newer refresh has overtaken is dropped
let shown = ""; // the last answer drawn: an unchanged answer is not drawn again (no flicker, no lost focus)

async function main() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`config.json answered ${response.status}`);
    config = await response.json();
  } catch (error) {
    show("view-signin");
    notice(`The console's settings could not be read (${error.message}).`);
    return;
  }
  api = createApi(config);
  document.getElementById("sign-in").addEventListener("click", () => startSignIn(config).catch((e) => notice(e.message)));
  document.getElementById("sign-out").addEventListener("click", () => signOut(config));
  document.getElementById("history-hours").addEventListener("change", () => refresh());
  window.addEventListener("hashchange", () => route(true));
  document.addEventListener("visibilitychange", () => document.hidden || refresh());
  try {
    await finishSignIn(config);
  } catch (error) {
    notice(error.message);
  }
  route(false);
}

/** Shows the view the address names; `moved`: the user navigated, so focus goes to the new view. */
async function route(moved) {
  const user = currentUser();
  if (!user) {
    stopRefresh();
    show("view-signin");
    document.getElementById("who").textContent = "";
    document.getElementById("sign-out").hidden = true;
    return;
  }
  document.getElementById("who").textContent = `${user.name} (${user.operator ? "operator" : "viewer"})`;
  document.getElementById("sign-out").hidden = false;
  notice("");
  if (moved) {
    shown = "";
    document.getElementById("action-status").textContent = "";
  }
  await refresh();
  if (moved) document.getElementById("main").focus();
  startRefresh();
}

function motorId() {
  const match = window.location.hash.match(/^#\/motors\/([^/]+)$/);
  return match ? decodeURIComponent(match[1]) : null;
}

/** Reloads what the current view shows, keeping the keyboard focus where it was. */
async function refresh() {
  if (!api || !currentUser()) return;
  generation += 1;
  const mine = generation;
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  try {
    const id = motorId();
    if (id) {
      const hours = document.getElementById("history-hours").value;
      const [motor, history] = await Promise.all([api.motor(id), api.history(id, hours)]);
      if (mine !== generation) return;
      show("view-motor");
      const drawn = JSON.stringify(["motor", motor]);
      if (drawn !== shown) {
        renderMotor(motor, { canAct: currentUser().operator, onAction: (request, label) => act(id, request, label) });
        shown = drawn;
      }
      renderHistory(history, motor.last_reading_at);
      updated("motor-updated");
    } else {
      const fleet = await api.fleet();
      if (mine !== generation) return;
      show("view-fleet");
      const drawn = JSON.stringify(["fleet", fleet]);
      if (drawn !== shown) {
        renderFleet(fleet);
        shown = drawn;
      }
      updated("fleet-updated");
    }
    if (document.getElementById("notice").dataset.kind === "stale") notice("");
  } catch (error) {
    if (mine === generation) failed(error, "stale");
    return;
  }
  // A redrawn element loses the focus to <body>: give it to its replacement.
  const lost = !document.activeElement || document.activeElement === document.body;
  if (focused && lost) document.querySelector(`[data-key="${CSS.escape(focused)}"]`)?.focus();
}

async function act(id, request, label) {
  notice("");
  document.getElementById("action-status").textContent = `${label}: sending…`;
  const buttons = document.querySelectorAll("#view-motor button[data-action]");
  buttons.forEach((button) => (button.disabled = true));
  try {
    const answer = await api.act(id, request);
    const state = request.alarm && answer.alarm_states ? `: now ${answer.alarm_states[request.alarm]}` : "";
    document.getElementById("action-status").textContent = `${label}: ${answer.status}${state}.`;
  } catch (error) {
    document.getElementById("action-status").textContent = `${label}: not done.`;
    failed(error, "action");
  } finally {
    buttons.forEach((button) => (button.disabled = false));
  }
  await refresh();
}

function failed(error, kind) {
  if (error instanceof ApiError && error.status === 401) {
    signOutLocally();
    route(false);
    notice("Your sign-in has expired: sign in again.");
    return;
  }
  if (error instanceof ApiError && error.status === 404 && motorId()) {
    window.history.replaceState(null, "", "#/");
    shown = "";
    refresh().then(() => notice(`${error.message}: here is the fleet.`, "missing"));
    return;
  }
  notice(`${error.message}${kind === "stale" ? " (the page shows the last data it could read; it keeps trying)" : ""}`, kind);
}

function startRefresh() {
  stopRefresh();
  const seconds = Number(config.refresh_seconds) || DEFAULT_REFRESH_S;
  timer = window.setInterval(() => document.hidden || document.getElementById("confirm").open || refresh(), seconds * 1000);
}

function stopRefresh() {
  if (timer !== null) window.clearInterval(timer);
  timer = null;
}

function show(view) {
  for (const name of VIEWS) document.getElementById(name).hidden = name !== view;
}

function updated(id) {
  document.getElementById(id).textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function notice(text, kind = "") {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

main();
