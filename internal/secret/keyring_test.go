package secret

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mustKeyring(t *testing.T) *Keyring {
	t.Helper()
	k, err := NewKeyring(GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeyringKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewKeyring(make([]byte, n)); err == nil {
			t.Errorf("NewKeyring accepted a %d-byte key", n)
		}
	}
	k := mustKeyring(t)
	if len(k.ID()) != 16 {
		t.Errorf("ID %q: want 16 hex characters", k.ID())
	}
}

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t)
	for _, pt := range [][]byte{nil, {}, []byte("x"), bytes.Repeat([]byte("kluis"), 10000)} {
		sealed := k.Seal("transfer.identity", "t1", pt)
		if len(sealed) != len(pt)+sealedOverhead {
			t.Errorf("sealed length %d for %d bytes", len(sealed), len(pt))
		}
		got, err := k.Open("transfer.identity", "t1", sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("round trip changed %d bytes", len(pt))
		}
	}
	// Random nonces: the same plaintext never seals to the same bytes.
	if bytes.Equal(k.Seal("p", "i", []byte("same")), k.Seal("p", "i", []byte("same"))) {
		t.Error("two seals of the same plaintext are identical")
	}
}

func TestKeyringOpenRejects(t *testing.T) {
	t.Parallel()
	k := mustKeyring(t)
	other := mustKeyring(t)
	sealed := k.Seal("transfer.name", "abc", []byte("report.pdf"))
	mutate := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(sealed))
	}
	tests := []struct {
		name        string
		k           *Keyring
		purpose, id string
		sealed      []byte
	}{
		{"wrong purpose", k, "transfer.message", "abc", sealed},
		{"wrong id", k, "transfer.name", "abd", sealed},
		{"purpose/id boundary moved", k, "transfer.nam", "eabc", sealed},
		{"other key", other, "transfer.name", "abc", sealed},
		{"unknown version", k, "transfer.name", "abc", mutate(func(b []byte) []byte { b[0] = 0x02; return b })},
		{"key id flipped", k, "transfer.name", "abc", mutate(func(b []byte) []byte { b[1] ^= 1; return b })},
		{"nonce flipped", k, "transfer.name", "abc", mutate(func(b []byte) []byte { b[10] ^= 1; return b })},
		{"ciphertext flipped", k, "transfer.name", "abc", mutate(func(b []byte) []byte { b[1+8+24] ^= 0x80; return b })},
		{"tag flipped", k, "transfer.name", "abc", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"truncated", k, "transfer.name", "abc", sealed[:len(sealed)-1]},
		{"too short", k, "transfer.name", "abc", sealed[:sealedOverhead-1]},
		{"empty", k, "transfer.name", "abc", nil},
		{"appended", k, "transfer.name", "abc", append(bytes.Clone(sealed), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt, err := tt.k.Open(tt.purpose, tt.id, tt.sealed)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %q, %v; want ErrCorrupt", pt, err)
			}
			if pt != nil {
				t.Error("plaintext returned with an error")
			}
		})
	}
}

func TestKeyringPurposeWithNULPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	mustKeyring(t).Seal("a\x00b", "c", nil)
}

func TestSealWithKey(t *testing.T) {
	t.Parallel()
	key := GenerateMasterKey()
	ad := []byte("session:abc")
	sealed := SealWithKey(key, ad, []byte("identity"))
	got, err := OpenWithKey(key, ad, sealed)
	if err != nil || string(got) != "identity" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	flip := func(i int) []byte { b := bytes.Clone(sealed); b[i] ^= 1; return b }
	tests := []struct {
		name   string
		key    []byte
		ad     []byte
		sealed []byte
	}{
		{"wrong key", GenerateMasterKey(), ad, sealed},
		{"short key", key[:16], ad, sealed},
		{"no key", nil, ad, sealed},
		{"wrong ad", key, []byte("session:abd"), sealed},
		{"unknown version", key, ad, flip(0)},
		{"flipped nonce", key, ad, flip(5)},
		{"flipped tag", key, ad, flip(len(sealed) - 1)},
		{"too short", key, ad, sealed[:sessionOverhead-1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := OpenWithKey(tt.key, tt.ad, tt.sealed); !errors.Is(err, ErrCorrupt) {
				t.Errorf("OpenWithKey: %v; want ErrCorrupt", err)
			}
		})
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "master.key")

	k1, created, err := LoadOrCreateMasterKey(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(data), "\n") || len(data) != 45 {
		t.Errorf("file %d bytes, want 44 base64 characters and a newline", len(data))
	}

	k2, created, err := LoadOrCreateMasterKey(path)
	if err != nil || created {
		t.Fatalf("second call: created=%v, %v", created, err)
	}
	k3, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.ID() != k2.ID() || k1.ID() != k3.ID() {
		t.Fatalf("key changed on reload: %s %s %s", k1.ID(), k2.ID(), k3.ID())
	}
	sealed := k1.Seal("p", "i", []byte("v"))
	if _, err := k3.Open("p", "i", sealed); err != nil {
		t.Errorf("reloaded key cannot open: %v", err)
	}
}

