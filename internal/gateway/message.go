package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
	"golang.org/x/text/encoding/htmlindex"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	kmail "github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// envelope is what the SMTP session established before DATA.
type envelope struct {
	From string   // lower case, inside the organisation
	To   []string // lower case, each allowed by the policy (decoded: route)
	// Plain are the recipients of To not addressed through the gateway's
	// domain: a mail without a subject marker is taken only when there
	// are none.
	Plain []string
	Peer  string
	Actor string // the audit actor
}

// maxDepth bounds MIME nesting: deeper is a crafted mail, not a real one.
const maxDepth = 20

// source is the DATA stream; it keeps the first read error, so that the
// size limit of go-smtp (a 552 SMTPError) is answered as such even when a
// reader above it turned it into something else.
type source struct {
	r   io.Reader
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// taking is one mail on its way to becoming a transfer.
type taking struct {
	g       *Gateway
	ctx     context.Context
	env     envelope
	name    string // the From header's display name
	lang    string
	subject string
	to, cc  []string
	bcc     []string
	text    strings.Builder
	created *transfer.Created
	owner   transfer.Owner
	files   int
	extra   int    // text parts that came after a file (kept as files)
	claim   *claim // the hold on the mail's dedupe row; nil without a Message-ID
}

// take reads one mail from r and turns it into a transfer, or returns
// why not (an *smtp.SMTPError for the sender, or an internal error).
func (g *Gateway) take(ctx context.Context, env envelope, r io.Reader) error {
	src := &source{r: r}
	err := g.takeFrom(ctx, env, src)
	if errors.Is(err, errDuplicate) {
		return nil
	}
	var se *smtp.SMTPError
	if src.err != nil && errors.As(src.err, &se) {
		// The size limit (or a broken stream) decides the answer.
		return se
	}
	return err
}

func (g *Gateway) takeFrom(ctx context.Context, env envelope, src *source) error {
	msg, err := mail.ReadMessage(bufio.NewReaderSize(src, 64<<10))
	if err != nil {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "The mail's header could not be read; it is not a valid Internet mail (RFC 5322).")
	}
	t := &taking{g: g, ctx: audit.WithActor(ctx, env.Actor), env: env}
	if err := t.header(msg.Header); err != nil {
		return t.answer(err)
	}
	if err := t.claimMail(msg.Header.Get("Message-Id")); err != nil {
		return t.answer(err)
	}
	// Whatever ends this taking other than finish releases the claim.
	defer t.release()
	if err := t.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0, nil); err != nil {
		t.abandon()
		return t.answer(err)
	}
	if err := t.finish(); err != nil {
		t.abandon()
		return t.answer(err)
	}
	return nil
}

// loop refuses a mail that is going round: one of Kluis's own mails (the
// mail server routed it back), a mail a program sent (an auto-reply, a
// bounce, a forward rule), or a mail that passed more servers than a real
// one does.
func (t *taking) loop(h mail.Header) error {
	if h.Get(kmail.OriginHeader) != "" {
		return smtpErr(554, smtp.EnhancedCode{5, 4, 6}, "This is a mail Kluis sent itself (it has the "+kmail.OriginHeader+" header); Kluis does not take its own mails, or they would go round in a loop. Check the mail server's routing to Kluis.")
	}
	if as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); as != "" && as != "no" {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "This mail was sent automatically (Auto-Submitted: "+oneLine(as)+"); Kluis takes only mail a person sends, so that auto-replies and forwarding rules cannot send files on.")
	}
	if n := len(h["Received"]); n > t.g.cfg.MaxHops {
		return smtpErr(554, smtp.EnhancedCode{5, 4, 6}, fmt.Sprintf("This mail passed %d mail servers (Received headers), more than %d: it is going round in a loop.", n, t.g.cfg.MaxHops))
	}
	return nil
}

// header checks the From header and the subject's marker, and sorts the
// envelope recipients into To, Cc and Bcc.
func (t *taking) header(h mail.Header) error {
	if err := t.loop(h); err != nil {
		return err
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The mail must have one From address, the same as the envelope sender.")
	}
	if !strings.EqualFold(from[0].Address, t.env.From) {
		// Else a trusted relay could hand over a mail that shows another
		// sender than the one the policy and the audit log see.
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The From address of the mail is not the envelope sender "+t.env.From+"; Kluis takes a mail only from the address it is sent from.")
	}
	t.name = strings.ToValidUTF8(from[0].Name, "")
	subject, err := wordDecoder.DecodeHeader(h.Get("Subject"))
	if err != nil {
		subject = h.Get("Subject")
	}
	rest, err := t.g.unmarkOrRouted(subject, t.env)
	if err != nil {
		return err
	}
	t.subject = strings.ToValidUTF8(rest, "")
	t.lang = t.g.senderLang(t, h.Get("Content-Language"))
	seen := map[string]bool{}
	envTo := map[string]bool{}
	for _, a := range t.env.To {
		envTo[a] = true
	}
	// Header addresses that are not envelope recipients were not routed
	// here (the mail server delivers them elsewhere); envelope recipients
	// not in To or Cc were Bcc, and stay hidden from the others.
	pick := func(field string) []string {
		list, err := h.AddressList(field)
		if err != nil {
			return nil
		}
		var out []string
		for _, a := range list {
			addr, _, err := route(strings.ToLower(a.Address), t.g.via)
			if err == nil && envTo[addr] && !seen[addr] {
				seen[addr] = true
				out = append(out, addr)
			}
		}
		return out
	}
	t.to = pick("To")
	t.cc = pick("Cc")
	for _, a := range t.env.To {
		if !seen[a] {
			t.bcc = append(t.bcc, a)
		}
	}
	return nil
}

