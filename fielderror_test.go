package kluis_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
)

// TestFieldErrorText: a field error's arguments are shown in the reader's
// language (sizes and dates formatted by the printer); its log form names
// field, code and arguments in no language.
func TestFieldErrorText(t *testing.T) {
	day := time.Date(2030, 3, 4, 12, 0, 0, 0, time.UTC)
	size := kluis.FieldError{Field: "files", Code: "files_too_large", Key: "validate.files_too_large", Args: []any{kluis.Size(3_000_000_000), kluis.Size(2_000_000_000)}}
	date := kluis.FieldError{Field: "expires_at", Code: "expiry_too_late", Key: "validate.expiry_too_late", Args: []any{day}, Policy: `rule "zorg"`}
	for _, tc := range []struct {
		f    kluis.FieldError
		lang locale.Lang
		want string
	}{
		{size, locale.NL, locale.For(locale.NL).T("validate.files_too_large", locale.For(locale.NL).Size(3_000_000_000), locale.For(locale.NL).Size(2_000_000_000))},
		{size, locale.EN, locale.For(locale.EN).T("validate.files_too_large", locale.For(locale.EN).Size(3_000_000_000), locale.For(locale.EN).Size(2_000_000_000))},
		{date, locale.NL, "De vervaldatum kan hoogstens " + locale.For(locale.NL).Date(day) + " zijn. Kies een eerdere datum."},
		{date, locale.EN, "The expiry date can be " + locale.For(locale.EN).Date(day) + " at the latest. Choose an earlier date."},
	} {
		if got := tc.f.Text(locale.For(tc.lang)); got != tc.want || strings.Contains(got, "%!") {
			t.Errorf("%s in %s: %q, want %q", tc.f.Code, tc.lang, got, tc.want)
		}
	}
	if got, want := date.String(), `expires_at: expiry_too_late (2030-03-04) [organisation policy: rule "zorg"]`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

// TestInvalid: policy only when the policy refused every field; the
// fields travel with the error through wrapping.
func TestInvalid(t *testing.T) {
	in := kluis.FieldError{Field: "to", Code: "address_invalid", Key: "k", Args: []any{"x@"}}
	pol := kluis.FieldError{Field: "to", Code: "address_not_allowed", Key: "k", Args: []any{"a@b.nl"}, Policy: `rule "r"`}
	for _, tc := range []struct {
		fs   []kluis.FieldError
		want kluis.Code
	}{
		{[]kluis.FieldError{in}, kluis.EINVALID},
		{[]kluis.FieldError{pol}, kluis.EPOLICY},
		{[]kluis.FieldError{pol, in}, kluis.EINVALID},
		{nil, kluis.EINVALID},
	} {
		err := fmt.Errorf("create: %w", kluis.Invalid(tc.fs...))
		if got := kluis.ErrorCode(err); got != tc.want {
			t.Errorf("%v: code %s, want %s", tc.fs, got, tc.want)
		}
		if got := kluis.FieldErrors(err); len(got) != len(tc.fs) {
			t.Errorf("%v: FieldErrors = %v", tc.fs, got)
		}
	}
	if msg := kluis.ErrorMessage(kluis.Invalid(in, pol)); !strings.Contains(msg, `to: address_invalid ("x@")`) || !strings.Contains(msg, "address_not_allowed") {
		t.Errorf("message for logs: %q", msg)
	}
	if kluis.FieldErrors(errors.New("plain")) != nil {
		t.Error("a plain error has field errors")
	}
}
