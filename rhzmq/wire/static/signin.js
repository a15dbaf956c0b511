"use strict";
// Exchanges a token for the session cookie (POST <base>/session), then opens the UI at <base>:
// the registry's base is "", a gateway's live view's "/ui" (the page's data-base says which).
const base = document.body.dataset.base || "";
document.getElementById("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  const error = document.getElementById("signin-error");
  error.textContent = "";
  try {
    const r = await fetch(base + "/session", {
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
    location.assign(base || "/");
  } catch (e) {
    error.textContent = e.message;
    field.focus();
  }
});
