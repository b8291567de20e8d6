// Kluis send page (an ES module). The server renders the form and is the
// authority on every check; this script adds what needs a browser:
// choosing files (drag and drop or the file input), the password strength
// meter, the mail text editor and preview, and the upload itself over tus
// (tus-js-client, vendored), which resumes after a dropped connection and,
// when the same files are chosen again, after a page reload.
//
// What survives a reload lives in sessionStorage (this tab only): the
// transfer id, its upload token and which files were done. Never the
// password or the link secret: those exist only in this page's memory.

const data = JSON.parse(document.getElementById("send-data").textContent);
const $ = (id) => document.getElementById(id);
const STATE_KEY = "kluis.send.state";
let previewTimer; // see schedulePreview

// ---------------------------------------------------------------------------
// Texts

function fmt(s, args) {
  let i = 0;
  return s.replace(/%(%|s|d)/g, (m, c) => (c === "%" ? "%" : String(args[i++])));
}
const T = (key, ...args) => fmt(data.I18n[key] ?? key, args);

function decimal(x, digits) {
  const s = x.toFixed(digits);
  return data.Decimal && data.Decimal !== "." ? s.replace(".", data.Decimal) : s;
}

// size formats like the server's locale.Printer.Size: decimal units.
function size(n) {
  if (n >= 1e9) return T("gb", decimal(n / 1e9, 2));
  if (n >= 1e6) return T("mb", decimal(n / 1e6, 1));
  if (n >= 1e3) return T("kb", decimal(n / 1e3, 0));
  return T("bytes", String(n));
}

function duration(sec) {
  if (!isFinite(sec) || sec < 0) return "";
  if (sec < 60) return T("seconds", Math.max(1, Math.round(sec)));
  if (sec < 3600) return T("minutes", Math.round(sec / 60));
  return T("hours", Math.round(sec / 3600));
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v;
    else if (v !== false && v != null) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c);
  return e;
}

// ---------------------------------------------------------------------------
// Form, files

const form = $("compose");
const maxSize = data.Limits.MaxTransferSize;
let files = []; // File objects, in order

form.hidden = false;
// What works only with this script: shown now. The native file input is
// shown as a button, its label (its "no file chosen" would sit above the
// list of chosen files); the input keeps the focus and opens the dialog.
document.querySelectorAll("[data-js-only]").forEach((x) => (x.hidden = false));
$("files-button").hidden = false;
$("files").classList.add("kluis-visually-hidden");

function fileKey(f) {
  return `${f.name}\u0000${f.size}\u0000${f.lastModified}`;
}

function addFiles(list) {
  const have = new Set(files.map(fileKey));
  for (const f of list) {
    if (!have.has(fileKey(f))) {
      files.push(f);
      have.add(fileKey(f));
    }
  }
  renderFiles();
  schedulePreview();
}

function totalSize() {
  return files.reduce((n, f) => n + f.size, 0);
}

function renderFiles() {
  const ul = $("file-list");
  ul.replaceChildren();
  files.forEach((f, i) => {
    const btn = el("button", { type: "button", class: "utrecht-button utrecht-button--subtle kluis-remove", "aria-label": T("remove_label", f.name) }, T("remove"));
    btn.addEventListener("click", () => {
      files.splice(i, 1);
      renderFiles();
      schedulePreview();
      (ul.querySelectorAll("button")[Math.min(i, files.length - 1)] || $("files")).focus();
    });
    ul.append(el("li", { class: "kluis-file" }, el("span", { class: "kluis-file__name", text: f.name }), " ", el("span", { class: "kluis-file__size", text: size(f.size) }), " ", btn));
  });
  const total = totalSize();
  const p = $("files-total");
  p.classList.toggle("kluis-over", total > maxSize);
  if (files.length === 0) {
    p.textContent = T("no_files", size(maxSize));
  } else {
    const sizes = [size(total), size(maxSize)];
    p.textContent = (files.length === 1 ? T("total_one", ...sizes) : T("total_other", files.length, ...sizes)) + (total > maxSize ? " " + T("over_limit", size(total - maxSize)) : "");
  }
}

$("files").addEventListener("change", (e) => {
  addFiles(e.target.files);
  e.target.value = "";
});
const zone = $("dropzone");
for (const ev of ["dragenter", "dragover"]) {
  zone.addEventListener(ev, (e) => {
    e.preventDefault();
    zone.classList.add("kluis-dropzone--active");
  });
}
for (const ev of ["dragleave", "drop"]) {
  zone.addEventListener(ev, () => zone.classList.remove("kluis-dropzone--active"));
}
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  if (e.dataTransfer?.files?.length) addFiles(e.dataTransfer.files);
});
// Files dropped next to the zone would otherwise open in the tab (text
// dropped into a field still works).
const isFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
window.addEventListener("dragover", (e) => isFiles(e) && e.preventDefault());
window.addEventListener("drop", (e) => isFiles(e) && e.preventDefault());

