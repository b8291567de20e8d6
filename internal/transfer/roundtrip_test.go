package transfer_test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

// TestRoundTrip uploads, finishes, unlocks and downloads in every password
// mode, with files that span several segments and files sent in several
// requests.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		type file struct {
			name   string
			size   int
			pieces []int // WriteFile calls (the rest in a last one)
		}
		files := []file{
			{"klein.txt", 1, nil},
			{"leeg.bin", 0, nil},
			{"precies-segment.bin", 100_000, nil},
			{"drie-segmenten.bin", 250_001, nil},
			{"hervat.bin", 333_333, []int{1, 65_535, 100_000, 7}},
		}
		for _, mode := range []kluis.PasswordMode{kluis.PasswordNone, kluis.PasswordGenerate, kluis.PasswordManual} {
			t.Run(string(mode), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				c := e.create(createOpts{mode: mode, message: "Het bericht bij " + string(mode), to: []string{"a@example.nl", "b@example.nl"}})
				o := owner(c)
				var data [][]byte
				var ids []string
				for i, f := range files {
					d := randomBytes(uint64(i), f.size)
					data = append(data, d)
					ids = append(ids, e.upload(o, f.name, d, f.pieces...).ID)
				}
				if mode == kluis.PasswordNone {
					// Finish needs the link secret back, and checks it.
					_, err := e.svc.Finish(e.ctx, o, "")
					wantCode(t, err, kluis.EINVALID)
					_, err = e.svc.Finish(e.ctx, o, "AAAAAAAAAAAAAAAAAAAAAA")
					wantCode(t, err, kluis.EWRONGSECRET)
				}
				fin := e.finish(c)
				if len(fin.Links) != 2 {
					t.Fatalf("got %d links, want 2", len(fin.Links))
				}
				for _, l := range fin.Links {
					hasFragment := strings.Contains(l.URL, "#")
					if hasFragment != (mode == kluis.PasswordNone) {
						t.Errorf("link %q: fragment present = %v in mode %s", l.URL, hasFragment, mode)
					}
					if mode == kluis.PasswordNone && !strings.HasSuffix(l.URL, "#"+c.LinkSecret) {
						t.Errorf("link %q does not carry the link secret", l.URL)
					}
				}
				access := fin.Links[1].AccessID
				link, err := e.svc.Lookup(e.ctx, access)
				if err != nil {
					t.Fatal(err)
				}
				if link.PasswordRequired != (mode != kluis.PasswordNone) {
					t.Errorf("PasswordRequired = %v in mode %s", link.PasswordRequired, mode)
				}
				// Without the secret, nothing opens: also not in mode none.
				_, err = e.svc.Unlock(e.ctx, access, "")
				wantCode(t, err, kluis.EWRONGSECRET)
				sec := secretOf(c)
				if mode == kluis.PasswordGenerate {
					// Read out over the phone: capitals, spaces for dashes.
					sec = strings.ToUpper(strings.ReplaceAll(sec, "-", " "))
				}
				s := e.unlock(access, sec)
				cont, err := e.svc.Contents(e.ctx, s)
				if err != nil {
					t.Fatal(err)
				}
				if cont.Message != "Het bericht bij "+string(mode) {
					t.Errorf("message = %q", cont.Message)
				}
				if len(cont.Files) != len(files) {
					t.Fatalf("got %d files, want %d", len(cont.Files), len(files))
				}
				for i, f := range cont.Files {
					if f.ID != ids[i] || f.Name != files[i].name || f.Size != int64(files[i].size) || !f.Complete || f.Index != i {
						t.Errorf("file %d: got %+v, want id %s name %q size %d", i, f, ids[i], files[i].name, files[i].size)
					}
					if f.SHA256 != sha256hex(data[i]) {
						t.Errorf("file %d: sha256 %s, want %s", i, f.SHA256, sha256hex(data[i]))
					}
					got, err := e.readFile(s, f.ID)
					if err != nil {
						t.Fatalf("file %d: %v", i, err)
					}
					if !bytes.Equal(got, data[i]) {
						t.Errorf("file %d: content differs (got %d bytes, want %d)", i, len(got), len(data[i]))
					}
				}
				// ReadAt at arbitrary places, across segment and chunk edges.
				big := data[4]
				_, fr, err := e.svc.OpenFile(e.ctx, s, ids[4])
				if err != nil {
					t.Fatal(err)
				}
				defer fr.Close()
				for _, r := range [][2]int{{0, 1}, {65_535, 2}, {99_999, 2}, {100_000, 1}, {150_000, 100_000}, {333_332, 1}, {1, 333_332}} {
					p := make([]byte, r[1])
					n, err := fr.ReadAt(p, int64(r[0]))
					if err != nil && !(err == io.EOF && r[0]+r[1] == len(big)) {
						t.Errorf("ReadAt(%d, %d): %v", r[0], r[1], err)
					}
					if n != r[1] || !bytes.Equal(p, big[r[0]:r[0]+r[1]]) {
						t.Errorf("ReadAt(%d, %d): got %d bytes, content differs", r[0], r[1], n)
					}
				}
				p := make([]byte, 10)
				if n, err := fr.ReadAt(p, int64(len(big))-5); n != 5 || err != io.EOF {
					t.Errorf("ReadAt past the end: n=%d err=%v, want 5, EOF", n, err)
				}
			})
		}
	})
}

