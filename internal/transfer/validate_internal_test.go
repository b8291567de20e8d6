package transfer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
)

const validatePolicy = `{
  "organisation_domains": ["gemeente.nl"],
  "defaults": {"max_transfer_size": 1000, "default_expiry": "3d", "max_expiry": "10d", "max_recipients": 3},
  "rules": [
    {"name": "no private mail", "recipients": ["gmail.com"], "action": "deny"},
    {"name": "care", "recipients": ["*@*.zorg.nl"], "action": "allow",
     "limits": {"password_modes": ["manual"], "allow_message": false, "allow_custom_text": false, "allow_show_filenames": false,
                "max_transfer_size": 500, "max_expiry": "2d", "max_recipients": 1}}
  ]
}`

// want is one expected field error: field, code, and what in the policy
// refused it ("" for the input or the server).
type want struct{ field, code, policy string }

// TestValidate: every rule of a new transfer, with the field and the
// code it yields; a request with several problems gets them all.
func TestValidate(t *testing.T) {
	svc, _ := policyService(t, validatePolicy)
	now := svc.Now()
	day := func(days int) string { return now.In(locale.Amsterdam).AddDate(0, 0, days).Format(time.DateOnly) }
	care := `rule "care"`
	defaults := "the default limits"
	base := func() CreateRequest {
		return CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"b@gemeente.nl"}, Message: "Hallo", PasswordMode: kluis.PasswordGenerate}
	}
	tests := []struct {
		name string
		tune func(*CreateRequest)
		want []want
	}{
		{"sender address", func(r *CreateRequest) { r.SenderEmail = "niet-een-adres" }, []want{{FieldSenderEmail, CodeSenderInvalid, ""}}},
		{"sender name too long", func(r *CreateRequest) { r.SenderName = strings.Repeat("a", MaxNameLength+1) }, []want{{FieldSenderName, CodeTooLong, ""}}},
		{"sender name two lines", func(r *CreateRequest) { r.SenderName = "A\nB" }, []want{{FieldSenderName, CodeNotOneLine, ""}}},
		{"sender phone not text", func(r *CreateRequest) { r.SenderPhone = "06\xff" }, []want{{FieldSenderPhone, CodeNotText, ""}}},
		{"message too long", func(r *CreateRequest) { r.Message = strings.Repeat("a", MaxMessageLength+1) }, []want{{FieldMessage, CodeTooLong, ""}}},
		{"message with NUL", func(r *CreateRequest) { r.Message = "a\x00b" }, []want{{FieldMessage, CodeNotText, ""}}},
		{"subject two lines", func(r *CreateRequest) { r.Subject = "a\r\nb" }, []want{{FieldSubject, CodeNotOneLine, ""}}},
		{"subject too long", func(r *CreateRequest) { r.Subject = strings.Repeat("a", MaxSubjectLength+1) }, []want{{FieldSubject, CodeTooLong, ""}}},
		{"body too long after sanitizing", func(r *CreateRequest) { r.Body = "<p>" + strings.Repeat("a", MaxBodyLength) + "</p>" }, []want{{FieldBody, CodeTooLong, ""}}},
		{"language", func(r *CreateRequest) { r.Lang = "es" }, []want{{FieldLang, CodeLangUnsupported, ""}}},
		{"download notice mode", func(r *CreateRequest) { r.Options.Notify = "often" }, []want{{FieldNotify, CodeNotifyUnknown, ""}}},
		{"bad addresses in each field", func(r *CreateRequest) {
			r.To, r.Cc, r.Bcc = []string{"b@gemeente.nl", "x@"}, []string{"geen adres"}, []string{"a@@gemeente.nl"}
		}, []want{{FieldTo, CodeAddressInvalid, ""}, {FieldCc, CodeAddressInvalid, ""}, {FieldBcc, CodeAddressInvalid, ""}}},
		{"no recipients", func(r *CreateRequest) { r.To = nil }, []want{{FieldTo, CodeNoRecipients, ""}}},
		{"denied address", func(r *CreateRequest) { r.Cc = []string{"iemand@gmail.com"} }, []want{{FieldCc, CodeAddressNotAllowed, `rule "no private mail"`}}},
		{"outside the organisation", func(r *CreateRequest) { r.SenderEmail, r.To = "a@extern.nl", []string{"b@elders.nl", "c@gemeente.nl"} },
			[]want{{FieldTo, CodeAddressOutside, "the default rule"}}},
		{"duplicates count once", func(r *CreateRequest) {
			r.To, r.Cc, r.Bcc = []string{"a@gemeente.nl", "b@gemeente.nl"}, []string{"A@Gemeente.nl"}, []string{"c@gemeente.nl", "b@GEMEENTE.NL"}
		}, nil},
		{"too many recipients", func(r *CreateRequest) {
			r.To = []string{"a@gemeente.nl", "b@gemeente.nl", "c@gemeente.nl", "d@gemeente.nl"}
		},
			[]want{{FieldTo, CodeTooManyRecipients, defaults}}},
		{"a rule's recipient limit", func(r *CreateRequest) {
			r.To, r.Message, r.PasswordMode, r.Password = []string{"arts@x.zorg.nl", "b@gemeente.nl"}, "", kluis.PasswordManual, "correct horse battery"
		}, []want{{FieldTo, CodeTooManyRecipients, care}}},
		{"expiry in the past", func(r *CreateRequest) { r.ExpiresAt = now.Add(-time.Minute) }, []want{{FieldExpires, CodeExpiryPast, ""}}},
		{"expiry too late", func(r *CreateRequest) { r.ExpiresAt = now.Add(11 * 24 * time.Hour) }, []want{{FieldExpires, CodeExpiryTooLate, defaults}}},
		{"expiry day format", func(r *CreateRequest) { r.ExpiresOn = "2025-02-31" }, []want{{FieldExpires, CodeExpiryFormat, ""}}},
		{"expiry day past", func(r *CreateRequest) { r.ExpiresOn = day(-1) }, []want{{FieldExpires, CodeExpiryPast, ""}}},
		{"expiry day too late", func(r *CreateRequest) { r.ExpiresOn = day(12) }, []want{{FieldExpires, CodeExpiryTooLate, defaults}}},
		{"expiry day today", func(r *CreateRequest) { r.ExpiresOn = day(0) }, nil},
		{"expiry day the maximum's", func(r *CreateRequest) { r.ExpiresOn = day(10) }, nil},
		{"message not allowed", func(r *CreateRequest) {
			r.To, r.PasswordMode, r.Password = []string{"arts@x.zorg.nl"}, kluis.PasswordManual, "correct horse battery"
		}, []want{{FieldMessage, CodeMessageNotAllowed, care}}},
		{"custom text not allowed", func(r *CreateRequest) {
			r.To, r.Message, r.Body, r.PasswordMode, r.Password = []string{"arts@x.zorg.nl"}, "", "<b>Eigen</b> tekst", kluis.PasswordManual, "correct horse battery"
		}, []want{{FieldBody, CodeCustomTextForbidden, care}}},
		{"empty markup is no custom text", func(r *CreateRequest) {
			r.To, r.Message, r.Subject, r.Body, r.PasswordMode, r.Password = []string{"arts@x.zorg.nl"}, "", "  ", "<p><br></p>", kluis.PasswordManual, "correct horse battery"
		}, nil},
		{"file names not allowed", func(r *CreateRequest) {
			r.To, r.Message, r.Options.ShowFilenames, r.PasswordMode, r.Password = []string{"arts@x.zorg.nl"}, "", true, kluis.PasswordManual, "correct horse battery"
		}, []want{{FieldShowFilenames, CodeFilenamesForbidden, care}}},
		{"unknown password mode", func(r *CreateRequest) { r.PasswordMode = "secret" }, []want{{FieldPasswordMode, CodePasswordModeUnknown, ""}}},
		{"password mode not allowed", func(r *CreateRequest) { r.To, r.Message = []string{"arts@x.zorg.nl"}, "" },
			[]want{{FieldPasswordMode, CodePasswordModeRefused, care}}},
		{"password without manual", func(r *CreateRequest) { r.Password = "correct horse battery" }, []want{{FieldPassword, CodePasswordUnexpected, ""}}},
		{"password empty", func(r *CreateRequest) { r.PasswordMode = kluis.PasswordManual }, []want{{FieldPassword, "password_empty", ""}}},
		{"password spaces", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordManual, "         " }, []want{{FieldPassword, "password_blank", ""}}},
		{"password short", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordManual, "kort" }, []want{{FieldPassword, "password_too_short", ""}}},
		{"password long", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordManual, strings.Repeat("lang ", 60) }, []want{{FieldPassword, "password_too_long", ""}}},
		{"password common", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordManual, "welkom01" }, []want{{FieldPassword, "password_common", ""}}},
		{"password not text", func(r *CreateRequest) { r.PasswordMode, r.Password = kluis.PasswordManual, "geheim\xff\xfe12345" }, []want{{FieldPassword, "password_not_text", ""}}},
		{"files unknown", func(r *CreateRequest) { r.Files = nil; r.Message = "" }, nil},
		{"nothing to send", func(r *CreateRequest) { r.Files, r.Message = []int64{}, " " }, []want{{FieldFiles, CodeNothingToSend, ""}}},
		{"negative file size", func(r *CreateRequest) { r.Files = []int64{10, -1} }, []want{{FieldFiles, CodeFileSizeInvalid, ""}}},
		{"files too large", func(r *CreateRequest) { r.Files = []int64{600, 401} }, []want{{FieldFiles, CodeFilesTooLarge, defaults}}},
		{"files within the size", func(r *CreateRequest) { r.Files = []int64{600, 400} }, nil},
		{"several at once", func(r *CreateRequest) {
			r.To = []string{"x@", "iemand@gmail.com", "arts@x.zorg.nl"}
			r.Subject, r.Lang, r.ExpiresOn = "a\nb", "xx", "morgen"
			r.Files = []int64{501}
		}, []want{
			{FieldSubject, CodeNotOneLine, ""}, {FieldLang, CodeLangUnsupported, ""},
			{FieldTo, CodeAddressInvalid, ""}, {FieldTo, CodeAddressNotAllowed, `rule "no private mail"`},
			{FieldExpires, CodeExpiryFormat, ""}, {FieldMessage, CodeMessageNotAllowed, care},
			{FieldSubject, CodeCustomTextForbidden, care}, {FieldPasswordMode, CodePasswordModeRefused, care}, {FieldFiles, CodeFilesTooLarge, care},
		}},
	}
	en, nl := locale.For(locale.EN), locale.For(locale.NL)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.tune(&r)
			ck, err := svc.Validate(r)
			got := kluis.FieldErrors(err)
			if tc.want == nil {
				if err != nil || ck == nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if ck != nil || len(got) == 0 {
				t.Fatalf("passed (%v), want %v", err, tc.want)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d errors, want %d: %v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if i >= len(got) {
					break
				}
				g := got[i]
				if g.Field != w.field || g.Code != w.code || g.Policy != w.policy {
					t.Errorf("error %d = %s %s [%s], want %s %s [%s]", i, g.Field, g.Code, g.Policy, w.field, w.code, w.policy)
				}
				for _, p := range []*locale.Printer{en, nl} {
					if !p.Has(g.Key) {
						t.Errorf("key %s of %s is not in the %s catalog", g.Key, g.Code, p.Lang())
					} else if txt := g.Text(p); strings.Contains(txt, "%!") {
						t.Errorf("%s in %s: %q", g.Key, p.Lang(), txt)
					}
				}
			}
			code := kluis.EINVALID
			allPolicy := true
			for _, w := range tc.want {
				allPolicy = allPolicy && w.policy != ""
			}
			if allPolicy {
				code = kluis.EPOLICY
			}
			if kluis.ErrorCode(err) != code {
				t.Errorf("code %s, want %s", kluis.ErrorCode(err), code)
			}
		})
	}
}

