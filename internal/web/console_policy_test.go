package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

// section is the part of a page's body from the element with id to the
// next </section>, or to the end of the page ("" when there is none).
func section(body, id string) string {
	i := strings.Index(body, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	s := body[i:]
	if end := strings.Index(s, "</section>"); end >= 0 {
		s = s[:end]
	}
	return s
}

// TestConsolePolicyPage: the helpdesk reads the policy in force (summary
// and file) and tests sender and recipient pairs; each answer is the
// engine's own decision (transfer.Service.Decide, the send path's
// function): allowed by the default rule or by a rule with its limits,
// refused by a deny rule or by the default rule. Bad addresses say what
// to fix.
func TestConsolePolicyPage(t *testing.T) {
	e := newConsoleEnv(t)
	b := e.as(t, "balie")
	resp, body := b.get(t, e.app.URL+"/admin/policy")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/admin/policy: %d", resp.StatusCode)
	}
	for _, want := range []string{"gemeente.example", `data-rule="geen privémail"`, `data-rule="zorgpartners"`, "Stuur naar een werkadres.",
		`id="policy-file"`, `&#34;organisation_domains&#34;`, e.app.PolicyFile} {
		if !strings.Contains(body, want) {
			t.Errorf("the policy page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="policy-file-note"`) {
		t.Error("the page says the file differs from the policy in force")
	}

	ask := func(from, to string) (int, string) {
		t.Helper()
		resp, body := b.get(t, e.app.URL+"/admin/policy?"+url.Values{"sender": {from}, "recipient": {to}}.Encode())
		return resp.StatusCode, section(body, "policy-answer")
	}
	nl := func(key string, args ...any) string { return translate("nl", key, args...) }
	for _, c := range []struct {
		from, to string
		allowed  bool
		want     []string
		notWant  []string
	}{
		{"anna@gemeente.example", "burger@example.nl", true, []string{nl("admin.policy_default_rule"), nl("admin.pw_generate"), nl("admin.pw_none")}, nil},
		{"anna@gemeente.example", "jan@huisarts.zorg.example", true, []string{nl("admin.policy_rule_named", "zorgpartners"), nl("admin.pw_manual"), "7 dagen"},
			[]string{nl("admin.pw_generate"), nl("admin.pw_none")}},
		{"anna@gemeente.example", "iemand@prive.example", false, []string{nl("admin.policy_refused_rule", "anna@gemeente.example", "iemand@prive.example", "geen privémail"), "Stuur naar een werkadres."}, nil},
		{"a@example.org", "b@example.net", false, []string{nl("admin.policy_refused_default", "a@example.org", "b@example.net")}, nil},
	} {
		status, answer := ask(c.from, c.to)
		if status != http.StatusOK || !strings.Contains(answer, `data-allowed="`+map[bool]string{true: "true", false: "false"}[c.allowed]+`"`) {
			t.Errorf("%s → %s: %d, want allowed %v\n%s", c.from, c.to, status, c.allowed, answer)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(answer, strings.ReplaceAll(w, `"`, "&#34;")) && !strings.Contains(answer, w) {
				t.Errorf("%s → %s: the answer lacks %q\n%s", c.from, c.to, w, answer)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(answer, w) {
				t.Errorf("%s → %s: the answer shows %q", c.from, c.to, w)
			}
		}
		// The same decision as the send path's.
		_, err := e.app.Transfers.Decide(c.from, []string{c.to})
		if (err == nil) != c.allowed {
			t.Errorf("%s → %s: the engine says %v", c.from, c.to, err)
		}
		if ke := (*kluis.Error)(nil); errors.As(err, &ke) && !strings.Contains(answer, `lang="en" id="policy-message">`+template.HTMLEscapeString(ke.Message)) {
			t.Errorf("%s → %s: the engine's own words %q are missing\n%s", c.from, c.to, ke.Message, answer)
		}
	}
	resp, body = b.get(t, e.app.URL+"/admin/policy?sender=anna&recipient=")
	if resp.StatusCode != http.StatusBadRequest || strings.Count(body, nl("admin.policy_bad_address")) < 2 || section(body, "policy-answer") != "" {
		t.Errorf("bad addresses: %d\n%s", resp.StatusCode, body)
	}
}

// TestConsolePolicyValidate: a pasted or uploaded policy file is checked
// as the server checks it at start; errors name the line or the field;
// a valid file is said to be valid and how to load it; nothing is loaded.
// The page also says when the file on disk is no longer the policy in
// force.
func TestConsolePolicyValidate(t *testing.T) {
	e := newConsoleEnv(t)
	a := e.as(t, "audit")
	before, _ := e.app.Policy.Get().Marshal()
	post := func(text string) (int, string) {
		t.Helper()
		resp, err := a.PostForm(e.app.URL+"/admin/policy/validate", url.Values{"text": {text}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.String()
	}
	nl := func(key string) string { return translate("nl", key) }
	for _, c := range []struct {
		text   string
		status int
		want   []string
	}{
		{"{\n  \"organisation_domains\": [\"a.example\"],\n  \"rules\": [\n}", http.StatusUnprocessableEntity, []string{nl("admin.policy_invalid"), "line 4"}},
		{`{"defaults": {"max_expiry": "soms"}}`, http.StatusUnprocessableEntity, []string{nl("admin.policy_where"), "defaults.max_expiry"}},
		{`{"organisation_domains": ["nieuw.example"], "rules": [{"name": "x", "action": "deny", "recipients": ["slecht.example"]}]}`, http.StatusOK,
			[]string{nl("admin.policy_valid"), "systemctl reload kluis"}},
		{"  ", http.StatusBadRequest, []string{nl("admin.policy_nothing")}},
	} {
		status, body := post(c.text)
		if status != c.status {
			t.Errorf("%q: %d, want %d", c.text, status, c.status)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%q: the page lacks %q", c.text, w)
			}
		}
	}
	// Every problem of the file is listed with its line, in Dutch and
	// in English.
	bad := "{\n  \"organisation_domains\": [\"gemeente\"],\n  \"defaults\": {\"max_expiry\": \"soms\"},\n  \"rules\": [{\"name\": \"a\", \"action\": \"block\"}]\n}"
	for _, lang := range []string{"nl", "en"} {
		req, _ := http.NewRequest(http.MethodPost, e.app.URL+"/admin/policy/validate", strings.NewReader(url.Values{"text": {bad}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: langCookie, Value: lang})
		resp, err := a.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		body := buf.String()
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d", lang, resp.StatusCode)
		}
		list := body[strings.Index(body, `id="policy-problems"`):]
		list = list[:strings.Index(list, "</ul>")]
		for i, w := range []struct {
			line int
			path string
		}{{2, "organisation_domains[0]"}, {3, "defaults.max_expiry"}, {4, "rules[0].action"}} {
			item := fmt.Sprintf(`data-line="%d" data-path="%s"`, w.line, w.path)
			if strings.Count(list, "<li") != 3 || !strings.Contains(list, item) || !strings.Contains(list, translate(lang, "admin.policy_line", w.line)) {
				t.Errorf("%s: problem %d (line %d, %s) is not listed:\n%s", lang, i, w.line, w.path, list)
			}
		}
		if !strings.Contains(body, translate(lang, "admin.policy_problem_count", 3)) {
			t.Errorf("%s: the page does not say there are 3 problems", lang)
		}
	}

	// An upload, as the form sends it.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "beleid.json")
	fw.Write([]byte(`{"organisation_domains": ["upload.example"]}`))
	mw.WriteField("text", "dit wordt niet gebruikt")
	mw.Close()
	resp, err := a.Post(e.app.URL+"/admin/policy/validate", mw.FormDataContentType(), &mp)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(buf.String(), nl("admin.policy_valid")) {
		t.Errorf("upload: %d", resp.StatusCode)
	}
	if after, _ := e.app.Policy.Get().Marshal(); !bytes.Equal(before, after) {
		t.Errorf("validating changed the policy in force:\n%s", after)
	}
	// The file on disk changed but is not reloaded; then it has an error.
	for text, note := range map[string]string{`{"organisation_domains": ["ander.example"]}`: "admin.policy_file_changed", `{"organisation_domains": [`: "admin.policy_file_invalid"} {
		if err := os.WriteFile(e.app.PolicyFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		_, body := a.get(t, e.app.URL+"/admin/policy")
		if !strings.Contains(section(body, "policy-file-note"), nl(note)) || !strings.Contains(body, "gemeente.example") {
			t.Errorf("file %q: no %s, or the summary is not the policy in force", text, note)
		}
	}
	if _, err := e.app.Transfers.Decide("anna@gemeente.example", []string{"iemand@prive.example"}); err == nil {
		t.Error("the policy in force changed")
	}
}
