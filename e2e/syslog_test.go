package e2e

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/syslog/syslogtest"
)

// TestSyslogSIEM runs the binary with --syslog-addr against a real
// rsyslogd: the application log arrives with its levels, every audit entry
// arrives in chain order with its hash (so the SIEM's copy can be checked
// against `kluis admin audit verify`), entries written while the receiver
// was away arrive once it is back, and no password or message reaches it.
func TestSyslogSIEM(t *testing.T) {
	t.Parallel()
	r := syslogtest.Start(t)
	srv := startServer(t, t.TempDir(), "--syslog-addr", "tcp://"+r.TCP, "--syslog-facility", "local3", "--syslog-app-name", "kluis-e2e")

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	c := srv.create(t, password{Mode: "manual", Value: pw}, msg)
	src := newSource(70, 1000, "syslog")
	newTus(c.UploadToken, nil).upload(t, srv.base, "a.txt", src)
	access, _ := srv.finish(t, c)
	wrong := func() {
		t.Helper()
		if st, _ := call(t, "POST", srv.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": "wrong-" + pw}, nil); st != http.StatusUnauthorized && st != http.StatusForbidden {
			t.Fatalf("wrong password answered %d", st)
		}
	}
	wrong()
	srv.unlock(t, access, pw)

	type entry struct {
		ID       int64  `json:"id"`
		Action   string `json:"action"`
		Result   string `json:"result"`
		Object   string `json:"object"`
		PrevHash string `json:"prev_hash"`
		Hash     string `json:"hash"`
	}
	audits := func(es []syslogtest.Entry) []entry {
		var out []entry
		for _, e := range es {
			if e.MsgID != "audit" {
				continue
			}
			var a entry
			if err := json.Unmarshal([]byte(e.Msg), &a); err != nil {
				t.Fatalf("audit message %q: %v", e.Msg, err)
			}
			if e.Facility != "13" || e.App != "kluis-e2e" || e.SD != `[meta sequenceId="`+itoa(a.ID)+`"]` {
				t.Errorf("audit entry header %+v", e)
			}
			out = append(out, a)
		}
		return out
	}
	countUnlocks := func(es []syslogtest.Entry, result string) int {
		n := 0
		for _, a := range audits(es) {
			if a.Object == c.ID && strings.Contains(a.Action, "unlock") && (result == "" || a.Result == result) {
				n++
			}
		}
		return n
	}
	r.Wait(30*time.Second, "the unlock audit entries", func(es []syslogtest.Entry) bool { return countUnlocks(es, "") >= 2 })

	// Receiver away: the entry waits in the database.
	r.Stop()
	wrong()
	time.Sleep(3 * time.Second) // more than one forwarding interval
	r.Restart()
	es := r.Wait(30*time.Second, "the unlock written while the receiver was away", func(es []syslogtest.Entry) bool {
		return countUnlocks(es, "") >= 3
	})

	// In chain order: ids from 1 without gaps (a repeat after the outage
	// is allowed: delivery is at least once), each prev_hash the hash before.
	var last entry
	for i, a := range audits(es) {
		if a.ID == last.ID {
			continue
		}
		if a.ID != last.ID+1 {
			t.Fatalf("audit entry %d has id %d after %d: a gap", i, a.ID, last.ID)
		}
		if last.ID > 0 && a.PrevHash != last.Hash {
			t.Errorf("entry %d: prev_hash %s, want the hash of entry %d %s", a.ID, a.PrevHash, last.ID, last.Hash)
		}
		if b, err := hex.DecodeString(a.Hash); err != nil || len(b) != 32 {
			t.Errorf("entry %d: hash %q is not a SHA-256", a.ID, a.Hash)
		}
		last = a
	}

	logs := 0
	for _, e := range es {
		if strings.Contains(e.Msg, pw) || strings.Contains(e.Msg, msg) {
			t.Errorf("a secret reached syslog: %+v", e)
		}
		if e.MsgID == "log" {
			logs++
			if e.Facility != "19" {
				t.Errorf("log line with facility %s, want 19 (local3): %+v", e.Facility, e)
			}
		}
	}
	if logs == 0 {
		t.Errorf("no application log line reached syslog")
	}
	found := false
	for _, e := range es {
		if e.MsgID == "log" && strings.Contains(e.Msg, `"msg":"kluis started"`) && e.Severity == "6" {
			found = true
		}
	}
	if !found {
		t.Error(`"kluis started" did not reach syslog as an info line`)
	}
}
