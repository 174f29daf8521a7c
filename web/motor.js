// The motor page: state, drivers in words, each alarm with the actions that apply, charts of the last hours.

import { drawCharts } from "./charts.js";
import { el, facts, stateBadge } from "./dom.js";
import { probability } from "./fleet.js";
import { ACTION_LABEL, SNOOZE_CHOICES, VERDICTS, ago, alarmActions, clock, driverWords, humanize, takesVerdict } from "./words.js";

/** The signals charted, in this order, when the history holds them (at most MAX_SIGNAL_CHARTS). */
const MAIN_SIGNALS = ["vibration_mm_s", "bearing_temp_c", "winding_temp_c", "fluid_temp_c", "current_a", "pressure_bar", "flow_m3h", "speed_rpm"];
const MAX_SIGNAL_CHARTS = 4;

/**
 * Fills the motor page from GET /motors/{id}. `canAct`: the user is an operator (a viewer sees no buttons);
 * `onAction(request, label)`: called with the action's body once the user confirmed it.
 */
export function renderMotor(motor, { canAct, onAction }) {
  document.getElementById("motor-title").textContent = motor.motor_id;
  facts(document.getElementById("motor-facts"), [
    ["Type", motor.motor_type || "—"],
    ["Running", motor.running ? "yes" : "no"],
    ["Failure probability (24 h)", probability(motor.failure_probability)],
    ["Last reading", `${ago(motor.last_reading_at)} (${clock(motor.last_reading_at)})`],
    ["Run hours", typeof motor.run_hours === "number" ? motor.run_hours.toFixed(1) : "—"],
    ["Last service", clock(motor.last_service_at)],
  ]);
  const drivers = (motor.drivers || []).map(driverWords);
  document.getElementById("motor-drivers").textContent = drivers.length
    ? `What drives the failure probability up most: ${drivers.join("; ")}.`
    : "The model names no drivers for this motor's latest reading.";

  const alarms = motor.alarms || [];
  document.getElementById("motor-alarms").replaceChildren(
    ...(alarms.length ? alarms.map((alarm) => alarmItem(motor, alarm, canAct, onAction)) : [el("li", { class: "empty" }, "No alarm is configured.")]),
  );
  const motorActions = canAct ? motor.motor_actions || ["service_complete", "report_failure"] : [];
  document.getElementById("motor-actions").replaceChildren(
    ...motorActions.map((action) =>
      el("button", { type: "button", class: "quiet", "data-action": action, "data-key": `motor:${action}`, onclick: () => confirmMotorAction(motor, action, onAction) }, ACTION_LABEL[action] || action),
    ),
  );
  facts(
    document.getElementById("motor-reading"),
    Object.entries(motor.readings || {}).map(([name, value]) => [humanize(name), typeof value === "number" ? String(Math.round(value * 100) / 100) : String(value)]),
  );
}

function alarmItem(motor, alarm, canAct, onAction) {
  const actions = canAct ? alarm.actions || alarmActions(alarm.state) : [];
  const since = alarm.state === "SNOOZED" && alarm.snoozed_until ? `until ${clock(alarm.snoozed_until)}` : alarm.active_since ? `since ${clock(alarm.active_since)}` : "";
  return el(
    "li",
    { class: "alarm", "data-alarm": alarm.name, "data-state": alarm.state },
    el("span", { class: "name" }, humanize(alarm.name)),
    stateBadge(alarm.state),
    el("span", { class: "since" }, [alarm.kind, alarm.severity, since].filter(Boolean).join(" · ")),
    el(
      "span",
      { class: "actions" },
      actions.map((action) =>
        el(
          "button",
          {
            type: "button",
            class: action === "disable" ? "quiet" : null,
            "data-action": action,
            "data-key": `${alarm.name}:${action}`,
            "aria-label": `${ACTION_LABEL[action] || action} the ${humanize(alarm.name)} alarm`,
            onclick: () => confirmAlarmAction(motor, alarm, action, onAction),
          },
          ACTION_LABEL[action] || action,
        ),
      ),
    ),
  );
}