// ---------------------------------------------------------------------------
// Password

function mode() {
  return form.querySelector("input[name=password_mode]:checked")?.value || data.DefaultMode;
}

function showModePanels() {
  const m = mode();
  if ($("manual-panel")) $("manual-panel").hidden = m !== "manual";
  if ($("none-panel")) $("none-panel").hidden = m !== "none";
  schedulePreview();
}
form.querySelectorAll("input[name=password_mode]").forEach((r) => r.addEventListener("change", showModePanels));
showModePanels();

// strength estimates the guessing entropy of a password in bits: the
// character classes used, minus what common patterns give away (repeats,
// sequences, years, a word with a digit tacked on). The server's rules
// (length and a list of common passwords) decide; this only guides.
export function strength(pw) {
  if (!pw) return 0;
  let pool = 0;
  if (/[a-z]/.test(pw)) pool += 26;
  if (/[A-Z]/.test(pw)) pool += 26;
  if (/[0-9]/.test(pw)) pool += 10;
  if (/[^a-zA-Z0-9]/.test(pw)) pool += 33;
  let len = [...pw].length;
  let penalty = 0;
  penalty += (pw.match(/(.)\1{2,}/g) || []).reduce((n, m) => n + m.length - 1, 0);
  const lower = pw.toLowerCase();
  const seqs = ["abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm", "azertyuiop"];
  for (const s of seqs) {
    for (let k = 4; k <= Math.min(s.length, lower.length); k++) {
      for (let i = 0; i + k <= s.length; i++) {
        const sub = s.slice(i, i + k);
        if (lower.includes(sub) || lower.includes([...sub].reverse().join(""))) penalty = Math.max(penalty, k - 1);
      }
    }
  }
  if (/(19|20)\d\d/.test(pw)) penalty += 3;
  if (/^[A-Z]?[a-z]+[0-9!.?]{1,4}$/.test(pw)) penalty += 3;
  const common = ["wachtwoord", "password", "welkom", "geheim", "qwerty", "admin", "letmein", "zomer", "winter", "lente", "herfst"];
  for (const w of common) if (lower.includes(w)) penalty += w.length - 1;
  const effective = Math.max(1, len - penalty);
  const bits = effective * Math.log2(Math.max(pool, 10));
  if (len < 8) return 1;
  if (bits < 40) return 1;
  if (bits < 55) return 2;
  if (bits < 70) return 3;
  return 4;
}

const pwInput = $("password");
if (pwInput) {
  const update = () => {
    const s = strength(pwInput.value);
    $("strength-meter").value = s;
    $("strength-text").textContent = T("strength_" + s);
  };
  let t;
  pwInput.addEventListener("input", () => {
    // The live region speaks once typing pauses, not on every key.
    clearTimeout(t);
    t = setTimeout(update, 600);
  });
  $("password-show").addEventListener("click", (e) => {
    const show = pwInput.type === "password";
    pwInput.type = show ? "text" : "password";
    e.currentTarget.setAttribute("aria-pressed", String(show));
  });
}

// ---------------------------------------------------------------------------
// Mail text editor: bold, italic, underline, strike-through. The server
// keeps only those (and paragraphs, line breaks, lists and links) and
// escapes everything else, exactly as the mail will.

const editor = $("body");
const tools = [...document.querySelectorAll(".kluis-tool")];
if (editor) {
  document.execCommand("defaultParagraphSeparator", false, "p");
  document.execCommand("styleWithCSS", false, false);
  const sync = () => {
    for (const b of tools) {
      let on = false;
      try {
        on = document.activeElement === editor && document.queryCommandState(b.dataset.cmd);
      } catch {}
      b.setAttribute("aria-pressed", String(on));
    }
  };
  const run = (cmd) => {
    editor.focus();
    document.execCommand(cmd, false, null);
    sync();
    schedulePreview();
  };
  tools.forEach((b, i) => {
    b.addEventListener("mousedown", (e) => e.preventDefault()); // keep the selection
    b.addEventListener("click", () => run(b.dataset.cmd));
    b.addEventListener("keydown", (e) => {
      // One tab stop for the toolbar; arrows move between its buttons.
      let j = -1;
      if (e.key === "ArrowRight") j = (i + 1) % tools.length;
      if (e.key === "ArrowLeft") j = (i - 1 + tools.length) % tools.length;
      if (e.key === "Home") j = 0;
      if (e.key === "End") j = tools.length - 1;
      if (j >= 0) {
        e.preventDefault();
        tools.forEach((t, k) => (t.tabIndex = k === j ? 0 : -1));
        tools[j].focus();
      }
    });
  });
  editor.addEventListener("keydown", (e) => {
    const mod = e.ctrlKey || e.metaKey;
    if (!mod) return;
    const k = e.key.toLowerCase();
    const cmd = k === "b" ? "bold" : k === "i" ? "italic" : k === "u" ? "underline" : k === "x" && e.shiftKey ? "strikeThrough" : "";
    if (cmd) {
      e.preventDefault();
      run(cmd);
    }
  });
  // Paste as plain text: formatting from elsewhere would be dropped anyway.
  editor.addEventListener("paste", (e) => {
    e.preventDefault();
    document.execCommand("insertText", false, e.clipboardData.getData("text/plain"));
  });
  document.addEventListener("selectionchange", sync);
  editor.addEventListener("input", schedulePreview);
  editor.addEventListener("blur", sync);
}

