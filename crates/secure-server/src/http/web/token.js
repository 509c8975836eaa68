// The SAUTH2 token page: a button that copies the token, so that nobody has to select 100
// characters by hand on a phone. The token never leaves the page but to the clipboard.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  const button = document.getElementById("copy");
  const said = document.getElementById("copied");
  if (!token || !button || !said) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(token.value);
      said.textContent = "Copied. Paste it into your chat client.";
    } catch {
      // No clipboard access (an old browser, or not allowed): select it for the person.
      token.focus();
      token.select();
      said.textContent = "Selected: copy it with your browser's Copy.";
    }
  });
  token.addEventListener("focus", () => token.select());
});