func TestMessageOnlyTransfer(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		empty := e.create(createOpts{})
		_, err := e.svc.Finish(e.ctx, owner(empty), "")
		wantCode(t, err, kluis.EINVALID) // neither a file nor a message

		c := e.create(createOpts{message: "Alleen tekst, géén bestanden.\nTweede regel."})
		fin := e.finish(c)
		s := e.unlock(fin.Links[0].AccessID, c.Password)
		cont, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if cont.Message != "Alleen tekst, géén bestanden.\nTweede regel." || len(cont.Files) != 0 {
			t.Fatalf("got message %q and %d files", cont.Message, len(cont.Files))
		}
	})
}

// TestWriteFileResume checks offsets: a resume must start exactly where the
// committed segments end; anything else is a conflict and changes nothing.
func TestWriteFileResume(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		c := e.create(createOpts{})
		o := owner(c)
		data := randomBytes(9, 250_000)
		f, err := e.svc.NewFile(e.ctx, o, "hervat.bin", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		offset := func() int64 {
			st, err := e.svc.FileState(e.ctx, o, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			return st.Offset
		}
		// A body that breaks off after 120,000 bytes: what arrived is kept.
		n, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, io.MultiReader(bytes.NewReader(data[:120_000]), errReader{}))
		if err != nil {
			t.Fatalf("broken body: %v", err)
		}
		if n != 120_000 || offset() != 120_000 {
			t.Fatalf("after broken body: wrote %d, offset %d; want 120000", n, offset())
		}
		for _, bad := range []int64{0, 119_999, 120_001, 250_000} {
			_, err := e.svc.WriteFile(e.ctx, o, f.ID, bad, bytes.NewReader(data[:10]))
			wantCode(t, err, kluis.ECONFLICT)
		}
		if offset() != 120_000 {
			t.Fatalf("a refused write moved the offset to %d", offset())
		}
		_, err = e.svc.CompleteFile(e.ctx, o, f.ID)
		wantCode(t, err, kluis.ECONFLICT) // not all bytes yet
		if _, err := e.svc.WriteFile(e.ctx, o, f.ID, 120_000, bytes.NewReader(data[120_000:200_000])); err != nil {
			t.Fatal(err)
		}
		// More than Upload-Length: only the declared size is taken.
		extra := append(bytes.Clone(data[200_000:]), "overflow"...)
		n, err = e.svc.WriteFile(e.ctx, o, f.ID, 200_000, bytes.NewReader(extra))
		if err != nil || n != 50_000 {
			t.Fatalf("last piece: n=%d err=%v, want 50000", n, err)
		}
		if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.WriteFile(e.ctx, o, f.ID, 250_000, bytes.NewReader([]byte("x")))
		wantCode(t, err, kluis.ECONFLICT)

		// Another transfer's owner cannot see or write this file.
		other := e.create(createOpts{})
		_, err = e.svc.WriteFile(e.ctx, owner(other), f.ID, 250_000, bytes.NewReader([]byte("x")))
		wantCode(t, err, kluis.ENOTFOUND)
		_, err = e.svc.FileState(e.ctx, owner(other), f.ID)
		wantCode(t, err, kluis.ENOTFOUND)

		fin := e.finish(c)
		s := e.unlock(fin.Links[0].AccessID, c.Password)
		got, err := e.readFile(s, f.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("content differs after resumes")
		}
		cont, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if cont.Files[0].SHA256 != sha256hex(data) {
			t.Fatal("sha256 differs after resumes (hash state not carried across requests)")
		}
		// Finished: no more files.
		_, err = e.svc.NewFile(e.ctx, o, "laat.bin", "", 1)
		wantCode(t, err, kluis.ECONFLICT)
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
