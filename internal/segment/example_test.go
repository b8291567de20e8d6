package segment_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/segment"
)

// memBlobs is a blob store in memory, enough for an OpenFunc.
type memBlobs map[string][]byte

type memReader struct{ *bytes.Reader }

func (memReader) Close() error { return nil }

func (m memBlobs) open(_ context.Context, key string) (blob.Reader, error) {
	b, ok := m[key]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return memReader{bytes.NewReader(b)}, nil
}

// store writes text as one segment continuing m, as an upload request does.
func (m memBlobs) store(man *segment.Manifest, r age.Recipient, key, text string) {
	var buf bytes.Buffer
	w, err := segment.NewWriter(&buf, r, man.Size(), man.HashState())
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(w, text)
	e, err := w.Close()
	if err != nil {
		log.Fatal(err)
	}
	e.Key = key
	m[key] = buf.Bytes()
	if err := man.Append(e); err != nil {
		log.Fatal(err)
	}
}

// A file uploaded in two requests is two segments, each a complete age
// file; the manifest pins them, and a FileReader reads the file across
// them.
func Example() {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}
	blobs := memBlobs{}
	man := &segment.Manifest{}
	blobs.store(man, id.Recipient(), "t/x/f/000000", "Hierbij de stukken, ")
	blobs.store(man, id.Recipient(), "t/x/f/000001", "zoals afgesproken.")

	// The manifest is stored (sealed) as bytes and checked when read back.
	man, err = segment.Unmarshal(man.Marshal())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(man.Entries), "segments,", man.Size(), "bytes")

	r := segment.NewFileReader(context.Background(), man, blobs.open, id)
	defer r.Close()
	p := make([]byte, 17)
	r.ReadAt(p, 11) // across the two segments
	fmt.Printf("%q\n", p)

	// Each segment is plain age: the age tool (or package) decrypts it.
	plain, err := age.Decrypt(bytes.NewReader(blobs["t/x/f/000001"]), id)
	if err != nil {
		log.Fatal(err)
	}
	second, _ := io.ReadAll(plain)
	fmt.Printf("%q\n", second)

	// A changed byte is never served.
	blobs["t/x/f/000001"][len(blobs["t/x/f/000001"])-1] ^= 1
	r2 := segment.NewFileReader(context.Background(), man, blobs.open, id)
	defer r2.Close()
	_, err = r2.ReadAt(p, 12)
	fmt.Println(strings.HasPrefix(err.Error(), segment.ErrIntegrity.Error()))
	// Output:
	// 2 segments, 38 bytes
	// "stukken, zoals af"
	// "zoals afgesproken."
	// true
}

// A download reads a range of the file through a ReadAhead, which
// decrypts the windows after the one being sent in parallel.
func ExampleNewReadAhead() {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		log.Fatal(err)
	}
	blobs := memBlobs{}
	man := &segment.Manifest{}
	blobs.store(man, id.Recipient(), "t/x/f/000000", strings.Repeat("kluis ", 500_000))
	r := segment.NewFileReader(context.Background(), man, blobs.open, id)
	defer r.Close()

	ra := segment.NewReadAhead(r, 2_999_988, 12) // the last 12 bytes
	defer ra.Close()
	if _, err := io.Copy(os.Stdout, ra); err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	// Output: kluis kluis
}
