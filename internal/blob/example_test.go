package blob_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/local"
)

// The life of a blob in any Store (here a local folder): nothing is
// visible before Commit, a committed blob is read at any offset, and
// Delete removes it.
func Example() {
	dir, err := os.MkdirTemp("", "blob-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var s blob.Store
	s, err = local.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	w, err := s.Create(ctx, "t/abc/f1/000000")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(w, "age-encrypted bytes")
	_, err = s.Open(ctx, "t/abc/f1/000000")
	fmt.Println("before Commit:", errors.Is(err, blob.ErrNotFound))
	if err := w.Commit(); err != nil {
		log.Fatal(err)
	}

	r, err := s.Open(ctx, "t/abc/f1/000000")
	if err != nil {
		log.Fatal(err)
	}
	p := make([]byte, 9)
	r.ReadAt(p, 4)
	fmt.Printf("size %d, bytes 4-12 %q\n", r.Size(), p)
	r.Close()

	s.List(ctx, "t/abc/", func(i blob.Info) error {
		fmt.Println("listed:", i.Key, i.Size)
		return nil
	})
	if err := s.Delete(ctx, "t/abc/f1/000000"); err != nil {
		log.Fatal(err)
	}
	_, err = s.Open(ctx, "t/abc/f1/000000")
	fmt.Println("after Delete:", errors.Is(err, blob.ErrNotFound))
	// Output:
	// before Commit: true
	// size 19, bytes 4-12 "encrypted"
	// listed: t/abc/f1/000000 19
	// after Delete: true
}

// Keys are made from server ids only; a store refuses anything else.
func ExampleValidKey() {
	for _, k := range []string{"t/abc/f1/000000", "../etc/passwd", "T/ABC", "t//x"} {
		fmt.Println(k, blob.ValidKey(k))
	}
	// Output:
	// t/abc/f1/000000 true
	// ../etc/passwd false
	// T/ABC false
	// t//x false
}