// unmark returns the subject without its marker, if it has one.
func (g *Gateway) unmark(subject string) (string, bool) {
	s := strings.TrimSpace(subject)
	low := strings.ToLower(s)
	for _, m := range g.cfg.Markers {
		if strings.HasPrefix(low, m) {
			// Lower-casing keeps the byte length of these ASCII markers,
			// so the cut is at the same place in s.
			return strings.TrimSpace(s[len(m):]), true
		}
	}
	return "", false
}

var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, in io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, err
	}
	return enc.NewDecoder().Reader(in), nil
}}

// walk takes one MIME part: a multipart is walked part by part, a text
// part becomes the message, anything else a file. alt is set inside a
// multipart/alternative: true once one of its versions gave the text.
func (t *taking) walk(h textproto.MIMEHeader, body io.Reader, depth int, alt *bool) error {
	if depth > maxDepth {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "The mail's MIME parts are nested too deeply.")
	}
	ct, params := mediaType(h.Get("Content-Type"), "text/plain")
	if strings.HasPrefix(ct, "multipart/") {
		b := params["boundary"]
		if b == "" {
			return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "A multipart part of the mail has no boundary.")
		}
		inner := alt
		if ct == "multipart/alternative" {
			inner = new(bool)
			if alt != nil && *alt {
				*inner = true
			}
		}
		mr := multipart.NewReader(body, b)
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "The mail's MIME structure is broken: "+err.Error()+".")
			}
			if err := t.walk(p.Header, p, depth+1, inner); err != nil {
				return err
			}
			if inner != nil && alt != nil && *inner {
				*alt = true
			}
		}
		return nil
	}
	disp, dparams := mediaType(h.Get("Content-Disposition"), "")
	name := fileName(dparams["filename"], params["name"])
	data, err := decoded(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return err
	}
	isText := (ct == "text/plain" || ct == "text/html") && disp != "attachment" && name == ""
	switch {
	case isText && alt != nil && *alt:
		// Another version of a text already taken.
		_, err := io.Copy(io.Discard, data)
		return decodeErr(err)
	case isText && t.created == nil:
		if alt != nil {
			*alt = true
		}
		return t.addText(ct, params["charset"], data)
	case isText:
		// Text after a file (some mail clients put text between
		// attachments): the message is already sealed, so it is kept as
		// a file rather than lost.
		t.extra++
		ext := ".txt"
		if ct == "text/html" {
			ext = ".html"
		}
		name = fmt.Sprintf("text-%d%s", t.extra, ext)
	}
	if ct == "application/ms-tnef" || ct == "application/vnd.ms-tnef" || strings.EqualFold(name, "winmail.dat") {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 3}, "The mail has a winmail.dat attachment (Outlook's rich text format, TNEF), which recipients cannot open. Send it again in HTML or plain text format.")
	}
	if name == "" {
		name = fmt.Sprintf("attachment-%d", t.files+1)
		if ct == "message/rfc822" {
			name += ".eml"
		} else if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
			name += exts[0]
		}
	}
	return t.addFile(name, ct, data)
}

// mediaType parses a Content-Type or Content-Disposition; a value that
// cannot be parsed gives def and no parameters.
func mediaType(v, def string) (string, map[string]string) {
	if strings.TrimSpace(v) == "" {
		return def, map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if mt == "" {
		return def, map[string]string{}
	}
	if err != nil || params == nil {
		params = map[string]string{}
	}
	return mt, params
}

// fileName is the attachment's name: RFC 2231 parameters are decoded by
// mime.ParseMediaType; RFC 2047 words in a quoted name (as Outlook and
// others still write) are decoded here.
func fileName(names ...string) string {
	for _, n := range names {
		if n == "" {
			continue
		}
		if d, err := wordDecoder.DecodeHeader(n); err == nil {
			n = d
		}
		if n = strings.TrimSpace(strings.ToValidUTF8(n, "")); n != "" {
			return n
		}
	}
	return ""
}

// decoded undoes the part's transfer encoding, as the part streams.
func decoded(cte string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "base64":
		// The decoder skips the line ends.
		return base64.NewDecoder(base64.StdEncoding, r), nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	default:
		return nil, smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "A part of the mail has an unknown Content-Transfer-Encoding: "+strings.ToValidUTF8(cte, "?")+".")
	}
}

// decodeErr turns a read error of a part into an answer: the size limit
// and a broken stream keep theirs (take looks at the source), broken
// base64 or quoted-printable is the mail's fault.
func decodeErr(err error) error {
	if err == nil {
		return nil
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) || strings.Contains(err.Error(), "quotedprintable") {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "A part of the mail is not validly encoded (base64 or quoted-printable).")
	}
	return err
}