// bodyHTML is the editor's content with only the tags the mail keeps.
function bodyHTML() {
  if (!editor || !editor.textContent.trim()) return "";
  const allowed = { B: "b", STRONG: "b", I: "i", EM: "i", U: "u", S: "s", STRIKE: "s", DEL: "s", P: "p", BR: "br", DIV: "p" };
  const out = (node) => {
    let s = "";
    for (const c of node.childNodes) {
      if (c.nodeType === Node.TEXT_NODE) {
        s += c.data.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
      } else if (c.nodeType === Node.ELEMENT_NODE) {
        const tag = allowed[c.tagName];
        if (tag === "br") s += "<br>";
        else if (tag) s += `<${tag}>${out(c)}</${tag}>`;
        else s += out(c);
      }
    }
    return s;
  };
  return out(editor);
}

// ---------------------------------------------------------------------------
// Preview: the server renders the real notification mail into a sandboxed
// frame (posted, since it holds the addresses and the text).

const previewForm = $("preview-form");
function schedulePreview() {
  clearTimeout(previewTimer);
  previewTimer = setTimeout(updatePreview, 400);
}

function recipientLang() {
  return $("lang")?.value || data.RecipientLang;
}

function updatePreview() {
  const subj = $("subject");
  const rl = recipientLang();
  if ($("subject-default")) $("subject-default").textContent = data.DefaultSubj[rl] || "";
  $("preview-subject").textContent = T("preview_subject", (subj && subj.value.trim()) || data.DefaultSubj[rl] || "");
  const v = {
    subject: subj ? subj.value : "",
    body: bodyHTML(),
    lang: rl,
    expires: $("expires").value,
    password_mode: mode(),
    has_message: $("message") && $("message").value.trim() ? "1" : "",
    show_filenames: $("show_filenames")?.checked ? "1" : "",
    files: JSON.stringify(files.map((f) => ({ Name: f.name, Size: f.size }))),
    to: $("to").value,
    cc: $("cc").value,
  };
  for (const [k, val] of Object.entries(v)) previewForm.elements.namedItem(k).value = val;
  previewForm.submit();
}
for (const id of ["subject", "message", "to", "cc", "expires"]) $(id)?.addEventListener("input", schedulePreview);
form.querySelectorAll("#lang, #show_filenames").forEach((x) => x.addEventListener("change", schedulePreview));
updatePreview();

// ---------------------------------------------------------------------------
// Errors

function clearErrors() {
  $("compose-errors").hidden = true;
  $("compose-errors-list").replaceChildren();
  form.querySelectorAll("[aria-invalid]").forEach((x) => x.removeAttribute("aria-invalid"));
  form.querySelectorAll(".utrecht-form-field-error-message").forEach((x) => {
    x.hidden = true;
    x.textContent = "";
  });
  form.querySelectorAll(".utrecht-form-field--invalid").forEach((x) => x.classList.remove("utrecht-form-field--invalid"));
}

// clearFieldError removes the error of a field the sender changed, from the
// field and from the summary (which goes when it is empty): an error that
// stays after the fix reads as if the fix did not count.
function clearFieldError(id) {
  const input = $(id);
  const msg = $(id + "-error");
  if (!input || !msg || msg.hidden) return;
  input.removeAttribute("aria-invalid");
  msg.hidden = true;
  msg.textContent = "";
  msg.closest(".utrecht-form-field")?.classList.remove("utrecht-form-field--invalid");
  for (const a of document.querySelectorAll(`#compose-errors-list a[href="#${CSS.escape(id)}"], [data-error-summary] a[href="#${CSS.escape(id)}"]`)) a.closest("li").remove();
  for (const box of [$("compose-errors"), document.querySelector("[data-error-summary]")]) {
    if (box && !box.querySelector("li")) box.hidden = true;
  }
}
form.addEventListener("input", (e) => e.target.id && clearFieldError(e.target.id));
form.addEventListener("change", (e) => {
  if (e.target.name === "password_mode") form.querySelectorAll("input[name=password_mode]").forEach((r) => clearFieldError(r.id));
  else if (e.target.id) clearFieldError(e.target.id);
});

