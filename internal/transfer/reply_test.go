package transfer_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestReply: a recipient answers with a message and a file; the reply is a
// new transfer from the recipient's address to the original sender,
// protected by the same secret (for password transfers) or by a fresh link
// secret that travels only in the sender's mail (no-password transfers).
func TestReply(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		for _, mode := range []kluis.PasswordMode{kluis.PasswordManual, kluis.PasswordGenerate, kluis.PasswordNone} {
			t.Run(string(mode), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.runMail(t)
				rec := e.withAudit()
				r := e.readyTransfer(createOpts{mode: mode, message: "Hierbij de stukken."}, 1000)
				// The web flow finds the session again by its token.
				sess, err := e.svc.OpenSession(e.ctx, r.sess.Token)
				if err != nil {
					t.Fatal(err)
				}
				d, err := e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Message: "Dank u, hierbij mijn formulier.", Lang: "nl"})
				if err != nil {
					t.Fatal(err)
				}
				data := randomBytes(42, 250_001) // three segments
				f, err := e.svc.AddReplyFile(e.ctx, d, "formulier.pdf", "application/pdf", bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if f.Size != int64(len(data)) || !f.Complete {
					t.Errorf("reply file: size %d complete %v, want %d true", f.Size, f.Complete, len(data))
				}
				fin, err := e.svc.SendReply(e.ctx, d)
				if err != nil {
					t.Fatal(err)
				}
				rt := fin.Transfer
				if rt.SenderEmail != "ontvanger@example.nl" || len(rt.Recipients) != 1 || rt.Recipients[0].Address != "afzender@example.nl" || rt.Recipients[0].Kind != kluis.KindTo {
					t.Fatalf("reply from %s to %+v, want ontvanger@example.nl to afzender@example.nl", rt.SenderEmail, rt.Recipients)
				}
				if rt.PasswordMode != mode || rt.State != kluis.StateReady {
					t.Errorf("reply mode %s state %s, want %s ready", rt.PasswordMode, rt.State, mode)
				}
				if to, err := e.svc.ReplyTo(e.ctx, d.Owner); err != nil || to != r.c.Transfer.ID {
					t.Errorf("ReplyTo = %q, %v; want %s", to, err, r.c.Transfer.ID)
				}

				// The sender's mail carries the link; never the password.
				n := e.app.Mail(mail.KindNotify, "afzender@example.nl")
				if notes := e.app.Mails(mail.KindNotify, "afzender@example.nl"); len(notes) != 1 {
					t.Fatalf("%d notifications to the sender, want 1", len(notes))
				}
				link := fin.Links[0].URL
				if !strings.Contains(n.Text, link) || !strings.Contains(n.Subject, "Antwoord van ontvanger@example.nl") {
					t.Errorf("reply mail: subject %q, link %s missing or text:\n%s", n.Subject, link, n.Text)
				}
				if mode != kluis.PasswordNone && (strings.Contains(n.Text+n.HTML, secretOf(r.c)) || !strings.Contains(n.Text, "hetzelfde wachtwoord")) {
					t.Errorf("reply mail leaks the password or does not say which one opens it:\n%s", n.Text)
				}
				if strings.Contains(n.Text+n.HTML, "Dank u") {
					t.Error("the confidential reply message is in the mail")
				}

				// The sender opens it with their own password and reads
				// message and file.
				sec := secretOf(r.c)
				if mode == kluis.PasswordNone {
					_, frag, ok := strings.Cut(link, "#")
					if !ok || frag == r.c.LinkSecret {
						t.Fatalf("no-password reply link %q must carry a fresh link secret", link)
					}
					_, err := e.svc.Unlock(e.ctx, fin.Links[0].AccessID, r.c.LinkSecret)
					wantCode(t, err, kluis.EWRONGSECRET)
					sec = frag
				} else if !strings.Contains(link, "/r/") || strings.Contains(link, "#") {
					t.Errorf("password reply link %q", link)
				}
				_, err = e.svc.Unlock(e.ctx, fin.Links[0].AccessID, "niet-het-wachtwoord")
				wantCode(t, err, kluis.EWRONGSECRET)
				rs := e.unlock(fin.Links[0].AccessID, sec)
				c, err := e.svc.Contents(e.ctx, rs)
				if err != nil {
					t.Fatal(err)
				}
				if c.Message != "Dank u, hierbij mijn formulier." || len(c.Files) != 1 || c.Files[0].Name != "formulier.pdf" || c.Files[0].ContentType != "application/pdf" || c.Files[0].SHA256 != sha256hex(data) {
					t.Fatalf("reply contents: %q %+v", c.Message, c.Files)
				}
				got, err := e.readFile(rs, c.Files[0].ID)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("reply file read back: %d bytes, err %v", len(got), err)
				}

				// The reply is the recipient's transfer; the original
				// sender is its recipient.
				mine, err := e.svc.SenderTransfers(e.ctx, "ontvanger@example.nl")
				if err != nil || len(mine) != 1 || mine[0].ID != rt.ID {
					t.Errorf("transfers of the replier: %v %v", len(mine), err)
				}

				// The original's overview lists the reply.
				ov, err := e.svc.Overview(e.ctx, owner(r.c))
				if err != nil || len(ov.Replies) != 1 || ov.Replies[0].From != "ontvanger@example.nl" || ov.Replies[0].State != kluis.StateReady {
					t.Errorf("replies of the original: %+v %v", ov, err)
				}

				// One audit entry for the reply, by the recipient, with ids only.
				var replies []store.AuditRow
				for _, a := range e.auditEntries(rec) {
					if a.Action == audit.TransferReply {
						replies = append(replies, a)
					}
				}
				if len(replies) != 1 || replies[0].Actor != audit.Recipient(sess.RecipientID()) || replies[0].Object != r.c.Transfer.ID ||
					!strings.Contains(replies[0].Detail, "reply="+rt.ID) {
					t.Errorf("reply audit entries: %+v", replies)
				}

				// The password is stored nowhere in plain: not in the
				// database (session row included), not in the logs.
				if mode == kluis.PasswordManual {
					walkFiles(t, e.dir, func(path string, b []byte) {
						if bytes.Contains(b, []byte(secretOf(r.c))) {
							t.Errorf("%s holds the password in plain", path)
						}
					})
					if bytes.Contains(e.logs.Bytes(), []byte(secretOf(r.c))) {
						t.Error("the logs hold the password")
					}
				}
			})
		}
	})
}

