package secret_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/kluis-nl/kluis/internal/secret"
)

// A value sealed under the master key opens only with the same purpose and
// row id: copied into another row or column, it fails as corrupt.
func ExampleKeyring() {
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		log.Fatal(err)
	}
	sealed := keys.Seal("transfer.details", "t1", []byte("A. Jansen, 06-12345678"))

	plain, err := keys.Open("transfer.details", "t1", sealed)
	fmt.Printf("%s %v\n", plain, err)

	_, err = keys.Open("transfer.details", "t2", sealed)
	fmt.Println(errors.Is(err, secret.ErrCorrupt))
	_, err = keys.Open("transfer.private", "t1", sealed)
	fmt.Println(errors.Is(err, secret.ErrCorrupt))
	// Output:
	// A. Jansen, 06-12345678 <nil>
	// true
	// true
}

// MAC names a value in a shared table without storing it: the same input
// gives the same value under the same master key, and nothing without it.
func ExampleKeyring_MAC() {
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		log.Fatal(err)
	}
	a := keys.MAC("ratelimit.ip", []byte("192.0.2.1"))
	b := keys.MAC("ratelimit.ip", []byte("192.0.2.1"))
	c := keys.MAC("ratelimit.ip", []byte("192.0.2.2"))
	fmt.Println(len(a), string(a) == string(b), string(a) == string(c))
	// Output: 32 true false
}