// showErrors fills the error summary (each entry links to its field), marks
// the fields and moves the focus to the summary.
function showErrors(errors) {
  clearErrors();
  const list = $("compose-errors-list");
  for (const e of errors) {
    const target = e.field && $(e.field) ? e.field : "";
    const li = el("li", { class: "utrecht-unordered-list__item" });
    if (target) {
      const a = el("a", { class: "utrecht-link", href: "#" + target, text: e.message });
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        const f = $(target);
        f.scrollIntoView({ block: "center" });
        f.focus();
      });
      li.append(a);
      const input = $(target);
      if (input.matches("input:not([type=radio]):not([type=checkbox]), textarea, select, [contenteditable]")) input.setAttribute("aria-invalid", "true");
      const msg = $(target + "-error");
      if (msg) {
        msg.hidden = false;
        if (msg.textContent) msg.append(" ");
        msg.append(el("span", { class: "kluis-visually-hidden", text: T("error_prefix") + ": " }), e.message);
        msg.closest(".utrecht-form-field")?.classList.add("utrecht-form-field--invalid");
        const d = input.getAttribute("aria-describedby") || "";
        if (!d.includes(msg.id)) input.setAttribute("aria-describedby", (d + " " + msg.id).trim());
      }
    } else {
      li.textContent = e.message;
    }
    list.append(li);
  }
  const box = $("compose-errors");
  box.hidden = false;
  box.focus();
  box.scrollIntoView({ block: "start" });
}

// ---------------------------------------------------------------------------
// State that survives a reload (sessionStorage; no password, no link secret)

function loadState() {
  try {
    return JSON.parse(sessionStorage.getItem(STATE_KEY) || "null");
  } catch {
    return null;
  }
}
function saveState(s) {
  sessionStorage.setItem(STATE_KEY, JSON.stringify(s));
}
function clearState() {
  const s = loadState();
  sessionStorage.removeItem(STATE_KEY);
  if (s) {
    for (const k of Object.keys(sessionStorage)) if (k.startsWith("tus::kluis/" + s.id + "/")) sessionStorage.removeItem(k);
  }
}

// urlStorage keeps tus's upload addresses in sessionStorage (tus-js-client
// uses localStorage by default).
const urlStorage = {
  async findAllUploads() {
    return this._find("tus::");
  },
  async findUploadsByFingerprint(fp) {
    return this._find("tus::" + fp + "::");
  },
  async removeUpload(key) {
    sessionStorage.removeItem(key);
  },
  async addUpload(fp, upload) {
    const key = `tus::${fp}::${Math.round(Math.random() * 1e12)}`;
    sessionStorage.setItem(key, JSON.stringify(upload));
    return key;
  },
  _find(prefix) {
    const out = [];
    for (const k of Object.keys(sessionStorage)) {
      if (!k.startsWith(prefix)) continue;
      try {
        const u = JSON.parse(sessionStorage.getItem(k));
        u.urlStorageKey = k;
        out.push(u);
      } catch {}
    }
    return out;
  },
};

// ---------------------------------------------------------------------------
// Submit, upload, finish

let current = null; // {state, password, linkSecret, uploads: [], cancelled}

function gather() {
  const v = (id) => ($(id) ? $(id).value : "");
  return {
    to: v("to"),
    cc: v("cc"),
    bcc: v("bcc"),
    message: v("message"),
    subject: v("subject"),
    reference: v("reference"),
    body: bodyHTML(),
    expires: v("expires"),
    lang: recipientLang(),
    confirm: !!$("confirm")?.checked,
    notify_download: !!$("notify_download")?.checked,
    notify: $("notify")?.value || "",
    show_filenames: !!$("show_filenames")?.checked,
    password_mode: mode(),
    password: mode() === "manual" ? v("password") : "",
    files: files.map((f) => ({ Name: f.name, Size: f.size })),
    recipient_login: v("recipient_login"),
    recipient_phone: v("recipient_phone"),
    special_data: !!$("special_data")?.checked,
  };
}

// linesFor keeps the lines of the login or SMS field about one address
// (as the server's authLinesFor): each separate transfer carries only its
// own recipient's choice.
function linesFor(text, addr) {
  return text
    .split("\n")
    .filter((l) => l.trim().split(/[=\s]/)[0].toLowerCase() === addr.trim().toLowerCase())
    .map((l) => l.trim())
    .join("\n");
}

// The form's only submit button is Next: Enter in a one-line field
// reaches the review, never the start. The review is the server's (the
// same check and page as without this script); only its Start button
// creates the transfer.
let reviewed = null; // {req, separate: [addresses], choose}

async function review(privacy) {
  clearErrors();
  $("compose-status").hidden = true;
  const req = { ...gather(), privacy: privacy || "" };
  // Quick checks the server repeats.
  const local = [];
  if (!files.length && !req.message.trim()) local.push({ field: "files", message: T("error_files_needed") });
  if (totalSize() > maxSize) local.push({ field: "files", message: T("over_limit", size(totalSize() - maxSize)) });
  if (local.length) return showReviewErrors(local);
  $("next").disabled = true;
  let resp, body;
  try {
    resp = await fetch("/send/review", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req), credentials: "same-origin" });
    body = await resp.json();
  } catch {
    return showReviewErrors([{ field: "", message: T("error_network") }]);
  } finally {
    $("next").disabled = false;
  }
  if (!resp.ok) return showReviewErrors(body.errors || [{ message: T("error_generic") }]);
  reviewed = { req, separate: body.separate || [], choose: !!body.choose };
  $("review-content").innerHTML = body.html; // the server's template, escaped there
  $("review-content").dataset.privacy = req.privacy;
  $("review-content").querySelectorAll("input[name=privacy]").forEach((r) => r.addEventListener("change", () => review(r.value)));
  form.hidden = true;
  $("step-compose").hidden = true;
  $("review").hidden = false;
  if (privacy) $("privacy-" + privacy)?.focus();
  else $("review-heading").focus();
}

