package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestCloseOnErrorAfterAnswer: tusd moves the read deadline to now when
// another request asks for an upload's lock, also after the PATCH has
// answered 204 (the lock is released after the answer). Passed through,
// that deadline made net/http cancel the connection's context, and the
// next request on the kept-alive connection started cancelled. Late
// deadlines are dropped; early ones make the answer close the connection.
func TestCloseOnErrorAfterAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		early  bool // the deadline comes before the answer
		expire bool // tusd's per-read deadline runs out after the body's end, before the answer
		status int
	}{
		{"after a 204", false, false, http.StatusNoContent},
		{"before a 204", true, false, http.StatusNoContent},
		{"with a 400", false, false, http.StatusBadRequest},
		{"expired before a 204", false, true, http.StatusNoContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					if err := r.Context().Err(); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					w.WriteHeader(http.StatusOK)
					return
				}
				io.Copy(io.Discard, r.Body) // the body is read to its end, as tusd does
				cw := &closeOnError{ResponseWriter: w, ctx: r.Context()}
				rc := http.NewResponseController(cw)
				switch {
				case tc.expire:
					rc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
					time.Sleep(50 * time.Millisecond) // a slow commit
				case tc.early:
					rc.SetReadDeadline(time.Now())
				}
				cw.WriteHeader(tc.status)
				if !tc.early && !tc.expire {
					rc.SetReadDeadline(time.Now())
				}
				time.Sleep(50 * time.Millisecond) // the background read sees the deadline
			})
			srv := httptest.NewServer(h)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			req, _ := http.NewRequest("PATCH", srv.URL, http.NoBody)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for i := range 3 {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d after the PATCH: %d %s", i+1, resp.StatusCode, b)
				}
			}
		})
	}
}
