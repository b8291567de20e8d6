package transfer

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/policy"
)

const testPolicy = `{
  "organisation_domains": ["gemeente.nl"],
  "defaults": {"max_transfer_size": 1000, "default_expiry": "3d", "max_expiry": "10d", "max_recipients": 3},
  "rules": [
    {"name": "care", "description": "Care providers only with your own password.", "recipients": ["*@*.zorg.nl"], "action": "allow",
     "limits": {"password_modes": ["manual"], "allow_message": false, "allow_custom_text": false, "allow_show_filenames": false,
                "max_transfer_size": 500, "max_expiry": "2d", "max_recipients": 1}},
    {"name": "big", "senders": ["archief@gemeente.nl"], "action": "allow", "limits": {"max_transfer_size": "10TB", "max_recipients": 1000}}
  ]
}`

func policyService(t *testing.T, src string) (*Service, *policy.Holder) {
	t.Helper()
	p, err := policy.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	h := policy.NewHolder(p)
	svc, _ := interopService(t, func(d *Deps) { d.Policy = h.Get })
	return svc, h
}

func wantCode(t *testing.T, err error, code kluis.Code, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got := kluis.ErrorCode(err); got != code {
		t.Fatalf("code %s, want %s: %v", got, code, err)
	}
	for _, p := range parts {
		if !strings.Contains(kluis.ErrorMessage(err), p) {
			t.Errorf("message %q does not contain %q", kluis.ErrorMessage(err), p)
		}
	}
}

// The relay test: with organisation domains, outside to outside is refused
// with a message naming the addresses and the rule; the rest passes.
func TestPolicyRelay(t *testing.T) {
	svc, _ := policyService(t, testPolicy)
	ctx := context.Background()
	create := func(from string, to ...string) error {
		_, err := svc.Create(ctx, CreateRequest{SenderEmail: from, To: to, PasswordMode: kluis.PasswordManual, Password: "correct horse battery"})
		return err
	}
	wantCode(t, create("a@extern.nl", "b@elders.nl"), kluis.EPOLICY, `to: address_outside_organisation ("b@elders.nl") [organisation policy: the default rule]`)
	err := create("a@extern.nl", "m@gemeente.nl", "b@elders.nl", "c@elders.nl")
	wantCode(t, err, kluis.EPOLICY, `"b@elders.nl"`, `"c@elders.nl"`)
	if fs := kluis.FieldErrors(err); len(fs) != 2 {
		t.Errorf("each refused address is its own field error: %v", fs)
	}
	for _, ok := range [][]string{
		{"m@gemeente.nl", "b@elders.nl"},
		{"a@extern.nl", "m@gemeente.nl"},
		{"a@extern.nl", "m@afdeling.gemeente.nl"},
		{"m@gemeente.nl", "m2@gemeente.nl", "b@elders.nl"},
		{"a@extern.nl", "arts@praktijk.zorg.nl"}, // an allow rule lets outside to outside pass
	} {
		if err := create(ok[0], ok[1:]...); err != nil {
			t.Errorf("%s to %v refused: %v", ok[0], ok[1:], err)
		}
	}
}

func TestPolicyLimitsInCreate(t *testing.T) {
	svc, _ := policyService(t, testPolicy)
	ctx := context.Background()
	now := svc.Now()
	care := `[organisation policy: rule "care"]`
	defaults := "[organisation policy: the default limits]"
	base := func() CreateRequest {
		return CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"arts@praktijk.zorg.nl"}, PasswordMode: kluis.PasswordManual, Password: "correct horse battery"}
	}
	tests := []struct {
		name  string
		tune  func(*CreateRequest)
		parts []string
	}{
		{"password mode", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordGenerate, "" }, []string{"password.mode: password_mode_not_allowed", care}},
		{"default password mode", func(r *CreateRequest) { r.PasswordMode, r.Password = "", "" }, []string{"password.mode: password_mode_not_allowed", care}},
		{"message", func(r *CreateRequest) { r.Message = "geheim" }, []string{"message: message_not_allowed", care}},
		{"subject", func(r *CreateRequest) { r.Subject = "Eigen onderwerp" }, []string{"subject: custom_text_not_allowed", care}},
		{"body", func(r *CreateRequest) { r.Body = "Eigen tekst" }, []string{"body: custom_text_not_allowed", care}},
		{"show file names", func(r *CreateRequest) { r.Options.ShowFilenames = true }, []string{"options.show_filenames: show_filenames_not_allowed", care}},
		{"max expiry", func(r *CreateRequest) { r.ExpiresAt = now.Add(3 * 24 * time.Hour) }, []string{"expires_at: expiry_too_late (" + now.Add(2*24*time.Hour).UTC().Format(time.DateOnly) + ")", care}},
		{"max recipients", func(r *CreateRequest) { r.To = append(r.To, "m2@gemeente.nl") }, []string{"to: too_many_recipients (1, 2)", care}},
		{"default max recipients", func(r *CreateRequest) {
			r.To = []string{"a@gemeente.nl", "b@gemeente.nl", "c@gemeente.nl", "d@gemeente.nl"}
		}, []string{"to: too_many_recipients (3, 4)", defaults}},
		{"default max expiry", func(r *CreateRequest) { r.To = []string{"a@gemeente.nl"}; r.ExpiresAt = now.Add(11 * 24 * time.Hour) }, []string{"expires_at: expiry_too_late (" + now.Add(10*24*time.Hour).UTC().Format(time.DateOnly) + ")", defaults}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.tune(&r)
			_, err := svc.Create(ctx, r)
			wantCode(t, err, kluis.EPOLICY, tc.parts...)
		})
	}
	// Within the limits it passes, and the policy's default expiry applies.
	c, err := svc.Create(ctx, base())
	if err != nil {
		t.Fatal(err)
	}
	// The defaults' 3d default expiry is more than the rule's 2d maximum.
	if got := c.Transfer.ExpiresAt.Sub(now); got.Round(time.Minute) != 2*24*time.Hour {
		t.Errorf("default expiry %s, want the rule's maximum 2d", got)
	}
	d, err := svc.Create(ctx, CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"b@elders.nl"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Transfer.ExpiresAt.Sub(now); got.Round(time.Minute) != 3*24*time.Hour {
		t.Errorf("default expiry %s, want the policy's 3d", got)
	}
	if c.MaxSize != 500 {
		t.Errorf("MaxSize %d, want the rule's 500", c.MaxSize)
	}
	// Extend stays within the maximum decided at Create.
	o := Owner{TransferID: c.Transfer.ID}
	wantCode(t, svc.Extend(ctx, o, now.Add(2*24*time.Hour+time.Minute)), kluis.EPOLICY, "at most 2 days")
	if err := svc.Extend(ctx, o, now.Add(2*24*time.Hour)); err != nil {
		t.Errorf("extend within the limit: %v", err)
	}
}