// showReviewErrors shows errors of the review at the form's fields.
function showReviewErrors(errors) {
  $("review").hidden = true;
  form.hidden = false;
  $("step-compose").hidden = false;
  showErrors(errors);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  review("");
});

$("review-back").addEventListener("click", () => {
  $("review").hidden = true;
  form.hidden = false;
  $("step-compose").hidden = false;
  $("send-heading").setAttribute("tabindex", "-1");
  $("send-heading").focus();
});

$("start").addEventListener("click", async () => {
  const req = reviewed.req;
  if (reviewed.choose && !req.privacy) {
    const msg = $("privacy-error");
    msg.replaceChildren(el("span", { class: "kluis-visually-hidden", text: T("error_prefix") + ": " }), T("privacy_choose"));
    msg.hidden = false;
    $("privacy").setAttribute("aria-describedby", "privacy-text privacy-error");
    $("privacy-bcc").focus();
    return;
  }
  // One transfer per recipient: one request per address, each with its
  // own password or link; the same files, message and options.
  const reqs = req.privacy === "separate"
    ? reviewed.separate.map((a) => ({ ...req, to: a, cc: "", bcc: "", privacy: "", recipient_login: linesFor(req.recipient_login, a), recipient_phone: linesFor(req.recipient_phone, a) }))
    : [req];
  $("start").disabled = true;
  const made = [];
  let failure = null;
  for (const r of reqs) {
    try {
      const resp = await fetch("/send/transfer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(r), credentials: "same-origin" });
      const body = await resp.json();
      if (!resp.ok) {
        failure = body.errors || [{ message: T("error_generic") }];
        break;
      }
      made.push(newRun(r, body));
    } catch {
      failure = [{ field: "", message: T("error_network") }];
      break;
    }
  }
  $("start").disabled = false;
  if (failure) {
    // All or nothing: drafts made before the failure are revoked.
    for (const run of made) await revokeDraft(run.state);
    return showReviewErrors(failure);
  }
  // A no-password transfer cannot be finished without its link secret,
  // which is never stored: after a reload it starts anew. Several
  // transfers at once are not resumed after a reload either.
  if (made.length === 1 && made[0].state.mode !== "none") saveState(made[0].state);
  startAll(made, files);
});

function newRun(req, body) {
  const state = {
    id: body.id,
    token: body.upload_token,
    url: body.upload_url,
    mode: req.password_mode,
    files: files.map((f) => ({ name: f.name, size: f.size, lastModified: f.lastModified, type: f.type, done: false })),
    summary: {
      recipients: body.recipients,
      expires: body.expires_text,
      sent: body.sent_text || "",
      reference: (req.reference || "").trim(),
      lang: req.lang,
      message: !!req.message.trim(),
      confirm: req.confirm,
      notify: req.notify_download,
      filenames: req.show_filenames,
    },
  };
  return { state, password: body.password || "", linkSecret: body.link_secret || "" };
}

async function revokeDraft(state) {
  try {
    await fetch(`/api/v1/transfers/${encodeURIComponent(state.id)}/revoke`, {
      method: "POST",
      headers: { Authorization: "Bearer " + state.token, "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
    });
  } catch {}
}

let runs = []; // every transfer of this start, in order

async function startAll(all, fileObjs) {
  runs = all;
  for (let i = 0; i < all.length; i++) {
    $("transfer-of").textContent = all.length > 1 ? T("transfer_of", i + 1, all.length) + ": " + all[i].state.summary.recipients.map((r) => r.address).join(", ") : "";
    if (!(await start(all[i], fileObjs))) return;
    all[i].finished = true;
    all[i].result = current.result;
  }
  clearState();
  showSummary();
}

// start uploads one transfer's files and finishes it; false when it was
// cancelled or failed (the form shows why).
async function start(run, fileObjs) {
  current = { ...run, uploads: [], cancelled: false };
  form.hidden = true;
  $("review").hidden = true;
  $("resume-notice").hidden = true;
  $("progress").hidden = false;
  $("gen-password-box").hidden = !run.password;
  $("gen-password").textContent = run.password;
  $("progress-heading").focus();
  try {
    await upload(fileObjs);
    return !current.cancelled;
  } catch (err) {
    if (current?.cancelled) return false;
    if (err.refused) {
      // The malware scan refused a file: the server removed it and sent
      // nothing. This start is cancelled (its drafts revoked, as the
      // Cancel button does), so nothing goes out that the sender did not
      // choose again; the form keeps the files, and the sender removes
      // the one named and chooses Next.
      await revokeDraft(current.state);
      for (const r of runs) if (!r.finished && r.state.id !== current.state.id) await revokeDraft(r.state);
      clearState();
    }
    $("progress").hidden = true;
    form.hidden = false;
    $("step-compose").hidden = false;
    showErrors([{ field: err.refused ? "files" : "", message: err.message || T("error_generic") }]);
    return false;
  }
}

async function upload(fileObjs) {
  const st = current.state;
  const ul = $("upload-list");
  ul.replaceChildren();
  const total = st.files.reduce((n, f) => n + f.size, 0);
  let doneBytes = st.files.reduce((n, f) => n + (f.done ? f.size : 0), 0);
  const bars = st.files.map((f, i) => {
    const bar = el("progress", { max: "100", value: f.done ? "100" : "0", id: "up-" + i, "aria-label": f.name });
    const txt = el("span", { class: "kluis-upload__text", text: f.done ? T("file_progress", f.name, 100, size(f.size), size(f.size)) : T("file_waiting", f.name, size(f.size)) });
    ul.append(el("li", { class: "kluis-upload" }, txt, bar));
    return { bar, txt };
  });
  // Speed over the last few seconds, for the time left.
  const samples = [];
  let lastSpoken = 0;
  const report = (sent, force) => {
    const now = performance.now();
    samples.push([now, sent]);
    while (samples.length > 2 && now - samples[0][0] > 5000) samples.shift();
    const [t0, b0] = samples[0];
    const rate = now > t0 + 500 ? ((sent - b0) * 1000) / (now - t0) : 0;
    const pct = total ? Math.floor((sent * 100) / total) : 100;
    $("total-progress").value = pct;
    // Nothing sent yet reads as waiting, not as "0 bytes of 42 kB".
    const totalText = () => (sent > 0 ? T("total_progress", pct, size(sent), size(total)) : T("total_waiting", size(total)));
    let text = totalText();
    if (rate > 0 && sent < total) text += " · " + T("speed", size(rate)) + " · " + T("left", duration((total - sent) / rate));
    $("total-text").textContent = text;
    // Screen readers hear the progress every 15 seconds, not every chunk.
    if (force || now - lastSpoken > 15000) {
      lastSpoken = now;
      $("progress-live").textContent = totalText();
    }
  };
  report(doneBytes, true);
  for (let i = 0; i < st.files.length; i++) {
    const meta = st.files[i];
    if (meta.done) continue;
    const file = fileObjs[i];
    await new Promise((resolve, reject) => {
      const up = new window.tus.Upload(file, {
        endpoint: new URL(st.url, location.href).href,
        headers: { Authorization: "Bearer " + st.token },
        metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
        // Requests of a bounded size: when a connection drops, the browser
        // itself may resend the request it was on (before tus asks the
        // server where to go on), and whatever it resends is wasted. Small
        // requests bound that waste; at most ~200 per file keeps the
        // round trips and the server's segments per file few.
        chunkSize: Math.min(64 << 20, Math.max(2 << 20, Math.ceil(file.size / 200))),
        retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000, 30000, 30000],
        storeFingerprintForResuming: true,
        removeFingerprintOnSuccess: true,
        urlStorage,
        fingerprint: async (f) => ["kluis", st.id, i, f.name, f.size, f.lastModified].join("/"),
        onProgress(sent, of) {
          const pct = of ? Math.floor((sent * 100) / of) : 100;
          bars[i].bar.value = pct;
          bars[i].txt.textContent = T("file_progress", meta.name, pct, size(sent), size(of));
          report(doneBytes + sent);
        },
        onShouldRetry(err, attempt, options) {
          const status = err?.originalResponse ? err.originalResponse.getStatus() : 0;
          if (status === 401 || status === 403 || status === 404 || status === 410 || status === 413) return false;
          // A quota refusal does not pass by retrying within minutes.
          if (status === 429 && /quota_exceeded|ERR_QUOTA_EXCEEDED/.test(err.originalResponse.getBody() || "")) return false;
          $("progress-live").textContent = T("retrying");
          return true;
        },
        onError(err) {
          if (current?.cancelled) return resolve();
          const status = err?.originalResponse ? err.originalResponse.getStatus() : 0;
          let msg = T("error_network");
          if (status === 401) msg = T("error_session");
          else if (status) {
            let detail = "";
            try {
              detail = JSON.parse(err.originalResponse.getBody()).error.message;
            } catch {
              detail = err.originalResponse.getBody() || String(status);
            }
            msg = T("error_upload", meta.name, detail);
          }
          reject(new Error(msg));
        },
        onSuccess() {
          meta.done = true;
          doneBytes += meta.size;
          if (current.state.mode !== "none") saveState(current.state);
          bars[i].bar.value = 100;
          bars[i].txt.textContent = T("file_progress", meta.name, 100, size(meta.size), size(meta.size));
          report(doneBytes, true);
          resolve();
        },
      });
      current.uploads.push(up);
      up.findPreviousUploads().then((prev) => {
        if (prev.length) up.resumeFromPreviousUpload(prev[0]);
        up.start();
      });
    });
    if (current.cancelled) return;
  }
  // The server checks the files for viruses at finish, before anyone is
  // notified: for a large file that takes a while.
  if (data.Scans) {
    st.files.forEach((f, i) => (bars[i].txt.textContent = T("file_checking", f.name)));
    $("total-text").textContent = T("checking");
    $("progress-live").textContent = T("checking");
  }
  await finish();
}

async function finish() {
  const st = current.state;
  const resp = await fetch(`/api/v1/transfers/${encodeURIComponent(st.id)}/finish`, {
    method: "POST",
    headers: { Authorization: "Bearer " + st.token, "Content-Type": "application/json" },
    body: JSON.stringify(current.linkSecret ? { link_secret: current.linkSecret } : {}),
    credentials: "same-origin",
  });
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    // The malware scan runs at finish; its answers have their own texts,
    // naming the refused file (error.file, from 1, in upload order).
    const e = body?.error || {};
    if (e.code === "infected" || e.code === "too_large_to_scan") {
      const f = st.files[e.file - 1];
      const err = new Error(
        f ? (e.code === "infected" ? T("error_infected_file", f.name, e.finding || "?") : T("error_unscannable_file", f.name)) : T(e.code === "infected" ? "error_infected" : "error_unscannable"),
      );
      err.refused = true;
      throw err;
    }
    throw new Error(resp.status === 401 ? T("error_session") : T(e.code === "scan_pending" ? "error_scan_pending" : "error_finish"));
  }
  // "scanning": the virus check could not run (fail-closed); the
  // transfer waits and its mails are held until it has run.
  current.result = { state: body?.state || "ready", unscanned: (body?.unscanned_files || []).map((n) => st.files[n - 1]?.name).filter(Boolean) };
}