func TestLoadMasterKeyRefuses(t *testing.T) {
	t.Parallel()
	good := base64.StdEncoding.EncodeToString(GenerateMasterKey()) + "\n"
	tests := []struct {
		name     string
		content  string
		mode     os.FileMode
		wantText string
	}{
		{"group and world readable", good, 0o644, "chmod 600"},
		{"group readable", good, 0o640, "chmod 600"},
		{"not base64", "this is not a key!\n", 0o600, "base64"},
		{"url encoding", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)) + "\n", 0o600, "base64"},
		{"short key", base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n", 0o600, "16 bytes"},
		{"long key", base64.StdEncoding.EncodeToString(make([]byte, 64)) + "\n", 0o600, "64 bytes"},
		{"empty", "", 0o600, "0 bytes"},
		{"huge", strings.Repeat("A", 4096), 0o600, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod after writing, so the umask does not interfere.
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			for _, load := range []func(string) error{
				func(p string) error { _, err := LoadMasterKey(p); return err },
				func(p string) error { _, _, err := LoadOrCreateMasterKey(p); return err },
			} {
				err := load(path)
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), tt.wantText) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q should mention %q and the path", err, tt.wantText)
				}
			}
			// The refused file must be left alone, never replaced.
			if data, _ := os.ReadFile(path); string(data) != tt.content {
				t.Error("file was changed")
			}
		})
	}
}

func TestLoadMasterKeyAcceptsCRLF(t *testing.T) {
	t.Parallel()
	key := GenerateMasterKey()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := NewKeyring(key)
	if k.ID() != want.ID() {
		t.Error("different key")
	}
}

func TestLoadMasterKeyMissing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "absent.key")
	if _, err := LoadMasterKey(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadMasterKey: %v; want not-exist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("LoadMasterKey created the file")
	}
	// A missing directory is an error, not something to create silently.
	if _, _, err := LoadOrCreateMasterKey(filepath.Join(t.TempDir(), "no", "such", "dir", "k")); err == nil {
		t.Error("LoadOrCreateMasterKey succeeded in a missing directory")
	}
}

func TestMAC(t *testing.T) {
	k1, err := NewKeyring(bytes.Repeat([]byte{1}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	k1again, _ := NewKeyring(bytes.Repeat([]byte{1}, KeySize))
	k2, _ := NewKeyring(bytes.Repeat([]byte{2}, KeySize))
	a := k1.MAC("ratelimit.ip", []byte("192.0.2.1"))
	if len(a) != 32 {
		t.Fatalf("MAC is %d bytes, want 32", len(a))
	}
	if !bytes.Equal(a, k1again.MAC("ratelimit.ip", []byte("192.0.2.1"))) {
		t.Error("two keyrings with the same master key disagree")
	}
	for name, other := range map[string][]byte{
		"other key":     k2.MAC("ratelimit.ip", []byte("192.0.2.1")),
		"other purpose": k1.MAC("ratelimit.ipx", []byte("192.0.2.1")),
		"other data":    k1.MAC("ratelimit.ip", []byte("192.0.2.2")),
		"shifted split": k1.MAC("ratelimit.i", []byte("p192.0.2.1")),
	} {
		if bytes.Equal(a, other) {
			t.Errorf("%s gives the same MAC", name)
		}
	}
	// Not the plain HMAC under the master key itself.
	m := hmac.New(sha256.New, bytes.Repeat([]byte{1}, KeySize))
	m.Write([]byte("ratelimit.ip\x00192.0.2.1"))
	if bytes.Equal(a, m.Sum(nil)) {
		t.Error("MAC uses the master key directly")
	}
}
