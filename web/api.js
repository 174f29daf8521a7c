// The console API: GET the fleet, a motor and its history; POST an operator action. Bearer token on every call.

import { apiBase, bearer } from "./auth.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const MAX_PAGES = 50; // a fleet of thousands; past that the table says it is partial

export function createApi(config) {
  async function call(method, path, body) {
    const token = await bearer(config);
    if (!token) throw new ApiError(401, "signed out");
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(new URL(path, apiBase(config)), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const reason = payload && (payload.message || payload.error || payload.reason);
      throw new ApiError(response.status, reason || `the API answered ${response.status}`);
    }
    return payload;
  }

  return {
    /** Every motor, most at risk first, following the API's pages. */
    async fleet() {
      const motors = [];
      let next = null;
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const query = next ? `?next_token=${encodeURIComponent(next)}` : "";
        const answer = await call("GET", `motors${query}`);
        motors.push(...(answer.motors || answer.items || []));
        next = answer.next_token || answer.next || null;
        if (!next) return { motors, partial: false };
      }
      return { motors, partial: true };
    },
    motor(id) {
      return call("GET", `motors/${encodeURIComponent(id)}`);
    },
    history(id, hours) {
      return call("GET", `motors/${encodeURIComponent(id)}/history?hours=${encodeURIComponent(hours)}`);
    },
    act(id, action) {
      return call("POST", `motors/${encodeURIComponent(id)}/actions`, action);
    },
  };
}
