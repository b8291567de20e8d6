package gateway

import (
	"strings"

	"github.com/kluis-nl/kluis/internal/locale"
)

// Kluis's own non-delivery report (issue 18 item 4).
//
// Everything the gateway can decide while the mail arrives is refused in
// the SMTP session, so the organisation's mail server bounces it. What
// can refuse a mail after the 250 is a malware scan that had to wait
// (clamd away, fail-closed): then the sender gets Kluis's own report
// (mail.KindNotDelivered, written by the engine when the scan fails), in
// their language, quoting the mail's subject, never its text or
// attachments. For that the gateway notes the subject with the draft
// (transfer.NoteMailOrigin), and Cleanup erases it once the transfer is
// sent.

// senderLang is the language of the mails to the sender of a mail: the
// language of their last session on Kluis's pages, else the language the
// mail says it is written in (Content-Language: Outlook writes the
// writer's), else Kluis's default (Dutch).
func (g *Gateway) senderLang(t *taking, contentLanguage string) string {
	if l, err := g.senders.KnownLang(t.ctx, t.env.From); err != nil {
		g.log.Warn("mail gateway: the sender's language could not be looked up", "err", err)
	} else if l, ok := locale.Parse(l); ok {
		return string(l)
	}
	for tag := range strings.SplitSeq(contentLanguage, ",") {
		if l, ok := locale.Parse(strings.TrimSpace(tag)); ok {
			return string(l)
		}
	}
	return string(locale.Default)
}

// noteOrigin records the mail behind the new draft, for a non-delivery
// report if the transfer is refused after the 250.
func (t *taking) noteOrigin() error {
	return t.g.svc.NoteMailOrigin(t.ctx, t.owner, t.subject, t.g.now())
}