async function confirmAlarmAction(motor, alarm, action, onAction) {
  const fields = [];
  if (action === "snooze") {
    fields.push(select("snooze_minutes", "Snooze for", SNOOZE_CHOICES.map(([minutes, words]) => [String(minutes), words]), "60"));
  }
  if (takesVerdict(action, alarm.kind)) fields.push(select("verdict", "Was the alarm right? (a label for the model)", VERDICTS, ""));
  fields.push(note());
  const label = `${ACTION_LABEL[action]} the ${humanize(alarm.name)} alarm of ${motor.motor_id}`;
  const values = await confirm(`${label}?`, `It is ${alarm.state} now. The action is recorded under your name.`, fields);
  if (!values) return;
  const request = { action, alarm: alarm.name, action_id: crypto.randomUUID() };
  if (action === "snooze") request.snooze_minutes = Number(values.snooze_minutes);
  if (values.verdict) request.verdict = values.verdict;
  if (values.note) request.note = values.note;
  onAction(request, label);
}

async function confirmMotorAction(motor, action, onAction) {
  const fields = [];
  if (action === "report_failure") {
    const modes = (motor.failure_modes || ["other"]).map((mode) => [mode, humanize(mode)]);
    fields.push(select("failure_mode", "How it failed", modes, modes[0][0]));
    const now = localInputTime(new Date());
    fields.push(el("label", {}, "When it failed", el("input", { type: "datetime-local", name: "failed_at", value: now, max: now, required: true })));
  }
  fields.push(note());
  const label = action === "report_failure" ? `Report a failure of ${motor.motor_id}` : `Record that ${motor.motor_id} was serviced`;
  const text = action === "report_failure" ? "The report labels the model's training data; no alarm changes state." : "Its run hours go back to 0 and the schedule alarm clears.";
  const values = await confirm(`${label}?`, text, fields);
  if (!values) return;
  const request = { action, action_id: crypto.randomUUID() };
  if (action === "report_failure") {
    request.failure_mode = values.failure_mode;
    request.failed_at = new Date(values.failed_at).toISOString();
  }
  if (values.note) request.note = values.note;
  onAction(request, label);
}

function select(name, label, choices, chosen) {
  const options = choices.map(([value, words]) => el("option", { value, selected: value === chosen }, words));
  return el("label", {}, label, el("select", { name }, options));
}

function note() {
  return el("label", {}, "Note (optional)", el("input", { type: "text", name: "note", maxLength: 500, autocomplete: "off" }));
}

/** The confirmation dialog: resolves to the fields' values on Confirm, null on Cancel or Escape. */
function confirm(title, text, fields) {
  const dialog = document.getElementById("confirm");
  const form = document.getElementById("confirm-form");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-fields").replaceChildren(...fields);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => resolve(dialog.returnValue === "ok" ? Object.fromEntries(new FormData(form)) : null),
      { once: true },
    );
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

function localInputTime(date) {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

/**
 * Draws the history (GET /motors/{id}/history): the probability, the main signals, the transitions.
 * `lastReadingAt`: the motor's last reading, to say how old it is when the window holds none.
 */
export function renderHistory(history, lastReadingAt) {
  const points = history.points || [];
  const times = points.map((point) => Date.parse(point.at) / 1000);
  const series = [
    {
      key: "failure_probability",
      title: "Failure probability within 24 h",
      unit: "%",
      times,
      values: points.map((point) => (typeof point.failure_probability === "number" ? point.failure_probability * 100 : null)),
      range: [0, 100],
    },
  ];
  for (const signal of MAIN_SIGNALS.filter((name) => points.some((point) => typeof (point.readings || {})[name] === "number")).slice(0, MAX_SIGNAL_CHARTS)) {
    series.push({ key: signal, title: humanize(signal), unit: "", times, values: points.map((point) => (point.readings || {})[signal] ?? null) });
  }
  const transitions = history.transitions || [];
  const marks = transitions.map((t) => ({ time: Date.parse(t.at) / 1000, state: t.to_state }));
  const container = document.getElementById("motor-charts");
  if (!points.length) {
    drawCharts(container, [], []);
    const last = lastReadingAt ? ` The last reading is from ${clock(lastReadingAt)} (${ago(lastReadingAt)}).` : "";
    container.replaceChildren(el("p", { class: "empty" }, `No reading in this period.${last}`));
    container.charts = undefined;
  } else {
    container.querySelector(":scope > p.empty")?.remove();
    drawCharts(container, series, marks);
  }
  const rows = [...transitions].reverse().map((t) =>
    el(
      "tr",
      {},
      el("td", {}, clock(t.at)),
      el("td", {}, humanize(t.alarm)),
      el("td", {}, `${t.transition}: ${t.from_state} → `, stateBadge(t.to_state)),
      el("td", {}, t.operator || "—"),
    ),
  );
  document.getElementById("transitions-rows").replaceChildren(
    ...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 4, class: "empty" }, "No alarm changed state in this period."))]),
  );
}
