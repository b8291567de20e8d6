package mail

import (
	"strings"
	"testing"
)

// TestFileNamesCleanInMails: a shown file name with a bidirectional control
// a zero-width character or a Hangul filler (as the web preview hands it on from the
// browser) reaches neither the text nor the HTML of a mail.
func TestFileNamesCleanInMails(t *testing.T) {
	fx := fixtures()
	n := fx[KindNotify].(Notify)
	n.Files = []FileRef{{Index: 1, Count: 2, Name: "factuur\u202efdp.exe", Size: 10}, {Index: 2, Count: 2, Name: "a\u200bb\u2066\u3164.pdf", Size: 5}}
	d := fx[KindDownload].(Download)
	d.File = FileRef{Index: 1, Count: 1, Name: "brief\u202etxt.exe", Size: 3}
	for kind, data := range map[Kind]any{KindNotify: n, KindDownload: d} {
		m, err := Render(kind, "nl", testOrg, "a@example.org", data)
		if err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{m.Subject, m.Text, m.HTML} {
			if i := strings.IndexAny(part, "\u202e\u200b\u2066\u3164"); i >= 0 {
				t.Errorf("%s mail holds an invisible character: %+q", kind, part[max(0, i-20):min(len(part), i+20)])
			}
		}
	}
}
