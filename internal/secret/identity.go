package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// ErrWrongSecret means the password or link secret does not unwrap the
// transfer identity. It says nothing more, by design (security.md item 4).
var ErrWrongSecret = errors.New("secret: wrong password or link secret")

const (
	// PasswordLogN is the scrypt work factor (N = 2^logN, r = 8, p = 1, as
	// age fixes them) for transfer passwords. Memory is 128·r·N bytes =
	// 1 KiB·2^logN. BenchmarkUnwrapIdentity on the 2-core build machine (AMD
	// EPYC, Go 1.26, see KDF.md) measured per unlock:
	//
	//	logN 15: 151–163 ms,  32 MiB
	//	logN 16: 297–335 ms,  64 MiB
	//	logN 17: 569–708 ms, 128 MiB
	//
	// The budget is at most 250 ms and 64 MiB per unlock, so 15: 16 meets
	// the memory cap but not the time. Raise it when the hardware does.
	PasswordLogN = 15

	// LinkSecretLogN is the work factor for no-password links. Their secret
	// has 128 random bits, so stretching adds nothing; 10 keeps the age
	// format without spending time or memory.
	LinkSecretLogN = 10

	// DefaultUnlockConcurrency is the suggested [NewLimiter] size: it caps
	// scrypt memory at 4 × 32 MiB = 128 MiB at PasswordLogN 15, and stays
	// within 256 MiB should PasswordLogN become 16.
	DefaultUnlockConcurrency = 4

	// scryptMinLogN and scryptMaxLogN are age's own bounds; we check them so that bad
	// configuration returns an error instead of reaching age's panic.
	scryptMinLogN = 1
	scryptMaxLogN = 30

	// maxIdentityText bounds how much we read from an unwrapped identity:
	// an X25519 identity string is 74 characters.
	maxIdentityText = 1024
)

// GenerateIdentity returns a fresh age X25519 identity for a new transfer.
// Uploads are encrypted to its recipient, so they need no secret.
func GenerateIdentity() (*age.X25519Identity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("secret: generate identity: %w", err)
	}
	return id, nil
}

// WrapIdentity encrypts the identity to transferSecret with age's scrypt
// recipient at work factor 2^logN ([PasswordLogN] for passwords,
// [LinkSecretLogN] for link secrets). The result is a binary age file, so
// `age -d` with the secret opens it too.
func WrapIdentity(id *age.X25519Identity, transferSecret string, logN int) ([]byte, error) {
	if id == nil {
		return nil, errors.New("secret: wrap identity: nil identity")
	}
	if logN < scryptMinLogN || logN > scryptMaxLogN {
		return nil, fmt.Errorf("secret: wrap identity: scrypt logN %d out of range", logN)
	}
	r, err := age.NewScryptRecipient(transferSecret)
	if err != nil {
		return nil, fmt.Errorf("secret: wrap identity: %w", err)
	}
	r.SetWorkFactor(logN)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, fmt.Errorf("secret: wrap identity: %w", err)
	}
	if _, err := io.WriteString(w, id.String()); err != nil {
		return nil, fmt.Errorf("secret: wrap identity: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("secret: wrap identity: %w", err)
	}
	return buf.Bytes(), nil
}

// UnwrapIdentity reverses [WrapIdentity]. A wrong secret returns an error
// wrapping [ErrWrongSecret]; damaged data wraps [ErrCorrupt]. maxLogN caps
// the work a stored wrap can demand, so a tampered work factor cannot turn
// one unlock into minutes of CPU and gigabytes of memory. Pass the highest
// PasswordLogN ever used for stored wraps (today [PasswordLogN]); lowering
// it would lock out older transfers. Call it while holding a [Limiter].
//
// A right and a wrong secret run the same scrypt, so their timings match.
func UnwrapIdentity(wrapped []byte, transferSecret string, maxLogN int) (*age.X25519Identity, error) {
	if maxLogN < scryptMinLogN || maxLogN > scryptMaxLogN {
		return nil, fmt.Errorf("secret: unwrap identity: scrypt max logN %d out of range", maxLogN)
	}
	si, err := age.NewScryptIdentity(transferSecret)
	if err != nil {
		// The only failure is an empty secret, which is simply wrong.
		return nil, fmt.Errorf("secret: unwrap identity: %w", ErrWrongSecret)
	}
	si.SetMaxWorkFactor(maxLogN)
	r, err := age.Decrypt(bytes.NewReader(wrapped), si)
	if err != nil {
		// age reports a passphrase that does not open the scrypt stanza as
		// ErrIncorrectIdentity; a damaged header fails its MAC instead.
		if errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, fmt.Errorf("secret: unwrap identity: %w", ErrWrongSecret)
		}
		return nil, fmt.Errorf("secret: unwrap identity: %w: %v", ErrCorrupt, err)
	}
	text, err := io.ReadAll(io.LimitReader(r, maxIdentityText+1))
	if err != nil || len(text) > maxIdentityText {
		return nil, fmt.Errorf("secret: unwrap identity: %w: payload: %v", ErrCorrupt, err)
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(text)))
	if err != nil {
		// The error could quote the payload; do not pass it on.
		return nil, fmt.Errorf("secret: unwrap identity: %w: payload is not an X25519 identity", ErrCorrupt)
	}
	return id, nil
}

// Limiter bounds how many unlocks run at once. Each scrypt at PasswordLogN
// takes 32 MiB and a core for about 150 ms (see KDF.md), so without a
// bound a burst of password guesses would exhaust memory before any rate
// limit noticed.
type Limiter struct {
	slots chan struct{}
}

// NewLimiter returns a limiter that admits n concurrent holders (at least
// one). [DefaultUnlockConcurrency] is a good n.
func NewLimiter(n int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(n, 1))}
}

// Acquire waits for a free slot. It returns ctx.Err() if the context ends
// first, so a client that gave up does not keep its place in the queue.
func (l *Limiter) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release frees the slot taken by a successful Acquire.
func (l *Limiter) Release() {
	select {
	case <-l.slots:
	default:
		panic("secret: Limiter.Release without Acquire")
	}
}
