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
// 4. The reply form shows how much of its files went out: it is posted
//    with XMLHttpRequest for the upload's progress, and the answer
//    replaces the page as a plain post's would.
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

function bindReplyForm() {
  const replyForm = document.querySelector("form[data-reply-form]");
  const replyProgress = document.querySelector("[data-reply-progress]");
  if (!replyForm || !replyProgress || !window.XMLHttpRequest || !window.FormData) return;
  replyForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const bar = replyProgress.querySelector("progress");
    const text = replyProgress.querySelector("[data-text]");
    const show = (pct) => {
      bar.value = pct;
      // The page renders the text for 999 per cent: put the number in.
      text.textContent = text.dataset.text.replace("999", String(pct));
    };
    replyProgress.hidden = false;
    replyForm.querySelector("button[type=submit]").disabled = true;
    show(0);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", replyForm.action);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable && e.total > 0) show(Math.floor((e.loaded * 100) / e.total));
    });
    xhr.addEventListener("load", () => {
      if (xhr.responseURL && new URL(xhr.responseURL).pathname !== new URL(replyForm.action, location.href).pathname) {
        // Redirected (no session any more): go there as the browser would.
        location.assign(xhr.responseURL);
        return;
      }
      show(100);
      document.open();
      document.write(xhr.responseText);
      document.close();
      // This module does not run again in the written page: do its steps
      // for that page here.
      document.querySelector("[data-error-summary]")?.focus();
      bindReplyForm();
    });
    // A broken connection: post the form the plain way, which shows the
    // browser's own error and keeps what was typed.
    xhr.addEventListener("error", () => replyForm.submit());
    xhr.send(new FormData(replyForm));
  });
}
bindReplyForm();