// TestValidateNormalises: what passes is stored as checked: addresses
// parsed and deduplicated in their first field, the subject trimmed, the
// body sanitized, the language's code, the end of the chosen day.
func TestValidateNormalises(t *testing.T) {
	svc, _ := policyService(t, validatePolicy)
	ctx := context.Background()
	on := svc.Now().In(locale.Amsterdam).AddDate(0, 0, 2)
	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"Piet <Piet@Gemeente.NL>"}, Cc: []string{"piet@gemeente.nl", "a@gemeente.nl"},
		Subject: "  Stukken  ", Body: `<p onclick="x()">Hallo</p>`, Message: "Hallo", Lang: "EN-gb", ExpiresOn: on.Format(time.DateOnly)})
	if err != nil {
		t.Fatal(err)
	}
	var rs []string
	for _, r := range c.Transfer.Recipients {
		rs = append(rs, string(r.Kind)+":"+r.Address)
	}
	if got := strings.Join(rs, " "); got != "to:Piet@gemeente.nl cc:a@gemeente.nl" {
		t.Errorf("recipients %q", got)
	}
	if c.Transfer.Lang != "en" {
		t.Errorf("language %q", c.Transfer.Lang)
	}
	y, m, d := on.Date()
	if want := time.Date(y, m, d, 23, 59, 0, 0, locale.Amsterdam); !c.Transfer.ExpiresAt.Equal(want) {
		t.Errorf("expires %s, want %s", c.Transfer.ExpiresAt, want)
	}
	ck, err := svc.Validate(CreateRequest{SenderEmail: "m@gemeente.nl", To: []string{"a@gemeente.nl"}, Subject: "  Stukken  ", Body: `<p onclick="x()">Hallo</p>`})
	if err != nil {
		t.Fatal(err)
	}
	if ck.Subject != "Stukken" || strings.Contains(ck.Body, "onclick") || !strings.Contains(ck.Body, "Hallo") || ck.Mode != kluis.PasswordGenerate {
		t.Errorf("checked: subject %q, body %q, mode %q", ck.Subject, ck.Body, ck.Mode)
	}
}