// TestReplyRefused: no reply to a revoked or expired transfer, nor after
// the recipient's own access was revoked; a session opened before the
// revocation does not help.
func TestReplyRefused(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		end  func(t *testing.T, e *env, r *ready)
		code kluis.Code
	}{
		{"revoked", func(t *testing.T, e *env, r *ready) {
			if err := e.svc.Revoke(e.ctx, owner(r.c), ""); err != nil {
				t.Fatal(err)
			}
		}, kluis.EREVOKED},
		{"recipient revoked", func(t *testing.T, e *env, r *ready) {
			if err := e.svc.Revoke(e.ctx, owner(r.c), "ontvanger@example.nl"); err != nil {
				t.Fatal(err)
			}
		}, kluis.EREVOKED},
		{"expired", func(t *testing.T, e *env, r *ready) { e.clock.Advance(8 * 24 * time.Hour) }, kluis.EEXPIRED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.readyTransfer(createOpts{message: "Bericht"}, 10)
			tc.end(t, e, r)
			_, err := e.svc.StartReply(e.ctx, r.sess, transfer.ReplyRequest{Message: "Antwoord"})
			if ke := wantCode(t, err, tc.code); ke != nil && ke.At == nil {
				t.Errorf("%s refusal carries no date", tc.name)
			}
			if mine, _ := e.svc.SenderTransfers(e.ctx, "ontvanger@example.nl"); len(mine) != 0 {
				t.Errorf("a refused reply left %d transfers", len(mine))
			}
		})
	}
}

