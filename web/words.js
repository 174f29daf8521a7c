// What the console says in words: alarm states, the actions that apply to each, times, drivers.

export const STATE_RANK = { ACTIVE: 5, LATCHED: 4, ACKNOWLEDGED: 3, SNOOZED: 2, DISABLED: 1, NORMAL: 0 };

export const ACTION_LABEL = {
  acknowledge: "Acknowledge",
  snooze: "Snooze",
  disable: "Disable",
  enable: "Enable",
  reset: "Reset",
  service_complete: "Service complete",
  report_failure: "Report failure",
};

// Which alarm actions apply in which state (docs/reference.md, "Operator actions"), for an API answer that
// does not list them: the API's own `actions` come first.
const APPLIES = {
  acknowledge: (state) => state === "ACTIVE" || state === "LATCHED",
  snooze: (state) => state !== "DISABLED",
  disable: (state) => state !== "DISABLED",
  reset: (state) => state === "ACTIVE" || state === "ACKNOWLEDGED" || state === "LATCHED",
  enable: (state) => state === "DISABLED",
};

/** The alarm actions that apply to an alarm in `state`, in the order the buttons show. */
export function alarmActions(state) {
  return Object.keys(APPLIES).filter((action) => APPLIES[action](state));
}

/** Whether an action on this alarm may carry a verdict (a label for training): predictive and condition alarms. */
export function takesVerdict(action, kind) {
  return (action === "acknowledge" || action === "reset") && kind !== "schedule" && kind !== "offline" && kind !== "health";
}

export const VERDICTS = [
  ["", "no verdict"],
  ["confirmed", "confirmed: the alarm was right"],
  ["false_alarm", "false alarm"],
  ["unsure", "unsure"],
];

export const SNOOZE_CHOICES = [
  [15, "15 minutes"],
  [60, "1 hour"],
  [240, "4 hours"],
  [480, "8 hours"],
  [1440, "1 day"],
  [10080, "7 days"],
];

/** The worst state among alarms, by STATE_RANK ("NORMAL" for none). */
export function worstState(states) {
  return states.reduce((worst, state) => ((STATE_RANK[state] ?? 0) > (STATE_RANK[worst] ?? 0) ? state : worst), "NORMAL");
}

/** A time as the reader's local date and time, or an em dash. */
export function clock(ts) {
  const date = toDate(ts);
  return date ? date.toLocaleString() : "—";
}

/** How long ago, in words ("3 min ago"), from `now` (ms). */
export function ago(ts, now = Date.now()) {
  const date = toDate(ts);
  if (!date) return "never";
  const seconds = Math.max(0, Math.round((now - date.getTime()) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

/** An ISO-8601 string or epoch milliseconds as a Date; null when missing or unreadable. */
export function toDate(ts) {
  if (ts === null || ts === undefined || ts === "") return null;
  const date = new Date(ts);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function percent(probability) {
  return typeof probability === "number" ? `${Math.round(probability * 100)} %` : "—";
}

/** A driver in words: the API's own words when it sends them, else the feature's name made readable. */
export function driverWords(driver) {
  if (typeof driver === "string") return driver;
  return driver.label || driver.description || humanize(driver.feature || "");
}

/** The telemetry's signals (motor_maintenance.telemetry) in words, with their units. */
export const SIGNAL_LABEL = {
  speed_rpm: "Shaft speed (rpm)",
  torque_nm: "Shaft torque (N·m)",
  current_a: "Phase current (A)",
  winding_temp_c: "Winding temperature (°C)",
  bearing_temp_c: "Bearing temperature (°C)",
  fluid_temp_c: "Fluid temperature (°C)",
  ambient_temp_c: "Ambient temperature (°C)",
  vibration_mm_s: "Vibration, RMS (mm/s)",
  pressure_bar: "Discharge pressure (bar)",
  flow_m3h: "Flow (m³/h)",
};

/** A signal's or other name made readable: a known signal's label, else "fluid_overtemperature" -> "fluid overtemperature". */
export function humanize(name) {
  if (SIGNAL_LABEL[name]) return SIGNAL_LABEL[name];
  return name
    .replace(/_c(?=_|$)/, " (°C)")
    .replace(/_mm_s(?=_|$)/, " (mm/s)")
    .replace(/_rpm(?=_|$)/, " (rpm)")
    .replace(/_nm(?=_|$)/, " (N·m)")
    .replace(/_a(?=_|$)/, " (A)")
    .replace(/_bar(?=_|$)/, " (bar)")
    .replace(/_m3h(?=_|$)/, " (m³/h)")
    .replace(/_/g, " ");
}
