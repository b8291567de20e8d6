package segment

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"strings"
	"testing"

	agetest "c2sp.org/CCTV/age"
	"filippo.io/age"
	"filippo.io/age/armor"
)

// TestCCTVVectors runs the C2SP age test vectors through the age calls this
// package relies on. It guards the version of age in go.mod: every vector
// expected to fail (in particular the stream_* ones: missing final chunk,
// missing tag, trailing data, ...) must fail, and every success must yield
// exactly the expected payload.
func TestCCTVVectors(t *testing.T) {
	names, err := fs.ReadDir(agetest.Vectors, ".")
	if err != nil {
		t.Fatal(err)
	}
	streams := 0
	for _, d := range names {
		contents, err := fs.ReadFile(agetest.Vectors, d.Name())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.Name(), "stream_") {
			streams++
		}
		t.Run(d.Name(), func(t *testing.T) {
			t.Parallel()
			v := parseVector(t, contents)
			testVectorDecrypt(t, v)
			if !v.armored {
				testVectorReaderAt(t, v)
			}
		})
	}
	if streams < 20 {
		t.Fatalf("only %d stream_* vectors found", streams)
	}
}

type vector struct {
	expect      string
	payloadHash []byte
	identities  []age.Identity
	armored     bool
	file        []byte
}

// parseVector follows the format described in the CCTV README (and as read
// by filippo.io/age's own testkit_test.go).
func parseVector(t *testing.T, test []byte) *vector {
	v := &vector{file: test}
	compressed := false
	for {
		line, rest, ok := bytes.Cut(v.file, []byte("\n"))
		if !ok {
			t.Fatal("invalid vector: no payload")
		}
		v.file = rest
		if len(line) == 0 {
			break
		}
		key, value, _ := strings.Cut(string(line), ": ")
		switch key {
		case "expect":
			switch value {
			case "success", "HMAC failure", "header failure", "armor failure", "payload failure", "no match":
			default:
				t.Fatal("unknown expect value:", value)
			}
			v.expect = value
		case "payload":
			h, err := hex.DecodeString(value)
			if err != nil {
				t.Fatal(err)
			}
			v.payloadHash = h
		case "file key", "comment":
		case "identity":
			var i age.Identity
			i, err := age.ParseX25519Identity(value)
			if err != nil {
				i, err = age.ParseHybridIdentity(value)
			}
			if err != nil {
				t.Fatal(err)
			}
			v.identities = append(v.identities, i)
		case "passphrase":
			i, err := age.NewScryptIdentity(value)
			if err != nil {
				t.Fatal(err)
			}
			v.identities = append(v.identities, i)
		case "armored":
			v.armored = true
		case "compressed":
			if value != "zlib" {
				t.Fatal("unknown compression:", value)
			}
			compressed = true
		default:
			t.Fatal("unknown header key:", key)
		}
	}
	if compressed {
		r, err := zlib.NewReader(bytes.NewReader(v.file))
		if err != nil {
			t.Fatal(err)
		}
		if v.file, err = io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func testVectorDecrypt(t *testing.T, v *vector) {
	var in io.Reader = bytes.NewReader(v.file)
	if v.armored {
		in = armor.NewReader(in)
	}
	out, err := func() ([]byte, error) {
		r, err := age.Decrypt(in, v.identities...)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	}()
	checkVectorResult(t, v, "Decrypt", out, err)
}

func testVectorReaderAt(t *testing.T, v *vector) {
	out, err := func() ([]byte, error) {
		ra, size, err := age.DecryptReaderAt(bytes.NewReader(v.file), int64(len(v.file)), v.identities...)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(io.NewSectionReader(ra, 0, size))
	}()
	checkVectorResult(t, v, "DecryptReaderAt", out, err)
}

func checkVectorResult(t *testing.T, v *vector, how string, out []byte, err error) {
	t.Helper()
	if v.expect != "success" {
		if err == nil {
			t.Fatalf("%s: expected %s, got success", how, v.expect)
		}
		t.Logf("%s: %v", how, err)
		return
	}
	if err != nil {
		t.Fatalf("%s: expected success, got %v", how, err)
	}
	if sum := sha256.Sum256(out); !bytes.Equal(sum[:], v.payloadHash) {
		t.Fatalf("%s: payload hash mismatch", how)
	}
}
