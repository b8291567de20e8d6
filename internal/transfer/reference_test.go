package transfer_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestSenderReference: the sender's own reference is kept sealed with the
// transfer, shown in the sender's overview, never in a recipient's mail,
// and still there after a revoke purged the details (until the minimal
// record's retention ends). A reference that is too long or on two lines
// is refused as a field error.
func TestSenderReference(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.runMail(t)
		const ref = "Zaak 2026-0042"
		c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
			SenderEmail: "afzender@example.nl", To: []string{"ontvanger@example.nl"}, Reference: "  " + ref + " ",
			PasswordMode: kluis.PasswordManual, Password: "Vrolijk-Paarse-Olifant-42",
		})
		if err != nil {
			t.Fatal(err)
		}
		e.upload(owner(c), "a.txt", []byte("inhoud"))
		e.finish(c)
		ov, err := e.svc.Overview(e.ctx, owner(c))
		if err != nil || ov.Reference != ref {
			t.Fatalf("overview reference %q, %v; want %q", ov.Reference, err, ref)
		}
		n := e.app.Mail(mail.KindNotify, "ontvanger@example.nl")
		if strings.Contains(n.Text+n.HTML+n.Subject, "2026-0042") {
			t.Error("the recipient's mail shows the sender's reference")
		}
		if bytes.Contains(readDBFiles(t, e.dir), []byte("2026-0042")) {
			t.Error("the reference is stored in plain")
		}

		if err := e.svc.Revoke(e.ctx, owner(c), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		ov, err = e.svc.Overview(e.ctx, owner(c))
		if err != nil || ov.Reference != ref || ov.Kept == nil {
			t.Errorf("after revoke: reference %q kept %+v, %v; want %q", ov.Reference, ov.Kept, err, ref)
		}

		for _, bad := range []string{strings.Repeat("x", transfer.MaxReferenceLength+1), "Zaak\n42"} {
			_, err := e.svc.Create(e.ctx, transfer.CreateRequest{
				SenderEmail: "afzender@example.nl", To: []string{"ontvanger@example.nl"}, Reference: bad,
				PasswordMode: kluis.PasswordManual, Password: "Vrolijk-Paarse-Olifant-42",
			})
			fs := kluis.FieldErrors(err)
			if len(fs) != 1 || fs[0].Field != transfer.FieldReference || !strings.HasPrefix(fs[0].Key, "validate.reference_") {
				t.Errorf("reference %q: %v %+v", bad, err, fs)
			}
		}
	})
}
