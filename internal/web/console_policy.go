package web

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/kluis-nl/kluis"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/role"
)

// The console's policy page (/admin/policy): the policy in force as a
// summary and as its file, "test this sender and recipient" (answered by
// the engine's own decision, transfer.Service.Decide and
// Policy.RecipientAuth, the code the send path runs), and the validation
// of a new policy file, which is never put in force from here. Nothing on
// the page changes anything, and the policy file has no secrets (client
// secrets live in files it names, which this page does not read), so
// every staff role may use it: the helpdesk answers "why may I not send
// to this address?" with it.
var rolesPolicy = []role.Role{role.Admin, role.Auditor, role.Helpdesk}

type consolePolicy struct {
	Nav      consoleNav
	Demo     bool
	Domains  []string
	SSO      []string
	Defaults kpolicy.Limits
	Rules    []kpolicy.RuleSummary
	Logins   []kpolicy.LoginProvider

	File     string // the --policy file, "" for the built-in policy
	Raw      string // its text on disk now
	FileNote string // catalog key: the file differs from, or cannot replace, the policy in force

	Test *policyTest

	Validated bool
	Text      string          // the pasted or uploaded file, as given
	Problems  []policyProblem // every validation error, in file order; none when valid
}

// policyProblem is one error of a policy file being validated.
type policyProblem struct {
	Line    int    // 0 when it is about the whole file
	Where   string // the field (JSON path), if any
	Message string // the engine's own words (English)
}

// policyTest is the answer to "may this sender send to this recipient?".
type policyTest struct {
	Sender, Recipient string
	Checked           bool
	Allowed           bool
	By                string // the refusing rule's name, or "" for the default rule
	Message           string // the engine's own words (English), as the send form's error has them
	Rules             []string
	Limits            kpolicy.Limits
	Auth              kpolicy.AuthLimits
	SSORequired       bool
}

// consolePolicyPage shows the policy (GET, with a test when sender and
// recipient are given) and validates a pasted or uploaded file (POST).
func (h *Web) consolePolicyPage(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, kpolicy.MaxFileSize+64<<10)
	}
	s, _, ok := h.staff(w, r, rolesPolicy...)
	if !ok {
		return
	}
	pol := h.svc.Policy()
	p := consolePolicy{Nav: navFor(s, "/admin/policy"), Demo: pol.Demo(), Domains: pol.Domains(), SSO: pol.SSODomains(),
		Defaults: h.svc.DefaultLimits(), Rules: pol.Rules(), Logins: pol.LoginProviders(), File: h.policyFile}
	p.Raw, p.FileNote = h.policyFileText(pol)
	status := http.StatusOK
	var errs []fieldError
	if r.Method == http.MethodPost {
		text, key := policyUpload(r)
		if key != "" {
			errs = append(errs, fieldError{Field: "policy-text", Key: key})
			status = http.StatusBadRequest
		} else {
			p.Validated, p.Text = true, text
			if _, err := kpolicy.Parse([]byte(text)); err != nil {
				var pes kpolicy.ParseErrors
				if errors.As(err, &pes) {
					for _, pe := range pes {
						p.Problems = append(p.Problems, policyProblem{Line: pe.Line, Where: pe.Path, Message: pe.Message})
					}
				} else {
					p.Problems = []policyProblem{{Message: err.Error()}}
				}
				status = http.StatusUnprocessableEntity
			}
		}
	} else if q := r.URL.Query(); q.Has("sender") || q.Has("recipient") {
		t := &policyTest{Sender: strings.TrimSpace(q.Get("sender")), Recipient: strings.TrimSpace(q.Get("recipient"))}
		p.Test = t
		from, err1 := kluis.ParseAddress(t.Sender)
		to, err2 := kluis.ParseAddress(t.Recipient)
		if err1 != nil {
			errs = append(errs, fieldError{Field: "sender", Key: "admin.policy_bad_address"})
		}
		if err2 != nil {
			errs = append(errs, fieldError{Field: "recipient", Key: "admin.policy_bad_address"})
		}
		if len(errs) > 0 {
			status = http.StatusBadRequest
		} else {
			h.testPolicy(pol, t, from, to)
		}
	}
	v := h.newView(r, p)
	v.Errors = errs
	h.render(w, r, status, "admin_policy", v)
}

// testPolicy answers t with the decision a transfer from from to to
// would get.
func (h *Web) testPolicy(pol *kpolicy.Policy, t *policyTest, from, to string) {
	t.Checked = true
	t.SSORequired = h.sso != nil && pol.SSORequired(from)
	d, err := h.svc.Decide(from, []string{to})
	if err != nil {
		t.Message = err.Error()
		if ke := (*kluis.Error)(nil); errors.As(err, &ke) {
			t.Message = ke.Message
		}
		if by, refused := pol.Refuses(from, to); refused && by != kpolicy.DefaultRule {
			t.By = strings.TrimSuffix(strings.TrimPrefix(by, `rule "`), `"`)
		}
		return
	}
	t.Allowed, t.Rules, t.Limits = true, d.Rules, d.Limits
	t.Auth = pol.RecipientAuth(from, to)
}

// policyFileText is the --policy file's text as it is on disk now, and
// a note when that is not the policy in force: the file changed since it
// was loaded (the next SIGHUP puts it in force), or it has an error (the
// policy in force stays).
func (h *Web) policyFileText(inForce *kpolicy.Policy) (string, string) {
	if h.policyFile == "" {
		return "", ""
	}
	f, err := os.Open(h.policyFile)
	if err != nil {
		h.log.Warn("admin policy page: cannot read the policy file", "file", h.policyFile, "err", err)
		return "", "admin.policy_file_unreadable"
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, kpolicy.MaxFileSize+1))
	if err != nil {
		return "", "admin.policy_file_unreadable"
	}
	onDisk, err := kpolicy.Parse(b)
	if err != nil {
		return string(b), "admin.policy_file_invalid"
	}
	a, err1 := onDisk.Marshal()
	c, err2 := inForce.Marshal()
	if err1 != nil || err2 != nil || !bytes.Equal(a, c) {
		return string(b), "admin.policy_file_changed"
	}
	return string(b), ""
}

// policyUpload is the policy file of a validation request: the uploaded
// file if there is one, else the pasted text. key is a catalog key when
// there is nothing usable.
func policyUpload(r *http.Request) (text, key string) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		if err := r.ParseMultipartForm(kpolicy.MaxFileSize + 64<<10); err != nil {
			return "", "admin.policy_too_big"
		}
		if f, _, err := r.FormFile("file"); err == nil {
			defer f.Close()
			b, err := io.ReadAll(io.LimitReader(f, kpolicy.MaxFileSize+1))
			if err != nil || len(b) > kpolicy.MaxFileSize {
				return "", "admin.policy_too_big"
			}
			if len(bytes.TrimSpace(b)) > 0 {
				return string(b), ""
			}
		}
	} else if err := r.ParseForm(); err != nil {
		return "", "admin.policy_too_big"
	}
	text = r.PostFormValue("text")
	if strings.TrimSpace(text) == "" {
		return "", "admin.policy_nothing"
	}
	if len(text) > kpolicy.MaxFileSize {
		return "", "admin.policy_too_big"
	}
	return text, ""
}
