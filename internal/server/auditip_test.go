package server_test

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store"
)

// TestAuditIPIsTheClients: the audit log records the client's address,
// which behind a trusted reverse proxy comes from X-Forwarded-For, not the
// proxy's; without a trusted proxy the header is ignored. docs/security.md
// (Audit log) states this.
func TestAuditIPIsTheClients(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"behind a trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "203.0.113.9"},
		{"no trusted proxy: the header is not believed", nil, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{trusted: tc.trusted})
			fx := e.fixture(t)
			fx.ready()
			resp, b := e.do("POST", "/api/v1/links/"+fx.access+"/unlock", "", map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
				map[string]string{"secret": "fout wachtwoord"})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("wrong password: %d %s", resp.StatusCode, b)
			}
			var got []string
			if err := e.db.AuditSince(e.ctx, time.Unix(0, 0), func(a *store.AuditRow) error {
				if a.Action == "recipient.unlock_failed" {
					got = append(got, a.IP)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("audit IPs of the failed unlock %q, want [%s]", got, tc.want)
			}
		})
	}
}
