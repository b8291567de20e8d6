package web

// Reply: a recipient with an unlocked download session answers the
// sender with a message and files. The session proves the recipient's
// address, so no verification is asked. The form is a plain
// multipart/form-data POST (no script needed); each file part is streamed
// into the engine, which encrypts it as it arrives, so no plaintext is
// written to disk.

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Reply rate limits (issue 11, item 6: one recipient sent 30 replies in
// 3.4 s, each a transfer of up to 2 GB that mails the sender). The policy
// bounds the replies per recipient and transfer (max_replies); this bounds
// how fast anyone can use the reply pages at all, per client IP and over
// all clients, so a script cannot burst through a recipient's allowance
// or spread over many links.
const (
	ReplyPerMinute       = 6
	ReplyBurst           = 4
	ReplyGlobalPerMinute = 120
)

// NewReplyLimiter returns the default limiter of the reply pages (GET and
// POST /r/{access}/reply): ReplyPerMinute per client IP with bursts of
// ReplyBurst, ReplyGlobalPerMinute over all clients.
func NewReplyLimiter() *ratelimit.Limiter {
	return ratelimit.New(ratelimit.Config{PerMinute: ReplyPerMinute, Burst: ReplyBurst, GlobalPerMinute: ReplyGlobalPerMinute})
}

// limitReplies answers requests over the reply limit with a page (429 and
// Retry-After) instead of running next. The client IP is the one the
// server's middleware found (trusted proxies only).
func (h *Web) limitReplies(next func(http.ResponseWriter, *http.Request)) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		ip, ok := clientip.FromContext(r.Context())
		if !ok {
			ip = clientip.Of(r, nil)
		}
		if ok, wait := h.replies.Allow(r.Context(), ip); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
			// A refused upload is not read; do not drain it.
			w.Header().Set("Connection", "close")
			h.problemLookup(w, r, http.StatusTooManyRequests, "reply.too_fast", "/r/"+r.PathValue("access")+"/open", false)
			return
		}
		next(w, r)
	}
}

// replyFraming is what a reply's request may hold besides the files: the
// message and the multipart framing.
const replyFraming = transfer.MaxMessageLength + 1<<20

// replyPage is the reply form, and the page after sending.
type replyPage struct {
	Access     string
	To         string // the original sender's address
	SenderName string
	Password   bool // the reply is protected by the same password
	MaxSize    int64
	MaxFiles   int
	// Name is the replier's own name as typed (optional).
	Name    string
	Message string
	// Files names what was sent, on the confirmation page.
	Files []string
	// MessageOnly: the transfer answered holds a message and no files.
	MessageOnly bool
}

func (h *Web) replyData(r *http.Request, s *transfer.Session) (*replyPage, error) {
	c, err := h.svc.Contents(r.Context(), s)
	if err != nil {
		return nil, err
	}
	maxSize, err := h.svc.ReplyMaxSize(r.Context(), s)
	if err != nil {
		return nil, err
	}
	return &replyPage{
		Access: r.PathValue("access"), To: c.Transfer.SenderEmail, SenderName: c.Transfer.SenderName,
		Password: c.Transfer.PasswordMode != kluis.PasswordNone, MaxSize: maxSize, MaxFiles: transfer.MaxReplyFiles,
		MessageOnly: len(c.Files) == 0,
	}, nil
}

// replyPageOr is replyData, or the page that says why this recipient
// cannot reply (policy, revoked, expired) with false.
func (h *Web) replyPageOr(w http.ResponseWriter, r *http.Request, s *transfer.Session, access string) (*replyPage, bool) {
	p, err := h.replyData(r, s)
	if kluis.ErrorCode(err) == kluis.EPOLICY {
		h.problem(w, r, http.StatusForbidden, "reply.refused", "/r/"+access+"/open")
		return nil, false
	}
	if err != nil {
		h.linkError(w, r, access, err)
		return nil, false
	}
	return p, true
}

// replyForm shows the reply form to an unlocked recipient.
func (h *Web) replyForm(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	h.unlocked(w, r, func(s *transfer.Session) {
		p, ok := h.replyPageOr(w, r, s, access)
		if !ok {
			return
		}
		h.render(w, r, http.StatusOK, "reply", h.newView(r, p))
	})
}