// TestReplyLimits: the policy's size budget applies while the file
// streams; an abandoned reply leaves neither row nor blob.
func TestReplyLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *transfer.Config) { c.MaxTransferSize = 150_000 })
	r := e.readyTransfer(createOpts{message: "Bericht"}, 10)
	d, err := e.svc.StartReply(e.ctx, r.sess, transfer.ReplyRequest{Message: "Antwoord"})
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxSize != 150_000 {
		t.Errorf("MaxSize = %d, want 150000", d.MaxSize)
	}
	_, err = e.svc.AddReplyFile(e.ctx, d, "groot.bin", "", bytes.NewReader(randomBytes(1, 200_000)))
	wantCode(t, err, kluis.ETOOLARGE)
	if err := e.svc.AbandonReply(e.ctx, d); err != nil {
		t.Fatal(err)
	}
	if mine, _ := e.svc.SenderTransfers(e.ctx, "ontvanger@example.nl"); len(mine) != 0 {
		t.Errorf("an abandoned reply left %d transfers", len(mine))
	}
	if b := e.blobFiles(d.Owner.TransferID); len(b) != 0 {
		t.Errorf("an abandoned reply left blobs: %v", b)
	}

	// At most MaxReplyFiles files.
	d, err = e.svc.StartReply(e.ctx, r.sess, transfer.ReplyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range transfer.MaxReplyFiles {
		if _, err := e.svc.AddReplyFile(e.ctx, d, "f.txt", "text/plain", strings.NewReader("x")); err != nil {
			t.Fatalf("file %d: %v", i+1, err)
		}
	}
	_, err = e.svc.AddReplyFile(e.ctx, d, "f.txt", "text/plain", strings.NewReader("x"))
	wantCode(t, err, kluis.EINVALID)
	if fs := kluis.FieldErrors(err); len(fs) != 1 || fs[0].Field != transfer.FieldFiles || fs[0].Code != transfer.CodeTooManyFiles {
		t.Errorf("too many files: %v", fs)
	}
	// The message's rules are those of every transfer, also before a
	// draft exists.
	if fs := kluis.FieldErrors(transfer.ReplyRequest{Message: strings.Repeat("a", transfer.MaxMessageLength+1)}.Check()); len(fs) != 1 || fs[0].Code != transfer.CodeTooLong {
		t.Errorf("long reply: %v", fs)
	}
	if err := (transfer.ReplyRequest{Message: "Dank u."}).Check(); err != nil {
		t.Errorf("short reply: %v", err)
	}

	// Neither message nor file: nothing to send.
	d, err = e.svc.StartReply(e.ctx, r.sess, transfer.ReplyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SendReply(e.ctx, d)
	wantCode(t, err, kluis.EINVALID)
}

// TestReplySubjectAndName: the reply's mail to the original sender is
// titled "Re: <original subject>" in the sender's language, and the name
// the replier gave shows in that mail and in the sender's overview.
func TestReplySubjectAndName(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.runMail(t)
		r := e.readyTransfer(createOpts{subject: "Uw aanvraag bijzondere bijstand", message: "Hierbij de stukken."}, 1000)
		sess, err := e.svc.OpenSession(e.ctx, r.sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Name: "  Joke de Vries ", Message: "Mijn formulier.", Lang: "nl"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.AddReplyFile(e.ctx, d, "formulier.pdf", "application/pdf", bytes.NewReader(randomBytes(7, 1000))); err != nil {
			t.Fatal(err)
		}
		fin, err := e.svc.SendReply(e.ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		n := e.app.Mail(mail.KindNotify, "afzender@example.nl")
		if n.Subject != "Antw: Uw aanvraag bijzondere bijstand" {
			t.Errorf("reply mail subject %q, want %q", n.Subject, "Antw: Uw aanvraag bijzondere bijstand")
		}
		if !strings.Contains(n.Text, "Joke de Vries") || !strings.Contains(n.HTML, "Joke de Vries") {
			t.Errorf("reply mail does not name the replier:\n%s", n.Text)
		}
		ov, err := e.svc.Overview(e.ctx, owner(r.c))
		if err != nil || len(ov.Replies) != 1 || ov.Replies[0].Name != "Joke de Vries" || ov.Replies[0].ID != fin.Transfer.ID {
			t.Errorf("replies of the original: %+v %v", ov.Replies, err)
		}

		// A name on more than one line is refused before anything is made.
		_, err = e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Name: "Joke\r\nBcc: x@example.org", Message: "x"})
		wantCode(t, err, kluis.EINVALID)
	})
}
