package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// sentLink is a transfer without a password on a running server: its
// link (with the secret after #) and the file it holds.
type sentLink struct {
	link string
	data []byte
}

// sendNoPassword creates, fills and finishes a transfer of one file of
// size random bytes with message on srv, as the web and kluis send do.
func sendNoPassword(t *testing.T, srv *apptest.App, size int, message string) sentLink {
	t.Helper()
	ctx := context.Background()
	c, err := srv.Transfers.Create(ctx, transfer.CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"}, Message: message, PasswordMode: kluis.PasswordNone})
	if err != nil {
		t.Fatal(err)
	}
	o := transfer.Owner{TransferID: c.Transfer.ID}
	data := make([]byte, size)
	rand.Read(data)
	f, err := srv.Transfers.NewFile(ctx, o, "data.bin", "", int64(size))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Transfers.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Transfers.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := srv.Transfers.Finish(ctx, o, c.LinkSecret)
	if err != nil {
		t.Fatal(err)
	}
	return sentLink{link: fmt.Sprintf("%s/r/%s#%s", srv.URL(), fin.Links[0].AccessID, c.LinkSecret), data: data}
}

// readCounter is a part file that counts the bytes read back from it.
type readCounter struct {
	*os.File
	read *atomic.Int64
}

func (r readCounter) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.File.ReadAt(p, off)
	r.read.Add(int64(n))
	return n, err
}

func (r readCounter) Read(p []byte) (int, error) {
	n, err := r.File.Read(p)
	r.read.Add(int64(n))
	return n, err
}

// receiveCounting runs kluis receive args in-process and returns its error,
// what it printed and how many bytes it read back from its part files.
func receiveCounting(t *testing.T, args ...string) (string, int64, error) {
	t.Helper()
	var out bytes.Buffer
	a, err := Program{Version: "test"}.newApp(english(noEnv), Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
	if err != nil {
		t.Fatal(err)
	}
	var read atomic.Int64
	a.wrapPart = func(f *os.File) partFile { return readCounter{File: f, read: &read} }
	err = a.run(context.Background(), append([]string{"receive"}, args...))
	return out.String(), read.Load(), err
}

// TestReceiveHashesWhileWriting (issue 21 item 2): kluis receive checks
// the SHA-256 of what it writes as it writes it, so a download reads
// nothing back from its part file; a resumed download reads only what an
// earlier run left there, once, to rebuild the hash state. A part file
// whose first bytes are wrong still fails the check: nothing gets the
// final name, and the part file is removed.
func TestReceiveHashesWhileWriting(t *testing.T) {
	srv := apptest.Start(t, apptest.Options{})
	const size = 1_000_000 // ten segments of the test engine
	sent := sendNoPassword(t, srv, size, "")

	t.Run("fresh", func(t *testing.T) {
		dir := t.TempDir()
		out, read, err := receiveCounting(t, sent.link, "-o", dir)
		if err != nil {
			t.Fatalf("receive: %v\n%s", err, out)
		}
		checkReceived(t, dir, sent.data)
		if read != 0 {
			t.Errorf("read %d bytes back from the part file, want 0 (hash while writing)", read)
		}
	})

	t.Run("resume", func(t *testing.T) {
		dir := t.TempDir()
		const have = 300_000
		os.WriteFile(filepath.Join(dir, ".data.bin.kluis-part"), sent.data[:have], 0o600)
		out, read, err := receiveCounting(t, sent.link, "-o", dir)
		if err != nil {
			t.Fatalf("receive: %v\n%s", err, out)
		}
		checkReceived(t, dir, sent.data)
		if read != have {
			t.Errorf("read %d bytes back from the part file, want the %d that were there", read, have)
		}
	})

	t.Run("resume from a wrong part", func(t *testing.T) {
		dir := t.TempDir()
		bad := bytes.Clone(sent.data[:300_000])
		bad[12345] ^= 1
		part := filepath.Join(dir, ".data.bin.kluis-part")
		os.WriteFile(part, bad, 0o600)
		out, _, err := receiveCounting(t, sent.link, "-o", dir)
		if got := exitCode(err); got != exitIntegrity {
			t.Fatalf("exit %d (%v), want %d\n%s", got, err, exitIntegrity, out)
		}
		for _, name := range []string{"data.bin", ".data.bin.kluis-part"} {
			if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
				t.Errorf("%s exists after a failed check", name)
			}
		}
	})
}

func checkReceived(t *testing.T, dir string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, "data.bin"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("data.bin: %v (%d bytes, equal %v)", err, len(got), bytes.Equal(got, want))
	}
	if _, err := os.Lstat(filepath.Join(dir, ".data.bin.kluis-part")); err == nil {
		t.Error("the part file is still there")
	}
}
