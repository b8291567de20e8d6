package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

//go:embed static
var staticFS embed.FS

// assets are the static files in memory, each under a URL with the start
// of its SHA-256, so they can be cached for a year.
type assets struct {
	files map[string]asset // by name, e.g. "kluis.css"
}

type asset struct {
	body []byte
	sum  string
}

func loadAssets() (*assets, error) {
	a := &assets{files: map[string]asset{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		a.add(p[len("static/"):], b)
		return nil
	})
	return a, err
}

// add stores a file and returns its URL.
func (a *assets) add(name string, b []byte) string {
	s := sha256.Sum256(b)
	a.files[name] = asset{body: b, sum: hex.EncodeToString(s[:6])}
	return a.url(name)
}

// url returns the checksummed URL of a file; it panics for an unknown one,
// which every template test would catch.
func (a *assets) url(name string) string {
	f, ok := a.files[name]
	if !ok {
		panic("web: no static file " + name)
	}
	return "/static/" + f.sum + "/" + name
}

func (h *Web) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, ok := h.static.files[name]
	if !ok || path.Ext(name) == "" {
		http.NotFound(w, r)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".svg":
		// An SVG opened on its own must not run script.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	if r.PathValue("sum") == f.sum {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		// An old page (say during an upgrade) asks for an old version:
		// serve the current one, but do not let it stick.
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
