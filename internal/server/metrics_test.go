package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// metric returns the sample of series (name with labels, as printed) in a
// scrape, or -1.
func metric(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}

func (e *env) scrape() string {
	e.t.Helper()
	resp, b := e.do("GET", "/metrics", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestMetricsMove scrapes /metrics after an upload (plain and tus), the
// downloads, wrong passwords up to a lock-out, and a purge (run by the
// test, so a revoked transfer stays due until then).
func TestMetricsMove(t *testing.T) {
	e := newEnv(t, envOptions{noRun: true})
	before := e.scrape()
	for _, s := range []string{`kluis_uploads_total{kind="plain"}`, `kluis_lockouts_total`, `kluis_purged_total`, `kluis_purge_lag_seconds`, `kluis_mail_queue_depth{state="pending"}`} {
		if metric(before, s) != 0 {
			t.Errorf("before: %s = %v, want 0", s, metric(before, s))
		}
	}

	fx := e.fixture(t)
	fx.unlock() // a plain upload (b.txt), finish, a right password
	fx.tus()    // a second plain upload (a.txt), a tus upload started
	fx.e.must(http.StatusNoContent, "PATCH", "/api/v1/uploads/"+fx.tusID, fx.openToken, map[string]string{
		"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, []byte("12345"), nil)
	resp, b := e.do("GET", "/api/v1/session/files/"+fx.fileID, fx.session, nil, nil)
	if resp.StatusCode != http.StatusOK || string(b) != "inhoud van b.txt" {
		t.Fatalf("download: %d %q", resp.StatusCode, b)
	}
	resp, zip := e.do("GET", "/api/v1/session/zip", fx.session, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("zip: %d", resp.StatusCode)
	}

	// Wrong passwords on another transfer until its access locks, and one
	// more against the lock.
	fx2 := e.fixture(t)
	fx2.ready()
	max := e.svc.Config().MaxFailures
	for i := 0; i <= max; i++ {
		e.do("POST", "/api/v1/links/"+fx2.access+"/unlock", "", nil, map[string]string{"secret": "fout-wachtwoord"})
	}

	// A revoked transfer is due for purge until the purge runs.
	fx.e.must(http.StatusOK, "POST", "/api/v1/transfers/"+fx.openID+"/revoke", fx.openToken, nil, nil, nil)
	due := e.scrape()
	if lag := metric(due, "kluis_purge_lag_seconds"); lag < 0 {
		t.Errorf("purge lag missing while a transfer is due")
	}
	n, err := e.svc.Purge(e.ctx)
	if err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}

	after := e.scrape()
	// The outbox does not run here: the mails queued so far (notices of
	// the transfers, the lock-out) are pending, as the gauge says.
	pending, _, err := e.db.OutboxDepth(e.ctx)
	if err != nil || pending == 0 {
		t.Fatalf("queued mail: %d %v", pending, err)
	}
	for series, want := range map[string]float64{
		`kluis_uploads_total{kind="plain"}`:            3, // b.txt, a.txt, fx2's b.txt
		`kluis_uploads_total{kind="tus"}`:              1,
		`kluis_downloads_total{kind="file"}`:           1,
		`kluis_downloads_total{kind="zip"}`:            1,
		`kluis_download_bytes_total`:                   float64(len("inhoud van b.txt") + len(zip)),
		`kluis_unlocks_total{result="ok"}`:             1,
		`kluis_unlocks_total{result="wrong_password"}`: float64(max),
		`kluis_unlocks_total{result="locked"}`:         1,
		`kluis_lockouts_total`:                         1,
		`kluis_purged_total`:                           1,
		`kluis_purge_lag_seconds`:                      0,
		`kluis_mail_queue_depth{state="pending"}`:      float64(pending),
	} {
		if got := metric(after, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// Every upload byte is counted once: 3 × 16 bytes plain, 5 by tus.
	if got, want := metric(after, `kluis_upload_bytes_total`), float64(len("inhoud van b.txt")*2+len("inhoud van a.txt")+5); got != want {
		t.Errorf("upload bytes = %v, want %v", got, want)
	}
	if got := metric(after, `kluis_upload_segment_commit_seconds_count`); got != 4 {
		t.Errorf("segment commits = %v, want 4", got)
	}
	// No ids, addresses or file names in the metrics.
	for _, secret := range []string{fx.openID, fx.readyID, fx.access, "b.txt", "example.nl"} {
		if strings.Contains(after, secret) {
			t.Errorf("metrics contain %q", secret)
		}
	}
}

// serve sends GET path from remote to the loopback host name, as a client
// on the machine itself would; hdr["Host"] names another host.
func serve(h http.Handler, remote string, hdr map[string]string, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = remote
	r.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMetricsAccess(t *testing.T) {
	t.Run("no token: loopback only", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		for _, c := range []struct {
			remote string
			hdr    map[string]string
			want   int
		}{
			{"127.0.0.1:40000", nil, http.StatusOK},
			{"[::1]:40000", nil, http.StatusOK},
			{"203.0.113.7:40000", nil, http.StatusForbidden},
			{"10.0.0.8:40000", map[string]string{"Authorization": "Bearer iets"}, http.StatusForbidden},
			// Through a proxy on the same host: not a local client.
			{"127.0.0.1:40000", map[string]string{"X-Forwarded-For": "203.0.113.7"}, http.StatusForbidden},
			{"127.0.0.1:40000", map[string]string{"Forwarded": "for=203.0.113.7"}, http.StatusForbidden},
			{"127.0.0.1:40000", map[string]string{"X-Forwarded-Host": "kluis.example.nl"}, http.StatusForbidden},
			{"127.0.0.1:40000", map[string]string{"Via": "1.1 proxy"}, http.StatusForbidden},
			{"[::1]:40000", map[string]string{"Host": "localhost:8080"}, http.StatusOK},
			// A page of another site that the browser reaches on loopback
			// under that site's own name (DNS rebinding) is not local.
			{"127.0.0.1:40000", map[string]string{"Host": "attacker.example"}, http.StatusForbidden},
			{"127.0.0.1:40000", map[string]string{"Host": "attacker.example:8080"}, http.StatusForbidden},
		} {
			w := serve(e.handler, c.remote, c.hdr, "/metrics")
			if w.Code != c.want {
				t.Errorf("%s %v: %d, want %d", c.remote, c.hdr, w.Code, c.want)
			}
			if w.Code != http.StatusOK && strings.Contains(w.Body.String(), "kluis_") {
				t.Errorf("%s: refused, but the body holds metrics", c.remote)
			}
		}
	})
	t.Run("token", func(t *testing.T) {
		const token = "metrics-token-0123456789"
		e := newEnv(t, envOptions{metricsToken: token})
		for _, c := range []struct {
			remote, auth string
			want         int
		}{
			{"203.0.113.7:40000", "Bearer " + token, http.StatusOK},
			{"127.0.0.1:40000", "Bearer " + token, http.StatusOK},
			{"127.0.0.1:40000", "", http.StatusUnauthorized},
			{"203.0.113.7:40000", "", http.StatusUnauthorized},
			{"203.0.113.7:40000", "Bearer fout", http.StatusUnauthorized},
			{"203.0.113.7:40000", token, http.StatusUnauthorized},
		} {
			w := serve(e.handler, c.remote, map[string]string{"Authorization": c.auth}, "/metrics")
			if w.Code != c.want {
				t.Errorf("%s %q: %d, want %d", c.remote, c.auth, w.Code, c.want)
			}
			if c.want == http.StatusOK && !strings.Contains(w.Body.String(), "kluis_uploads_total") {
				t.Errorf("%s: no metrics in the body", c.remote)
			}
		}
	})
}

func TestHealthzDetails(t *testing.T) {
	e := newEnv(t, envOptions{})
	// A mail outage: the relay refuses; the address never shows.
	e.metrics.Failed(false, "dial tcp relay.example:587: connection refused for <afzender@example.nl>")
	w := serve(e.handler, "127.0.0.1:40000", nil, "/healthz?details=1")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("healthz details: %d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var v struct {
		Status string `json:"status"`
		Mail   *struct {
			Pending   *int    `json:"queue_pending"`
			Failed    *int    `json:"queue_failed"`
			LastError *string `json:"last_delivery_error"`
		} `json:"mail"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != "ok" || v.Mail == nil || v.Mail.Pending == nil || v.Mail.Failed == nil || v.Mail.LastError == nil {
		t.Fatalf("healthz details: %s", w.Body)
	}
	if strings.Contains(*v.Mail.LastError, "@") || !strings.Contains(*v.Mail.LastError, "connection refused") {
		t.Errorf("last delivery error %q", *v.Mail.LastError)
	}
	// Accept: application/json asks for the same.
	if w := serve(e.handler, "127.0.0.1:40000", map[string]string{"Accept": "application/json"}, "/healthz"); !strings.Contains(w.Body.String(), `"queue_pending"`) {
		t.Errorf("Accept: application/json: %s", w.Body)
	}
	// Plain: "ok", also from outside; the details only for those who may
	// read the metrics.
	for _, c := range []struct {
		remote, path string
		hdr          map[string]string
	}{
		{"127.0.0.1:40000", "/healthz", nil},
		{"203.0.113.7:40000", "/healthz?details=1", nil},
		// DNS rebinding: loopback peer, another site's host name.
		{"127.0.0.1:40000", "/healthz?details=1", map[string]string{"Host": "attacker.example:8080"}},
	} {
		w := serve(e.handler, c.remote, c.hdr, c.path)
		if w.Code != http.StatusOK || w.Body.String() != "ok\n" {
			t.Errorf("%s %s: %d %q", c.remote, c.path, w.Code, w.Body)
		}
	}
	// A delivery clears the error.
	e.metrics.Sent()
	w = serve(e.handler, "127.0.0.1:40000", nil, "/healthz?details=1")
	if !strings.Contains(w.Body.String(), `"last_delivery_error":null`) {
		t.Errorf("after a delivery: %s", w.Body)
	}
}
