// Kluis sender-details page: "remember my details on this device". The
// details (name, e-mail address, phone; no secrets) are kept in this
// browser's localStorage only when the sender asks, and filled in next time.
// Nothing of this reaches the server except through the form itself.
const form = document.querySelector("form[data-remember-form]");
const KEY = "kluis.sender.details";
if (form) {
  const box = form.querySelector("[data-remember]");
  form.querySelector("[data-remember-field]").hidden = false;
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(KEY) || "null");
  } catch {}
  if (saved) {
    box.checked = true;
    for (const k of ["name", "email", "phone"]) {
      const input = form.elements.namedItem(k);
      // What the server sent back (after an error) wins.
      if (input && !input.value && typeof saved[k] === "string") input.value = saved[k];
    }
  }
  form.addEventListener("submit", () => {
    try {
      if (box.checked) {
        const v = (k) => form.elements.namedItem(k).value.trim();
        localStorage.setItem(KEY, JSON.stringify({ name: v("name"), email: v("email"), phone: v("phone") }));
      } else {
        localStorage.removeItem(KEY);
      }
    } catch {}
  });
}
