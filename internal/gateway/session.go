package gateway

import (
	"context"
	"errors"
	"io"
	"net/mail"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kluis-nl/kluis/internal/sender"
)

// session is one SMTP connection. go-smtp calls its methods one at a time.
type session struct {
	g         *Gateway
	conn      *smtp.Conn
	relay     bool           // the peer is a trusted relay
	connector string         // the pinned name of the peer's client certificate
	auth      *sender.Sender // the sender of a successful AUTH
	from      string         // envelope sender, lower case
	rcpts     []string       // envelope recipients, lower case, in order, decoded (route)
	plain     []string       // those not addressed through the gateway's domain
	peer      string
	cancel    context.CancelFunc
	context   context.Context
}

func (g *Gateway) newSession(c *smtp.Conn) (smtp.Session, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{g: g, conn: c, relay: g.trusted(c.Conn().RemoteAddr()), peer: c.Conn().RemoteAddr().String(), context: ctx, cancel: cancel}
	return s, nil
}

func smtpErr(code int, enh smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}
}

var (
	errNeedTLS  = smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first: Kluis takes mail only over TLS.")
	errNotTrust = smtpErr(530, smtp.EnhancedCode{5, 7, 0}, "Authentication required: this server takes mail only from the organisation's connector or relay, or with SMTP AUTH and the sender's Kluis API key.")
	errAuth     = smtpErr(535, smtp.EnhancedCode{5, 7, 8}, "Authentication failed: give your e-mail address as the user name and your Kluis API key as the password.")
)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if !s.tls() {
			return errNeedTLS
		}
		// Only API keys: a session token of the web pages is not for
		// mail clients, and the key names the one address it may send as.
		if !strings.HasPrefix(password, sender.APIKeyPrefix) {
			s.g.log.Info("mail gateway: authentication refused", "action", "gateway.auth", "result", "not_api_key", "peer", s.peer)
			return errAuth
		}
		snd, err := s.g.senders.Authenticate(s.context, password)
		if err != nil || !strings.EqualFold(strings.TrimSpace(username), snd.Email) || (identity != "" && !strings.EqualFold(identity, snd.Email)) {
			s.g.log.Info("mail gateway: authentication refused", "action", "gateway.auth", "result", "failed", "peer", s.peer)
			return errAuth
		}
		s.auth = snd
		s.g.log.Info("mail gateway: sender authenticated", "action", "gateway.auth", "result", "ok", "actor", snd.AuditActor(), "peer", s.peer)
		return nil
	}), nil
}

func (s *session) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.tls() {
		return errNeedTLS
	}
	if st, ok := s.conn.TLSConnectionState(); ok && !s.relay && s.auth == nil {
		if name, ok := s.g.pinnedPeer(st); ok {
			s.connector = name
		}
	}
	if !s.relay && s.auth == nil && s.connector == "" {
		s.g.log.Info("mail gateway: mail from an untrusted peer refused", "action", "gateway.mail", "result", "untrusted", "peer", s.peer)
		return errNotTrust
	}
	addr, err := mail.ParseAddress(from)
	if err != nil || from == "" {
		return smtpErr(553, smtp.EnhancedCode{5, 1, 7}, "The sender address is not a valid e-mail address.")
	}
	a := strings.ToLower(addr.Address)
	if s.auth != nil && !strings.EqualFold(a, s.auth.Email) {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Your API key is for "+s.auth.Email+"; you cannot send as another address.")
	}
	if !s.g.svc.Policy().Inside(a) {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The sender "+a+" is not in one of the organisation's domains; Kluis takes mail only from its own organisation.")
	}
	s.from = a
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.from == "" {
		return smtpErr(503, smtp.EnhancedCode{5, 5, 1}, "Give MAIL FROM first.")
	}
	addr, err := mail.ParseAddress(to)
	if err != nil {
		return smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "The recipient address is not a valid e-mail address.")
	}
	a, routed, err := s.g.routeRcpt(strings.ToLower(addr.Address))
	if err != nil {
		return err
	}
	// Answered per recipient, so the mail server bounces exactly the
	// refused ones; the whole list is checked again when the transfer is
	// made.
	if by, refused := s.g.svc.Policy().Refuses(s.from, a); refused {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The organisation's policy ("+by+") does not allow sending to "+a+".")
	}
	if !routed {
		s.plain = append(s.plain, a)
	}
	for _, r := range s.rcpts {
		if r == a {
			return nil
		}
	}
	s.rcpts = append(s.rcpts, a)
	return nil
}

func (s *session) Data(r io.Reader) error {
	err := s.g.take(s.context, envelope{From: s.from, To: s.rcpts, Plain: s.plain, Peer: s.peer, Actor: s.actor()}, r)
	// The rest of a refused mail is read away, so the refusal is the
	// answer to DATA and not a broken connection.
	_, _ = io.Copy(io.Discard, r)
	var se *smtp.SMTPError
	if err != nil && !errors.As(err, &se) {
		s.g.log.Error("mail gateway: mail not taken", "action", "gateway.data", "result", "error", "err", err)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Kluis could not take the mail just now; your mail server will try again.")
	}
	return err
}

func (s *session) actor() string {
	if s.auth != nil {
		return s.auth.AuditActor()
	}
	if s.connector != "" {
		return "connector:" + s.connector
	}
	return "relay:" + s.peer
}

func (s *session) Reset() {
	s.from, s.rcpts, s.plain = "", nil, nil
}

func (s *session) Logout() error {
	s.cancel()
	return nil
}