function showSummary() {
  const st = current.state;
  const s = st.summary;
  $("progress").hidden = true;
  $("summary").hidden = false;
  if (runs.length > 1 && runs.some((r) => r.password)) {
    // One password per transfer: each with the address it is for.
    $("summary-password").replaceChildren(
      ...runs.map((r) =>
        el("span", { class: "kluis-password-line" }, el("span", { class: "kluis-password-for", text: T("summary_transfer", r.state.summary.recipients.map((x) => x.address).join(", ")) + ": " }), r.password),
      ),
    );
    $("summary-password-box").hidden = false;
  } else if (current.password) {
    $("summary-password").textContent = current.password;
    $("summary-password-box").hidden = false;
  }
  const dl = $("summary-list");
  dl.replaceChildren();
  const row = (key, ...values) => {
    dl.append(el("dt", { text: document.querySelector(`[data-sum="${key}"]`)?.textContent || key }));
    const dd = el("dd");
    if (values.length > 1) {
      const ul = el("ul", { class: "utrecht-unordered-list" });
      for (const v of values) ul.append(el("li", { class: "utrecht-unordered-list__item", text: v }));
      dd.append(ul);
    } else {
      dd.textContent = values[0] ?? "";
    }
    dl.append(dd);
  };
  const yn = (b) => (b ? T("yes") : T("no"));
  const me = data.Sender;
  row("sender", [me.name, me.email, me.phone].filter(Boolean).join(", "));
  // The print view is what a sender files: when, and under which reference.
  if (s.sent) row("sent", s.sent);
  if (s.reference) row("reference", s.reference);
  const all = runs.length > 1 ? runs.flatMap((r) => r.state.summary.recipients) : s.recipients;
  row("recipients", ...all.map((r) => `${T("kind_" + r.kind)}: ${r.address}`));
  if (st.files.length) row("files", ...st.files.map((f) => `${f.name} (${size(f.size)})`));
  row("message", yn(s.message));
  row("expires", s.expires);
  row("lang", [...$("lang").options].find((o) => o.value === s.lang)?.textContent || s.lang);
  row("password", st.mode === "generate" && !current.password ? T("pw_generate_shown") : T("pw_" + st.mode));
  row("confirm", yn(s.confirm));
  row("notify", yn(s.notify));
  row("filenames", yn(s.filenames));
  showScanStatus();
  $("summary-heading").focus();
}

