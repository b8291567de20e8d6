package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestStatusShowsReference (issue 13, item 5): kluis status ID shows the
// sender's own reference, in the table and in --json, also after a revoke
// (the reference is kept with the label), so the sender recognises the
// transfer from the command line as on the web page.
func TestStatusShowsReference(t *testing.T) {
	srv := apptest.Start(t, apptest.Options{})
	ctx := context.Background()
	const email, ref = "a.jansen@gemeente.example.nl", "Zaak 2026-0417"
	_, key, err := srv.Senders.CreateAPIKey(ctx, email)
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Transfers.Create(ctx, transfer.CreateRequest{SenderEmail: email, To: []string{"b@example.nl"},
		Message: "Uw afspraak.", Reference: ref, PasswordMode: kluis.PasswordNone})
	if err != nil {
		t.Fatal(err)
	}
	o := transfer.Owner{TransferID: c.Transfer.ID}
	if _, err := srv.Transfers.Finish(ctx, o, c.LinkSecret); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		var out, errb strings.Builder
		if err := run(ctx, []string{"status", "--server", srv.URL(), "--api-key", key, c.Transfer.ID}, noEnv, &out, &errb); err != nil {
			t.Fatalf("status %s: %v\n%s", when, err, errb.String())
		}
		if !strings.Contains(out.String(), "reference") || !strings.Contains(out.String(), ref) {
			t.Errorf("status %s does not show the reference:\n%s", when, out.String())
		}
		out.Reset()
		if err := run(ctx, []string{"status", "--server", srv.URL(), "--api-key", key, "--json", c.Transfer.ID}, noEnv, &out, &errb); err != nil {
			t.Fatalf("status --json %s: %v", when, err)
		}
		var got struct {
			Reference string `json:"reference"`
		}
		if err := json.Unmarshal([]byte(out.String()), &got); err != nil || got.Reference != ref {
			t.Errorf("status --json %s: reference %q (%v):\n%s", when, got.Reference, err, out.String())
		}
	}
	check("while live")
	if err := srv.Transfers.Revoke(ctx, o, ""); err != nil {
		t.Fatal(err)
	}
	check("after the revoke")
}
