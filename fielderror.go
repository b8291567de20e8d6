package kluis

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// FieldError is one problem with one field of a request. It carries no
// sentence of its own: Key names the text in the catalogs of
// internal/locale, so every page, mail and API answer shows it in the
// reader's language (see Text). Code is the stable, machine-readable name
// of the problem for API clients.
type FieldError struct {
	// Field is the request field, named as in the API's JSON ("to",
	// "expires_at", "password.value").
	Field string
	// Code is stable: "address_invalid", "expiry_too_late", …
	Code string
	// Key is the catalog key of the message ("validate.address_invalid").
	Key string
	// Args are the message's arguments: strings, ints, a Size (shown as a
	// size) or a time.Time (shown as a date).
	Args []any
	// Policy says what in the organisation's policy refused the field
	// (`rule "name"`, "the default limits", "the default rule"), for
	// administrators and logs; "" when the input itself is wrong or the
	// server's own limit refused it.
	Policy string
}

// Size is a number of bytes among a FieldError's Args.
type Size int64

// Printer turns a catalog key and arguments into text in one language;
// *locale.Printer is one.
type Printer interface {
	T(key string, args ...any) string
	Date(t time.Time) string
	Size(n int64) string
}

// Text returns the message in p's language.
func (f FieldError) Text(p Printer) string {
	args := make([]any, len(f.Args))
	for i, a := range f.Args {
		switch v := a.(type) {
		case Size:
			args[i] = p.Size(int64(v))
		case time.Time:
			args[i] = p.Date(v)
		default:
			args[i] = a
		}
	}
	return p.T(f.Key, args...)
}

// String is the problem for logs: the field, the code and the arguments,
// in no language.
func (f FieldError) String() string {
	var b strings.Builder
	b.WriteString(f.Field)
	b.WriteString(": ")
	b.WriteString(f.Code)
	if len(f.Args) > 0 {
		as := make([]string, len(f.Args))
		for i, a := range f.Args {
			switch v := a.(type) {
			case time.Time:
				as[i] = v.UTC().Format(time.DateOnly)
			case string:
				as[i] = fmt.Sprintf("%q", printable(v))
			default:
				as[i] = fmt.Sprint(v)
			}
		}
		b.WriteString(" (" + strings.Join(as, ", ") + ")")
	}
	if f.Policy != "" {
		b.WriteString(" [organisation policy: " + f.Policy + "]")
	}
	return b.String()
}

// Invalid returns the error of a request with the given field errors:
// EPOLICY when the organisation's policy refused every one of them, else
// EINVALID. Its Message lists them for logs (String); show them with
// FieldError.Text.
func Invalid(fields ...FieldError) *Error {
	code := EPOLICY
	parts := make([]string, len(fields))
	for i, f := range fields {
		if f.Policy == "" {
			code = EINVALID
		}
		parts[i] = f.String()
	}
	if len(fields) == 0 {
		code = EINVALID
	}
	return &Error{Code: code, Message: "Check these fields: " + strings.Join(parts, "; ") + ".", Fields: fields}
}

// FieldErrors returns the field errors err carries, if any.
func FieldErrors(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