// The size limit decided at Create holds for declared sizes (tus) and for
// streaming uploads of unknown length.
func TestPolicyMaxTransferSize(t *testing.T) {
	svc, _ := policyService(t, testPolicy)
	ctx := context.Background()
	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"arts@praktijk.zorg.nl"}, PasswordMode: kluis.PasswordManual, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	_, err = svc.NewFile(ctx, o, "groot.bin", "", 501)
	wantCode(t, err, kluis.ETOOLARGE, "at most 500 bytes")
	f, err := svc.NewFile(ctx, o, "klein.bin", "", 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(make([]byte, 300))); err != nil {
		t.Fatal(err)
	}
	_, err = svc.NewFile(ctx, o, "nog een.bin", "", 201)
	wantCode(t, err, kluis.ETOOLARGE)
	g, err := svc.NewFile(ctx, o, "stroom.bin", "", -1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := svc.WriteFile(ctx, o, g.ID, 0, bytes.NewReader(make([]byte, 250)))
	wantCode(t, err, kluis.ETOOLARGE, "at most 500 bytes")
	if n > 200 {
		t.Errorf("committed %d bytes of a streaming upload past the budget of 200", n)
	}
	// The default limit (1000 bytes) for a transfer the default rule allows.
	c2, err := svc.Create(ctx, CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"b@elders.nl"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.NewFile(ctx, Owner{TransferID: c2.Transfer.ID}, "x", "", 1001)
	wantCode(t, err, kluis.ETOOLARGE, "1 kB")
	if _, err = svc.NewFile(ctx, Owner{TransferID: c2.Transfer.ID}, "x", "", 1000); err != nil {
		t.Fatal(err)
	}
}

// The server's own settings stay the ceiling: a policy cannot raise them,
// and a limit the server sets is refused as before (EINVALID).
func TestPolicyServerCeiling(t *testing.T) {
	svc, _ := policyService(t, testPolicy)
	ctx := context.Background()
	var to []string
	for i := range 51 {
		to = append(to, strings.Repeat("x", i+1)+"@gemeente.nl")
	}
	_, err := svc.Create(ctx, CreateRequest{SenderEmail: "archief@gemeente.nl", To: to})
	wantCode(t, err, kluis.EINVALID, "to: too_many_recipients (50, 51).")
	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "archief@gemeente.nl", To: to[:50]})
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxSize != svc.cfg.MaxTransferSize {
		t.Errorf("MaxSize %d, want the server's %d", c.MaxSize, svc.cfg.MaxTransferSize)
	}
	if l := svc.DefaultLimits(); l.MaxTransferSize != 1000 || l.MaxRecipients != 3 || l.MaxExpiry != 10*24*time.Hour {
		t.Errorf("DefaultLimits %+v", l)
	}
}

// A reload applies to the next transfer; without a policy every address is
// allowed (the demo) and the Config's limits apply.
func TestPolicyReloadAndDemo(t *testing.T) {
	svc, h := policyService(t, testPolicy)
	ctx := context.Background()
	req := CreateRequest{SenderEmail: "a@extern.nl", To: []string{"b@elders.nl"}, Message: "m", Subject: "s", Options: kluis.Options{ShowFilenames: true}, PasswordMode: kluis.PasswordNone}
	_, err := svc.Create(ctx, req)
	wantCode(t, err, kluis.EPOLICY)
	h.Set(policy.Default())
	c, err := svc.Create(ctx, req)
	if err != nil {
		t.Fatalf("demo policy refused: %v", err)
	}
	if !svc.Policy().Demo() || c.MaxSize != svc.cfg.MaxTransferSize || c.Transfer.ExpiresAt.Sub(svc.Now()).Round(time.Minute) != svc.cfg.DefaultExpiry {
		t.Errorf("demo: max size %d, expiry %s", c.MaxSize, c.Transfer.ExpiresAt.Sub(svc.Now()))
	}
	plain, _ := interopService(t) // no policy at all
	if _, err := plain.Create(ctx, req); err != nil {
		t.Fatalf("engine without a policy refused: %v", err)
	}
}
