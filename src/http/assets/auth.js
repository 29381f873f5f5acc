// Board sign-in (OpenID Connect), kept apart from board.js: when the server has an
// [oidc] section, shows who is signed in with a "Sign out" button (a POST carrying the
// session's CSRF token), and turns the token panel board.js shows on a 401 into a
// "Sign in" link back to the current page. Without [oidc] it changes nothing: the
// pasted-token form stays.
(() => {
  "use strict";

  let info = null;

  const returnTo = () => location.pathname + location.search;
  const loginHref = () => `/auth/login?return_to=${encodeURIComponent(returnTo())}`;

  function signInLink(id, text) {
    const link = document.createElement("a");
    link.id = id;
    link.href = loginHref();
    link.textContent = text;
    // The filters change the address: go back to the page as it is when clicked.
    link.addEventListener("click", () => { link.href = loginHref(); });
    return link;
  }

  function render() {
    if (!info || !info.sign_in) return;
    let box = document.getElementById("account");
    if (!box) {
      box = document.createElement("div");
      box.id = "account";
      box.className = "account";
      const bar = document.querySelector(".topbar");
      if (!bar) return;
      bar.appendChild(box);
    }
    box.replaceChildren();
    if (info.signed_in) {
      const who = document.createElement("span");
      who.id = "signed-in-as";
      who.textContent = `signed in as ${info.principal}`;
      const out = document.createElement("button");
      out.type = "button";
      out.id = "sign-out";
      out.className = "link";
      out.textContent = "Sign out";
      out.addEventListener("click", signOut);
      box.append(who, " ", out);
    } else {
      box.append(signInLink("sign-in-top", "Sign in"));
    }
    const panel = document.getElementById("token-panel");
    if (panel && !document.getElementById("sign-in")) {
      const line = document.createElement("p");
      line.id = "sign-in";
      line.className = "sign-in";
      line.append(signInLink("sign-in-link", "Sign in"), " with your company account.");
      const title = panel.querySelector("h2");
      if (title) title.after(line); else panel.prepend(line);
      for (const part of panel.querySelectorAll("#token-form, .hint")) part.hidden = true;
    }
  }

  async function load() {
    try {
      const response = await fetch("/auth/session", { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) return;
      info = await response.json();
    } catch {
      return;
    }
    render();
  }

  async function signOut() {
    const box = document.getElementById("account");
    try {
      const response = await fetch("/auth/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": (info && info.csrf_token) || "", Accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        if (box) box.textContent = `could not sign out: ${body.error || response.status}`;
        return;
      }
      location.assign(body.redirect || "/");
    } catch {
      if (box) box.textContent = "could not sign out: the server does not answer";
    }
  }

  // board.js shows the token panel when the API answers 401 or 403: the session may
  // have ended meanwhile, so ask again who is signed in.
  const panel = document.getElementById("token-panel");
  if (panel) {
    new MutationObserver(() => { if (!panel.hidden) load(); })
      .observe(panel, { attributes: true, attributeFilter: ["hidden"] });
  }
  load();
})();
