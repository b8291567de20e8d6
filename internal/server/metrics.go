package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Who may read /metrics and /healthz?details=1 (queue depth, the last mail
// error, process details): with Deps.MetricsToken set, whoever sends it as
// a bearer token; without, only requests made directly on this machine
// (clientip.LocalRequest: a loopback peer, no forwarding header, a loopback
// host name). A reverse proxy on the same host that forwards without any
// forwarding header and with a loopback Host would make every client look
// local: set a token there, or block /metrics in the proxy.

// metricsAccess returns 0 when r may read the operational details,
// otherwise the status to refuse it with.
func metricsAccess(token string, r *http.Request) int {
	if token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return http.StatusUnauthorized
		}
		return 0
	}
	if !clientip.LocalRequest(r) {
		return http.StatusForbidden
	}
	return 0
}

// metricsHandler serves m's metrics to those metricsAccess allows.
func metricsHandler(m *metrics.Metrics, token string) http.Handler {
	h := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := metricsAccess(token, r); st != 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if st == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="kluis-metrics"`)
			}
			w.WriteHeader(st)
			w.Write([]byte(http.StatusText(st) + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// healthz answers 200 whenever the process runs: a liveness check. With
// ?details=1 (or Accept: application/json), and for those metricsAccess
// allows, it adds the mail queue as JSON: a mail outage shows here and in
// the metrics, but never takes the instance out of a load balancer
// (/readyz checks only the database and the storage).
func healthz(d Deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		wantDetails := r.URL.Query().Get("details") == "1" || strings.Contains(r.Header.Get("Accept"), "application/json")
		if !wantDetails || d.Metrics == nil || metricsAccess(d.MetricsToken, r) != 0 {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		body := struct {
			Status string              `json:"status"`
			Mail   *metrics.MailStatus `json:"mail"`
		}{Status: "ok"}
		if ms, err := d.Metrics.Mail(ctx); err != nil {
			d.Log.Warn("healthz: mail queue unavailable", "err", err)
		} else {
			body.Mail = &ms
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(body)
	}
}

// countTraffic tags uploads with their protocol (for kluis_uploads_total)
// and counts the bytes of download answers.
func countTraffic(m *metrics.Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/api/v1/uploads/") {
			r = r.WithContext(transfer.WithUploadKind(r.Context(), "tus"))
		}
		if r.Method != http.MethodGet || !isDownload(p) {
			next.ServeHTTP(w, r)
			return
		}
		cw := &statusWriter{ResponseWriter: w}
		// Deferred: a download that breaks off panics with ErrAbortHandler,
		// and what was sent still counts.
		defer func() {
			if cw.status == http.StatusOK || cw.status == http.StatusPartialContent {
				m.DownloadBytes(cw.bytes)
			}
		}()
		next.ServeHTTP(cw, r)
	})
}

// isDownload: the file and ZIP routes of the API and the web pages.
func isDownload(p string) bool {
	if p == "/api/v1/session/zip" || strings.HasPrefix(p, "/api/v1/session/files/") {
		return true
	}
	if rest, ok := strings.CutPrefix(p, "/r/"); ok {
		parts := strings.Split(rest, "/")
		return (len(parts) == 2 && parts[1] == "zip") || (len(parts) == 3 && parts[1] == "files")
	}
	return false
}
