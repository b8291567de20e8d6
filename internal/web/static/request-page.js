// The page of a file request (/q/{access}) and of a drop-off point
// (/to/{slug}, whose form names its base in data-base): with script, the files go
// over tus (resumable: a dropped connection or a reload with the same
// files goes on where it stopped) with progress; without script the form
// posts itself and the server streams the files.
const form = document.querySelector("form[data-request-form]");
if (form && window.tus) start(form);
else if (form) window.addEventListener("load", () => window.tus && start(form));

function start(form) {
  if (form.dataset.started) return;
  form.dataset.started = "1";
  const access = form.dataset.access;
  const base = form.dataset.base || `/q/${encodeURIComponent(access)}`;
  const box = form.querySelector("[data-request-progress]");
  const bar = box.querySelector("progress");
  const text = box.querySelector("#request-progress-text");
  const errBox = form.querySelector("#request-error");
  const button = form.querySelector("button[type=submit]");
  const say = (pct) => form.dataset.progress.replace("999", String(pct));
  const fail = (msg) => {
    errBox.textContent = msg;
    errBox.hidden = false;
    button.disabled = false;
    errBox.focus?.();
  };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errBox.hidden = true;
    const files = [...form.querySelector("#files").files];
    const message = form.querySelector("#message").value;
    if (!files.length && !message.trim()) return fail(form.dataset.empty);
    button.disabled = true;
    const post = async (path, body) => {
      const resp = await fetch(`${base}${path}`, { method: "POST", body, credentials: "same-origin" });
      const json = await resp.json().catch(() => null);
      if (!resp.ok) throw new Error(json?.error?.message || form.dataset.network);
      return json;
    };
    try {
      const st = await post("/start", new URLSearchParams({ message }));
      const total = files.reduce((n, f) => n + f.size, 0) || 1;
      let done = 0;
      box.hidden = false;
      text.textContent = say(0);
      for (const [i, file] of files.entries()) {
        await new Promise((resolve, reject) => {
          const up = new window.tus.Upload(file, {
            endpoint: new URL(st.url, location.href).href,
            headers: { Authorization: "Bearer " + st.token },
            metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
            chunkSize: Math.min(64 << 20, Math.max(2 << 20, Math.ceil(file.size / 200))),
            retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
            storeFingerprintForResuming: true,
            removeFingerprintOnSuccess: true,
            fingerprint: async (f) => ["kluis-request", st.id, i, f.name, f.size, f.lastModified].join("/"),
            onProgress(sent) {
              const pct = Math.floor(((done + sent) * 100) / total);
              bar.value = pct;
              text.textContent = say(pct);
            },
            onError(err) {
              let msg = form.dataset.network;
              try {
                msg = JSON.parse(err.originalResponse.getBody()).error.message || msg;
              } catch {}
              reject(new Error(msg));
            },
            onSuccess() {
              done += file.size;
              resolve();
            },
          });
          up.findPreviousUploads().then((prev) => {
            if (prev.length) up.resumeFromPreviousUpload(prev[0]);
            up.start();
          });
        });
      }
      const end = await post("/done", new URLSearchParams());
      location.assign(end?.next || base);
    } catch (err) {
      fail(err.message + " " + form.dataset.resume);
    }
  });
}