// reply reads the form part by part: the message first (it comes before
// the file field in the form), then each file streamed into the reply.
func (h *Web) reply(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	h.unlocked(w, r, func(s *transfer.Session) {
		p, ok := h.replyPageOr(w, r, s, access)
		if !ok {
			return
		}
		fail := func(status int, field, key string) {
			v := h.newView(r, p)
			v.Here = "/r/" + access + "/reply"
			v.Errors = []fieldError{{Field: field, Key: key}}
			// The rest of a refused body is not read; close the
			// connection rather than drain gigabytes.
			w.Header().Set("Connection", "close")
			h.render(w, r, status, "reply", v)
		}
		r.Body = http.MaxBytesReader(w, r.Body, p.MaxSize+replyFraming)
		mr, err := r.MultipartReader()
		if err != nil {
			fail(http.StatusUnprocessableEntity, "message", "reply.error_form")
			return
		}
		var draft *transfer.ReplyDraft
		abandon := func() {
			if draft != nil {
				if err := h.svc.AbandonReply(r.Context(), draft); err != nil {
					h.log.Error("web: abandon reply", "err", err)
				}
				draft = nil
			}
		}
		start := func() bool {
			if draft != nil {
				return true
			}
			draft, err = h.svc.StartReply(r.Context(), s, transfer.ReplyRequest{Name: p.Name, Message: p.Message, Lang: string(h.pageLang(r, true))})
			if err != nil {
				draft = nil
				h.replyFailed(w, r, access, err, fail)
				return false
			}
			return true
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				abandon()
				h.bodyFailed(err, fail)
				return
			}
			switch part.FormName() {
			case "name":
				if draft != nil {
					abandon()
					fail(http.StatusUnprocessableEntity, "message", "reply.error_form")
					return
				}
				b, err := io.ReadAll(io.LimitReader(part, transfer.MaxNameLength+1))
				if err != nil {
					h.bodyFailed(err, fail)
					return
				}
				p.Name = string(b)
				if err := (transfer.ReplyRequest{Name: p.Name}).Check(); err != nil {
					h.replyFailed(w, r, access, err, fail)
					return
				}
			case "message":
				if draft != nil {
					abandon()
					fail(http.StatusUnprocessableEntity, "message", "reply.error_form")
					return
				}
				b, err := io.ReadAll(io.LimitReader(part, transfer.MaxMessageLength+1))
				if err != nil {
					h.bodyFailed(err, fail)
					return
				}
				p.Message = strings.ReplaceAll(string(b), "\r\n", "\n")
				// The engine's rules, before any file is read.
				if err := (transfer.ReplyRequest{Message: p.Message}).Check(); err != nil {
					h.replyFailed(w, r, access, err, fail)
					return
				}
			case "files":
				if part.FileName() == "" {
					// The file field without a chosen file.
					continue
				}
				if !start() {
					return
				}
				if _, err := h.svc.AddReplyFile(r.Context(), draft, part.FileName(), part.Header.Get("Content-Type"), part); err != nil {
					abandon()
					if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
						fail(http.StatusUnprocessableEntity, "files", "reply.error_too_large")
						return
					}
					h.replyFailed(w, r, access, err, fail)
					return
				}
				p.Files = append(p.Files, kluis.CleanFileName(part.FileName()))
			}
			part.Close()
		}
		if draft == nil && strings.TrimSpace(p.Message) == "" {
			fail(http.StatusUnprocessableEntity, "message", "reply.error_empty")
			return
		}
		if !start() {
			return
		}
		if _, err := h.svc.SendReply(r.Context(), draft); err != nil {
			abandon()
			h.replyFailed(w, r, access, err, fail)
			return
		}
		v := h.newView(r, p)
		v.Here = "/r/" + access + "/open"
		h.render(w, r, http.StatusOK, "reply_sent", v)
	})
}

// bodyFailed answers a request body that broke off or was too large.
func (h *Web) bodyFailed(err error, fail func(status int, field, key string)) {
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		fail(http.StatusUnprocessableEntity, "files", "reply.error_too_large")
		return
	}
	fail(http.StatusUnprocessableEntity, "files", "reply.error_broken")
}

// replyFailed answers an engine error while writing a reply: limits are
// field errors on the form; a transfer that ended gets its page. The
// status is the error's (formStatus, statusOf).
func (h *Web) replyFailed(w http.ResponseWriter, r *http.Request, access string, err error, fail func(status int, field, key string)) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		fail(http.StatusUnprocessableEntity, "files", "reply.error_too_large")
	case kluis.ErrorCode(err) == kluis.ETOOLARGE:
		fail(formStatus(err), "files", "reply.error_too_large")
	case kluis.ErrorCode(err) == kluis.EINVALID:
		field, key := replyFieldKey(kluis.FieldErrors(err))
		fail(formStatus(err), field, key)
	case kluis.ErrorCode(err) == kluis.EPOLICY:
		h.problem(w, r, statusOf(err), "reply.refused", "/r/"+access+"/open")
	case kluis.ErrorCode(err) == kluis.ENOSPACE:
		fail(formStatus(err), "files", "reply.error_space")
	case kluis.ErrorCode(err) == kluis.EINFECTED:
		// The malware scan at send: the reply was deleted whole and nobody
		// was told; the engine's own message names the signature, which
		// the recipient does not need.
		fail(formStatus(err), "files", "reply.error_infected")
	case kluis.ErrorCode(err) == kluis.EUNSCANNABLE:
		fail(formStatus(err), "files", "reply.error_unscannable")
	case errors.Is(err, transfer.ErrReplyLimit):
		setRetryAfter(w, err)
		h.problem(w, r, statusOf(err), "reply.limit", "/r/"+access+"/open")
	case kluis.ErrorCode(err) == kluis.EQUOTA:
		// The recipient's own unfinished transfers or daily volume, as a
		// sender.
		setRetryAfter(w, err)
		fail(formStatus(err), "files", "reply.error_quota")
	default:
		h.linkError(w, r, access, err)
	}
}

// replyFieldKey is the reply form's field and message for the engine's
// field errors: the reply page's own texts, which every language has
// (recipients read them), rather than the senders' validate.* texts.
func replyFieldKey(fs []kluis.FieldError) (field, key string) {
	for _, f := range fs {
		switch {
		case f.Field == transfer.FieldFiles && f.Code == transfer.CodeTooManyFiles:
			return "files", "reply.error_too_many"
		case f.Field == transfer.FieldMessage && f.Code == transfer.CodeTooLong:
			return "message", "reply.error_message_long"
		case f.Field == transfer.FieldSenderName:
			return "name", "reply.error_name"
		}
	}
	return "message", "reply.error_invalid"
}
