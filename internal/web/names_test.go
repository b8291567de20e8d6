package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

// TestInvisibleCharactersOnPages: file names with bidirectional controls
// and zero-width characters show without them on the recipient's page and
// on the reply confirmation. "factuur<RLO>fdp.exe" would read as
// "factuurexe.pdf".
func TestInvisibleCharactersOnPages(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{
		"factuur\u202efdp.exe":        []byte("MZ"),
		"\u2066brief\u200b\u2069.txt": []byte("hallo"),
	})
	base := e.srv.URL + "/r/" + s.access
	c := e.client(t)
	resp, body := post(t, c, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	resp, body = get(t, c, base+"/open")
	wantStatus(t, "open", resp, body, http.StatusOK)
	noInvisible(t, "contents page", body)
	for _, want := range []string{"factuurfdp.exe", "brief.txt"} {
		if !strings.Contains(body, want) {
			t.Errorf("contents page lacks %q", want)
		}
	}

	resp, body = postReply(t, c, base+"/reply", "Zie bijlage.", replyFile{"antwoord\u202egpj.exe", []byte("MZ")})
	wantStatus(t, "reply", resp, body, http.StatusOK)
	noInvisible(t, "reply confirmation", body)
	if !strings.Contains(body, "antwoordgpj.exe") {
		t.Error("reply confirmation lacks the cleaned name antwoordgpj.exe")
	}
}

func noInvisible(t *testing.T, what, body string) {
	t.Helper()
	if i := strings.IndexAny(body, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f\ufeff"); i >= 0 {
		t.Errorf("%s holds an invisible character: %+q", what, body[max(0, i-20):min(len(body), i+20)])
	}
}
