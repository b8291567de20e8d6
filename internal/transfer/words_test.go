package transfer_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestWordPasswords: a generated password is seven words in the sender's
// language (issue 13, item 8: "cwxm-rft5-rpj3-2a86-qwhk" was hard to
// dictate), and what the recipient types opens it whatever its case and
// spaces; passwords generated before (groups of characters) still open.
func TestWordPasswords(t *testing.T) {
	e := newEnv(t)
	wordsRE := regexp.MustCompile(`^[a-z]+(-[a-z]+){6}$`)
	for _, lang := range []string{"nl", "en"} {
		c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
			SenderEmail: "afzender@example.nl", SenderLang: lang, To: []string{"ontvanger@example.nl"},
			Message: "hallo", PasswordMode: kluis.PasswordGenerate,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !wordsRE.MatchString(c.Password) {
			t.Fatalf("%s: generated password %q is not seven words", lang, c.Password)
		}
		fin := e.finish(c)
		access := fin.Links[0].AccessID
		words := strings.Split(c.Password, "-")
		for _, typed := range []string{
			strings.ToUpper(strings.Join(words, " ")),
			"  " + strings.Join(words, "") + " ",
			titleCase(words),
		} {
			e.unlock(access, typed)
		}
		// A wrong word is wrong.
		_, err = e.svc.Unlock(e.ctx, access, strings.Join(words[:4], " ")+" x"+words[4])
		wantCode(t, err, kluis.EWRONGSECRET)
		// A reply is protected by the same words, typed any way.
		s := e.unlock(access, c.Password)
		d, err := e.svc.StartReply(e.ctx, s, transfer.ReplyRequest{Message: "antwoord"})
		if err != nil {
			t.Fatal(err)
		}
		rfin, err := e.svc.SendReply(e.ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		e.unlock(rfin.Links[0].AccessID, strings.ToUpper(strings.Join(words, " ")))
	}

	// A password generated before words (groups of characters, the
	// identity wrapped with its dashed form): still opened as it was
	// dictated, in capitals without dashes.
	old := secret.GeneratePassword()
	c := e.create(createOpts{mode: kluis.PasswordManual, password: old, message: "oud"})
	raw := rawDB(t, filepath.Join(e.dir, "kluis.db"))
	if _, err := raw.Exec(`UPDATE transfers SET password_mode = 'generate' WHERE id = ?`, c.Transfer.ID); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	fin := e.finish(c)
	e.unlock(fin.Links[0].AccessID, strings.ToUpper(strings.ReplaceAll(old, "-", "")))
}

// titleCase writes the words with a capital first letter each, as a
// recipient might type them: "Appel Boom Kat".
func titleCase(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(out, " ")
}