// showScanStatus shows on the summary what the virus check did: files
// sent without it (fail-open), or a transfer that waits for it, whose
// outcome this page then asks for now and then. The link to the
// transfer's status page works without this script.
function showScanStatus() {
  const unscanned = [...new Set(runs.flatMap((r) => r.result?.unscanned || []))];
  if (unscanned.length) {
    const ul = el("ul", { class: "utrecht-unordered-list" });
    for (const n of unscanned) ul.append(el("li", { class: "utrecht-unordered-list__item", text: n }));
    $("summary-unscanned-list").replaceChildren(ul);
    $("summary-unscanned").hidden = false;
  }
  const waiting = runs.filter((r) => r.result?.state === "scanning");
  if (!waiting.length) return;
  $("summary-heading").textContent = T("summary_heading_checking");
  $("summary-intro").textContent = T("summary_checking");
  $("summary-status-link").href = runs.length > 1 ? "/transfers" : "/transfers/" + encodeURIComponent(runs[0].state.id);
  $("summary-status").hidden = false;
  pollScan(waiting, 5000);
}

async function pollScan(waiting, delay) {
  await new Promise((r) => setTimeout(r, delay));
  for (const r of waiting) {
    try {
      const resp = await fetch(`/api/v1/transfers/${encodeURIComponent(r.state.id)}`, { headers: { Authorization: "Bearer " + r.state.token }, credentials: "same-origin" });
      if (resp.status === 401 || resp.status === 404 || resp.status === 410) {
        // The token ends when the content is erased: while it waited,
        // that happens only to a transfer that was not sent.
        r.result.state = "failed";
        continue;
      }
      if (!resp.ok) throw new Error(String(resp.status));
      r.result.state = (await resp.json()).state;
    } catch {
      return pollScan(waiting, Math.min(delay * 2, 60000));
    }
  }
  // Ready: checked and sent. Failed (or revoked, expired meanwhile):
  // nothing went out.
  let key = "";
  if (waiting.some((r) => r.result.state !== "scanning" && r.result.state !== "ready")) key = "failed";
  else if (waiting.every((r) => r.result.state === "ready")) key = "done";
  if (!key) return pollScan(waiting, Math.min(delay * 2, 60000));
  $("summary-heading").textContent = T(key === "done" ? "summary_heading_done" : "summary_heading_failed");
  $("summary-intro").textContent = T(key === "done" ? "summary_checked" : "summary_failed");
  $("summary-scan-live").textContent = $("summary-heading").textContent + ". " + $("summary-intro").textContent;
}

