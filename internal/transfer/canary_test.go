package transfer_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

func canary(prefix string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// TestCanaryNotStored is security.md item 5's grep: after a full round
// trip, no file in the data folder (database, WAL, blobs, temporary files)
// and no log line holds the file content, file name, message or password;
// and no log line holds a bearer secret (access id, link secret, upload or
// session token).
func TestCanaryNotStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	marker := canary("CANARY-CONTENT-")
	name := canary("canary-name-") + ".txt"
	message := canary("canary-message-")
	password := canary("canary-password-")

	// The marker sits at the start, across a segment edge (100,000) and at
	// the end.
	content := randomBytes(5, 250_000)
	copy(content, marker)
	copy(content[100_000-len(marker)/2:], marker)
	content = append(content, marker...)

	c := e.create(createOpts{mode: kluis.PasswordManual, password: password, message: message,
		options: kluis.Options{ShowFilenames: true}})
	f := e.upload(owner(c), name, content, 77_777)
	fin := e.finish(c)
	if _, err := e.svc.Unlock(e.ctx, fin.Links[0].AccessID, password+"x"); err == nil {
		t.Fatal("a wrong password unlocked")
	}
	s := e.unlock(fin.Links[0].AccessID, password)
	cont, err := e.svc.Contents(e.ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if cont.Message != message || cont.Files[0].Name != name {
		t.Fatalf("round trip lost the message or name: %q %q", cont.Message, cont.Files[0].Name)
	}
	got, err := e.readFile(s, f.ID)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("download: %v (equal %v)", err, bytes.Equal(got, content))
	}
	// A no-password transfer too, for its link secret.
	nc := e.create(createOpts{mode: kluis.PasswordNone, message: "geen wachtwoord"})
	nfin := e.finish(nc)
	ns := e.unlock(nfin.Links[0].AccessID, nc.LinkSecret)
	if _, err := e.svc.Contents(e.ctx, ns); err != nil {
		t.Fatal(err)
	}

	plain := map[string][]byte{
		"content marker":     []byte(marker),
		"file name":          []byte(name),
		"message":            []byte(message),
		"password":           []byte(password),
		"password base64":    []byte(base64.StdEncoding.EncodeToString([]byte(password))),
		"password base64url": []byte(base64.RawURLEncoding.EncodeToString([]byte(password))),
		"password hex":       []byte(hex.EncodeToString([]byte(password))),
		"password HEX":       []byte(strings.ToUpper(hex.EncodeToString([]byte(password)))),
		// The bodies of the canaries, in case something re-encodes the
		// prefix (JSON escaping, case changes).
		"name body":     []byte(name[len("canary-name-") : len(name)-4]),
		"message body":  []byte(message[len("canary-message-"):]),
		"password body": []byte(password[len("canary-password-"):]),
	}
	bearers := map[string][]byte{
		"access id 0":       []byte(fin.Links[0].AccessID),
		"access id nopw":    []byte(nfin.Links[0].AccessID),
		"link secret":       []byte(nc.LinkSecret),
		"upload token":      []byte(c.UploadToken),
		"upload token nopw": []byte(nc.UploadToken),
		"session token":     []byte(s.Token),
		"session nopw":      []byte(ns.Token),
	}
	files, control := 0, false
	walkFiles(t, e.dir, func(p string, b []byte) {
		files++
		// Positive control: the plain sender address is in the database or
		// its WAL, so the scan does see stored text.
		control = control || bytes.Contains(b, []byte("afzender@example.nl"))
		if hits := containsAny(b, plain); len(hits) > 0 {
			t.Errorf("%s holds %v", p, hits)
		}
		if hits := containsAny(b, bearers); len(hits) > 0 {
			t.Errorf("%s holds %v", p, hits)
		}
	})
	if !control {
		t.Fatal("positive control failed: the sender address was found in no file")
	}
	if files < 5 {
		t.Fatalf("scanned only %d files; the data folder is not what this test expects", files)
	}
	logs := e.logs.Bytes()
	if len(logs) == 0 {
		t.Fatal("the engine logged nothing; the log check would prove nothing")
	}
	if hits := containsAny(logs, plain); len(hits) > 0 {
		t.Errorf("log holds %v", hits)
	}
	if hits := containsAny(logs, bearers); len(hits) > 0 {
		t.Errorf("log holds %v", hits)
	}
}
