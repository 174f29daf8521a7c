// The fleet page: every motor, most at risk first, with its alarm states at a glance.

import { el, stateBadge } from "./dom.js";
import { ago, clock, driverWords, humanize, percent, STATE_RANK } from "./words.js";

/** Fills the fleet table from GET /motors (all pages); the API's order is kept (riskiest first). */
export function renderFleet({ motors, partial }) {
  const rows = document.getElementById("fleet-rows");
  if (!motors.length) {
    rows.replaceChildren(el("tr", {}, el("td", { colSpan: 6, class: "empty" }, "No motor has reported yet.")));
  } else {
    rows.replaceChildren(...motors.map(row));
  }
  renderSummary(motors, partial);
}

function row(motor) {
  const states = Object.entries(motor.alarm_states || {}).filter(([, state]) => state !== "NORMAL");
  states.sort(([, a], [, b]) => (STATE_RANK[b] ?? 0) - (STATE_RANK[a] ?? 0));
  const alarms = states.length
    ? states.map(([name, state]) => stateBadge(state, humanize(name)))
    : [stateBadge("NORMAL", "all alarms")];
  const drivers = (motor.drivers || []).slice(0, 3).map(driverWords).join(", ");
  return el(
    "tr",
    { "data-motor": motor.motor_id, "data-worst": motor.worst_alarm ? motor.worst_alarm.state : "NORMAL" },
    el(
      "td",
      { class: "motor" },
      el("a", { href: `#/motors/${encodeURIComponent(motor.motor_id)}` }, motor.motor_id),
      el("div", { class: "updated" }, motor.motor_type || ""),
    ),
    el("td", {}, alarms),
    el("td", {}, probability(motor.failure_probability)),
    el("td", { class: "wide" }, drivers || "—"),
    el("td", {}, motor.running === null || motor.running === undefined ? "—" : motor.running ? "yes" : "no"),
    el("td", { class: "wide", title: clock(motor.last_reading_at) }, ago(motor.last_reading_at)),
  );
}

/** The probability as a number and a meter (a meter alone says nothing to a screen reader without its text). */
export function probability(value) {
  if (typeof value !== "number") return el("span", { class: "probability" }, "not scored");
  return el(
    "span",
    { class: "probability" },
    el("meter", { min: 0, max: 1, low: 0.3, high: 0.5, optimum: 0, value, "aria-hidden": "true" }),
    el("span", {}, percent(value)),
  );
}

function renderSummary(motors, partial) {
  const counts = {};
  for (const motor of motors) {
    const state = motor.worst_alarm ? motor.worst_alarm.state : "NORMAL";
    counts[state] = (counts[state] || 0) + 1;
  }
  const order = Object.keys(STATE_RANK).sort((a, b) => STATE_RANK[b] - STATE_RANK[a]);
  const chips = order
    .filter((state) => counts[state])
    .map((state) => el("span", { class: `state state-${state}` }, `${counts[state]} ${state}`));
  const total = el("span", {}, `${motors.length} motors${partial ? " (first pages only)" : ""}:`);
  document.getElementById("fleet-summary").replaceChildren(total, ...chips);
}
