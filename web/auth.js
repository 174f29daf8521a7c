// Sign-in: authorization code with PKCE, against Cognito's hosted pages in AWS or the local stack's on one machine.
// Tokens live in sessionStorage: they end with the tab, and no other site can read them.

const TOKENS = "console.tokens";
const PENDING = "console.pkce";
const EARLY_S = 60; // refresh a token this long before it expires

/** The signed-in user, from the token's claims (for display only: the API checks the token itself). */
export function currentUser() {
  const tokens = load();
  if (!tokens) return null;
  const claims = decode(tokens.access_token || tokens.id_token);
  if (!claims) return null;
  const groups = claims["cognito:groups"] || [];
  return {
    name: claims.username || claims["cognito:username"] || claims.sub,
    groups,
    operator: groups.includes("operators"),
  };
}

/** The bearer token for the API, refreshed first when it is about to expire; null when signed out. */
export async function bearer(config) {
  let tokens = load();
  if (!tokens) return null;
  if (tokens.expires_at - EARLY_S * 1000 < Date.now()) {
    tokens = tokens.refresh_token ? await refresh(config, tokens.refresh_token) : null;
    if (!tokens) {
      signOutLocally();
      return null;
    }
  }
  return tokens.access_token || tokens.id_token;
}

export function signOutLocally() {
  sessionStorage.removeItem(TOKENS);
}

/** Sign out everywhere: the tokens here, and the sign-in pages' own session. */
export function signOut(config) {
  signOutLocally();
  const url = new URL(config.auth.logout_url, window.location.href);
  url.searchParams.set("client_id", config.auth.client_id);
  url.searchParams.set("logout_uri", redirectUri());
  window.location.assign(url.toString());
}

// ---- authorization code with PKCE (Cognito's hosted pages, or the local stack's) -----------------------

/** Send the browser to the sign-in pages; they come back to this page with ?code=...&state=... */
export async function startSignIn(config) {
  const verifier = randomText(48);
  const state = randomText(24);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const url = new URL(config.auth.authorize_url, window.location.href);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.auth.client_id,
    redirect_uri: redirectUri(),
    scope: config.auth.scopes || "openid email profile",
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.toString());
}

/** Finish a sign-in when the page was opened with ?code=...: true if it did. */
export async function finishSignIn(config) {
  const params = new URLSearchParams(window.location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  window.history.replaceState(null, "", redirectUri() + window.location.hash);
  if (error) throw new Error(`sign-in refused: ${params.get("error_description") || error}`);
  if (!pending || pending.state !== params.get("state")) throw new Error("sign-in answer does not match this tab's request");
  const tokens = await tokenRequest(config, {
    grant_type: "authorization_code",
    client_id: config.auth.client_id,
    code,
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  save(tokens);
  return true;
}

async function refresh(config, refreshToken) {
  try {
    const tokens = await tokenRequest(config, {
      grant_type: "refresh_token",
      client_id: config.auth.client_id,
      refresh_token: refreshToken,
    });
    tokens.refresh_token = tokens.refresh_token || refreshToken;
    save(tokens);
    return load();
  } catch {
    return null;
  }
}

async function tokenRequest(config, form) {
  const response = await fetch(new URL(config.auth.token_url, window.location.href), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form).toString(),
  });
  if (!response.ok) throw new Error(`sign-in failed: the token endpoint answered ${response.status}`);
  return response.json();
}

// ---- helpers -------------------------------------------------------------------------------------------

export function apiBase(config) {
  const base = config.api_url || window.location.origin + "/";
  return base.endsWith("/") ? base : base + "/";
}

function redirectUri() {
  return window.location.origin + window.location.pathname;
}

function save(tokens) {
  const token = tokens.access_token || tokens.id_token;
  const claims = decode(token) || {};
  const expiresAt = claims.exp ? claims.exp * 1000 : Date.now() + (tokens.expires_in || 3600) * 1000;
  sessionStorage.setItem(
    TOKENS,
    JSON.stringify({
      id_token: tokens.id_token,
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: expiresAt,
    }),
  );
}

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

/** A JWT's claims (not verified: the API verifies; the page only shows who is signed in). */
function decode(token) {
  if (typeof token !== "string") return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const text = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

function randomText(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