// Copy buttons (generated password).
document.querySelectorAll("[data-copy]").forEach((b) =>
  b.addEventListener("click", async () => {
    const status = b.closest(".utrecht-alert__content").querySelector("[data-copy-status]");
    try {
      await navigator.clipboard.writeText($(b.dataset.copy).textContent);
      status.textContent = T("copied");
    } catch {
      const r = document.createRange();
      r.selectNodeContents($(b.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(r);
      status.textContent = T("copy_failed");
    }
  }),
);

$("print").addEventListener("click", () => window.print());
$("new-transfer").addEventListener("click", () => {
  clearState();
  location.assign("/send");
});

$("cancel").addEventListener("click", async () => {
  if (!current || !confirm(T("cancel_confirm"))) return;
  current.cancelled = true;
  for (const u of current.uploads) {
    try {
      await u.abort(true);
    } catch {}
  }
  // Revoke the draft so nothing of it stays (the engine deletes it), and
  // the drafts of the transfers not started yet; finished ones went out.
  await revokeDraft(current.state);
  for (const r of runs) if (!r.finished && r.state.id !== current.state.id) await revokeDraft(r.state);
  clearState();
  current = null;
  $("progress").hidden = true;
  $("gen-password-box").hidden = true;
  form.hidden = false;
  $("step-compose").hidden = false;
  clearErrors();
  $("compose-status-text").textContent = T("cancelled");
  $("compose-status").hidden = false;
  $("compose-status").focus();
});

// ---------------------------------------------------------------------------
// After a reload: offer to continue with the same files.

const saved = loadState();
if (saved && saved.id && saved.token) {
  const notice = $("resume-notice");
  notice.hidden = false;
  form.hidden = true;
  const names = el("ul", { class: "utrecht-unordered-list" });
  for (const f of saved.files) names.append(el("li", { class: "utrecht-unordered-list__item", text: `${f.name} (${size(f.size)})` }));
  $("resume-text").after(names);
  $("resume-files").addEventListener("change", (e) => {
    const chosen = [...e.target.files];
    const matched = [];
    for (const f of saved.files) {
      const m = chosen.find((c) => c.name === f.name && c.size === f.size && (!f.lastModified || c.lastModified === f.lastModified));
      if (!m && !f.done) {
        e.target.value = "";
        return showErrors([{ field: "resume-files", message: T("resume_mismatch", f.name) }]);
      }
      matched.push(m);
    }
    clearErrors();
    startAll([{ state: saved, password: "", linkSecret: "" }], matched);
  });
  $("resume-discard").addEventListener("click", async () => {
    try {
      await fetch(`/api/v1/transfers/${encodeURIComponent(saved.id)}/revoke`, {
        method: "POST",
        headers: { Authorization: "Bearer " + saved.token, "Content-Type": "application/json" },
        body: "{}",
        credentials: "same-origin",
      });
    } catch {}
    clearState();
    location.assign("/send");
  });
  notice.focus();
}
