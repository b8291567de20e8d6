package gateway

import (
	"errors"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
)

// answer turns the engine's refusal into the SMTP reply the mail server
// bounces to the sender: 5xx for what sending again will not change, 4xx
// for what waiting may. Internal errors are returned as they are (Data
// answers 451 and logs them).
func (t *taking) answer(err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		t.g.log.Info("mail gateway: mail refused", "action", "gateway.take", "result", "refused", "code", se.Code, "actor", t.env.Actor)
		return se
	}
	var ke *kluis.Error
	if !errors.As(err, &ke) {
		return err
	}
	t.g.log.Info("mail gateway: mail refused", "action", "gateway.take", "result", string(ke.Code), "actor", t.env.Actor)
	msg := oneLine(reason(ke))
	switch ke.Code {
	case kluis.EPOLICY, kluis.EFORBIDDEN:
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, msg)
	case kluis.EINVALID:
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, msg)
	case kluis.ETOOLARGE, kluis.ETOOMANY:
		return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, msg)
	case kluis.EQUOTA:
		if ke.RetryAfter > 0 {
			return smtpErr(452, smtp.EnhancedCode{4, 2, 2}, msg)
		}
		return smtpErr(552, smtp.EnhancedCode{5, 2, 2}, msg)
	case kluis.EINFECTED, kluis.EUNSCANNABLE:
		return smtpErr(554, smtp.EnhancedCode{5, 7, 1}, msg)
	case kluis.EUNAVAILABLE, kluis.ENOSPACE, kluis.ESCANPENDING, kluis.ETOOMANYREQUESTS:
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, msg)
	}
	return err
}

// reason is the error's message with its field problems in English (the
// bounce goes through the mail server, which speaks no other language).
func reason(e *kluis.Error) string {
	parts := []string{strings.TrimSpace(e.Message)}
	p := locale.For(locale.EN)
	for _, f := range e.Fields {
		parts = append(parts, f.Text(p))
	}
	return strings.Join(parts, " ")
}

// oneLine keeps a reply on one line (a CR or LF would end it early).
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return strings.ToValidUTF8(s, "")
}
