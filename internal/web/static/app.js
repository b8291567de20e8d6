// Kluis page script (an ES module; the pages work without it).
//
// 1. An error summary gets the focus, so screen readers announce it and
//    keyboard users start there.
// 2. A no-password link carries its secret in the #fragment, which browsers
//    never send to the server. Take it from there, remove it from the
//    address bar and history, and post it in the body of the form.
// 3. A password field gets a Show button (a toggle: its name stays, its
//    aria-pressed state says whether the password is shown), so a recipient
//    can check what they typed from a dictated password.
const summary = document.querySelector("[data-error-summary]");
if (summary) {
  summary.focus();
}

const form = document.querySelector("form[data-fragment-form]");
if (form && !summary) {
  const secret = decodeURIComponent(location.hash.replace(/^#/, ""));
  if (secret) {
    history.replaceState(null, "", location.pathname + location.search);
    form.elements.namedItem("secret").value = secret;
    document.querySelector("[data-opening]")?.classList.remove("kluis-hidden");
    form.classList.add("kluis-hidden");
    form.submit();
  }
}

for (const box of document.querySelectorAll("[data-show-password]")) {
  const button = box.querySelector("button");
  const input = document.getElementById(button?.getAttribute("aria-controls") ?? "");
  if (!input) {
    continue;
  }
  box.hidden = false;
  button.addEventListener("click", () => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", String(show));
  });
}
