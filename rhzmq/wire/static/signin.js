"use strict";
// Exchanges a token for the session cookie (POST /session), then opens the UI.
document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  const error = document.getElementById("signin-error");
  error.textContent = "";
  try {
    const r = await fetch("/session", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({token: field.value}),
    });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || "sign-in failed (" + r.status + ")");
    }
    field.value = "";
    location.assign("/");
  } catch (e) {
    error.textContent = e.message;
    field.focus();
  }
});