// addText appends a text part to the message (HTML cleaned and turned
// into text as the notification editor's text is).
func (t *taking) addText(ct, charset string, r io.Reader) error {
	limit := int64(transfer.MaxMessageLength)
	b, err := io.ReadAll(io.LimitReader(r, 4*limit+1))
	if err != nil {
		return decodeErr(err)
	}
	if int64(len(b)) > 4*limit {
		return tooLongText()
	}
	s := string(b)
	if cs := strings.ToLower(strings.TrimSpace(charset)); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if enc, err := htmlindex.Get(cs); err == nil {
			if d, err := enc.NewDecoder().String(s); err == nil {
				s = d
			}
		}
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if ct == "text/html" {
		s = kmail.BodyText(s)
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" {
		return nil
	}
	if t.text.Len() > 0 {
		t.text.WriteString("\n\n")
	}
	t.text.WriteString(s)
	if t.text.Len() > int(limit) {
		return tooLongText()
	}
	return nil
}

func tooLongText() error {
	return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("The text of the mail is longer than Kluis takes as a message (%d bytes). Send the text as an attachment instead.", transfer.MaxMessageLength))
}

// message is the confidential message: the subject (which may itself be
// confidential, so it never goes into a notification) and the text.
func (t *taking) message() string {
	var b strings.Builder
	if t.subject != "" {
		b.WriteString(t.subject)
	}
	if t.text.Len() > 0 {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(t.text.String())
	}
	return b.String()
}

// create makes the transfer, once: at the first file, or at the end.
func (t *taking) create() error {
	if t.created != nil {
		return nil
	}
	c, err := t.g.svc.Create(t.ctx, transfer.CreateRequest{
		SenderEmail: t.env.From, SenderName: t.name,
		To: t.to, Cc: t.cc, Bcc: t.bcc,
		Message:      t.message(),
		SenderLang:   t.lang,
		PasswordMode: kluis.PasswordGenerate,
	})
	if err != nil {
		return err
	}
	t.created, t.owner = c, transfer.Owner{TransferID: c.Transfer.ID}
	if err := t.noteOrigin(); err != nil {
		return err
	}
	return t.recordTransfer(c.Transfer.ID)
}

// addFile streams one attachment into the transfer's segments.
func (t *taking) addFile(name, ct string, r io.Reader) error {
	if err := t.create(); err != nil {
		return err
	}
	f, err := t.g.svc.NewPlainFile(t.ctx, t.owner, name, ct, -1)
	if err != nil {
		return err
	}
	t.files++
	rd := &source{r: r}
	if _, err := t.g.svc.WriteFile(t.ctx, t.owner, f.ID, 0, rd); err != nil {
		if rd.err != nil {
			if derr := decodeErr(rd.err); derr != rd.err {
				return derr
			}
		}
		return err
	}
	if rd.err != nil {
		return decodeErr(rd.err)
	}
	_, err = t.g.svc.CompleteFile(t.ctx, t.owner, f.ID)
	return err
}

// finish makes the transfer ready: the malware scan runs first, then the
// recipients' notifications and the sender's confirmation (which holds
// the password) are queued in one transaction. A mail the scan refuses
// gets no confirmation, and its password is not kept; while the transfer
// waits for clamd the confirmation is held with the notifications.
func (t *taking) finish() error {
	if err := t.create(); err != nil {
		return err
	}
	id := t.created.Transfer.ID
	c := Confirmation{TransferID: id, Sender: t.env.From, Lang: t.lang, Password: t.created.Password}
	t.created.Password = ""
	_, err := t.g.svc.FinishWith(t.ctx, t.owner, "", func(ctx context.Context, tx *store.Tx) ([]string, error) {
		ids, err := t.g.conf.Confirm(ctx, tx, c)
		if err != nil {
			return nil, fmt.Errorf("confirmation of %s: %w", id, err)
		}
		return ids, nil
	})
	c.Password = ""
	if err != nil {
		return err
	}
	t.taken(id)
	t.g.log.Info("mail gateway: transfer made from a mail", "action", "gateway.take", "result", "ok", "transfer", id,
		"files", t.files, "recipients", len(t.to)+len(t.cc)+len(t.bcc), "actor", t.env.Actor)
	return nil
}

// abandon removes the draft of a mail that was refused: nothing of it is
// kept and no recipient heard of it.
func (t *taking) abandon() {
	if t.created == nil {
		return
	}
	t.created.Password = ""
	ctx := context.WithoutCancel(t.ctx)
	if err := t.g.svc.Revoke(ctx, t.owner, ""); err != nil && kluis.ErrorCode(err) != kluis.ECONFLICT {
		t.g.log.Error("mail gateway: revoke the draft of a refused mail", "transfer", t.owner.TransferID, "err", err)
		return
	}
	if err := t.g.svc.Erase(ctx, t.owner); err != nil {
		t.g.log.Error("mail gateway: erase the draft of a refused mail", "transfer", t.owner.TransferID, "err", err)
	}
}
