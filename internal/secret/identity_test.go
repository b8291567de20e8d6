package secret

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
)

// testLogN keeps the tests fast; the benchmark covers the real cost.
const testLogN = 10

func TestWrapUnwrapIdentity(t *testing.T) {
	t.Parallel()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{NewLinkSecret(), GeneratePassword(), "naïve wachtwoord ✓", " spaces kept "} {
		wrapped, err := WrapIdentity(id, secret, testLogN)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnwrapIdentity(wrapped, secret, testLogN)
		if err != nil {
			t.Fatalf("unwrap with the right secret: %v", err)
		}
		if got.String() != id.String() {
			t.Fatal("unwrapped a different identity")
		}
	}
}

func TestUnwrapIdentityErrors(t *testing.T) {
	t.Parallel()
	id, _ := GenerateIdentity()
	const secret = "correct horse battery"
	wrapped, err := WrapIdentity(id, secret, testLogN)
	if err != nil {
		t.Fatal(err)
	}
	flipLast := bytes.Clone(wrapped)
	flipLast[len(flipLast)-1] ^= 1
	flipHeaderMAC := bytes.Clone(wrapped)
	flipHeaderMAC[bytes.Index(wrapped, []byte("\n--- "))+6] ^= 1

	tests := []struct {
		name    string
		wrapped []byte
		secret  string
		maxLogN int
		want    error
	}{
		{"wrong secret", wrapped, "correct horse battery!", testLogN, ErrWrongSecret},
		{"case matters", wrapped, "Correct horse battery", testLogN, ErrWrongSecret},
		{"empty secret", wrapped, "", testLogN, ErrWrongSecret},
		{"payload flipped", flipLast, secret, testLogN, ErrCorrupt},
		{"header MAC flipped", flipHeaderMAC, secret, testLogN, ErrCorrupt},
		{"truncated", wrapped[:len(wrapped)/2], secret, testLogN, ErrCorrupt},
		{"garbage", []byte("not an age file"), secret, testLogN, ErrCorrupt},
		// A wrap that demands more work than allowed is refused before
		// scrypt runs, whatever the secret.
		{"work factor above max", wrapped, secret, testLogN - 1, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := UnwrapIdentity(tt.wrapped, tt.secret, tt.maxLogN)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnwrapIdentity: %v; want %v", err, tt.want)
			}
			if got != nil {
				t.Error("identity returned with an error")
			}
		})
	}
}

func TestUnwrapIdentityNotPassphraseEncrypted(t *testing.T) {
	t.Parallel()
	// A file for an X25519 recipient is not a wrap: age says "incorrect
	// identity", which we can only report as a wrong secret. It cannot
	// occur for stored wraps, which are sealed under the master key.
	id, _ := GenerateIdentity()
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, id.Recipient())
	io.WriteString(w, id.String())
	w.Close()
	if _, err := UnwrapIdentity(buf.Bytes(), "x", testLogN); err == nil {
		t.Fatal("unwrapped a non-scrypt file")
	}
}

func TestWrapIdentityBadArguments(t *testing.T) {
	t.Parallel()
	id, _ := GenerateIdentity()
	if _, err := WrapIdentity(id, "", testLogN); err == nil {
		t.Error("empty secret accepted")
	}
	if _, err := WrapIdentity(nil, "secret", testLogN); err == nil {
		t.Error("nil identity accepted")
	}
	for _, logN := range []int{0, -1, 31} {
		if _, err := WrapIdentity(id, "secret", logN); err == nil {
			t.Errorf("logN %d accepted", logN)
		}
		if _, err := UnwrapIdentity(nil, "secret", logN); err == nil {
			t.Errorf("max logN %d accepted", logN)
		}
	}
}

// TestWrapIdentityInterop proves the wrap is a standard age file: plain
// age.Decrypt with a scrypt identity recovers the identity string, so an
// operator can do the same with the age tool.
func TestWrapIdentityInterop(t *testing.T) {
	t.Parallel()
	id, _ := GenerateIdentity()
	secret := NewLinkSecret()
	wrapped, err := WrapIdentity(id, secret, LinkSecretLogN)
	if err != nil {
		t.Fatal(err)
	}
	si, err := age.NewScryptIdentity(secret)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), si)
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := age.ParseX25519Identity(string(text))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.String() != id.String() {
		t.Fatal("age.Decrypt gave a different identity")
	}
	if !bytes.HasPrefix(wrapped, []byte("age-encryption.org/v1\n-> scrypt ")) {
		t.Errorf("not a binary age file with one scrypt stanza: %q", wrapped[:40])
	}

	// And the other way: a file age itself made for the same secret unwraps.
	sr, _ := age.NewScryptRecipient(secret)
	sr.SetWorkFactor(LinkSecretLogN)
	var buf bytes.Buffer
	w, _ := age.Encrypt(&buf, sr)
	io.WriteString(w, id.String())
	w.Close()
	got, err := UnwrapIdentity(buf.Bytes(), secret, LinkSecretLogN)
	if err != nil || got.String() != id.String() {
		t.Fatalf("UnwrapIdentity of an age-made file: %v", err)
	}
}

func TestPasswordLogNBudget(t *testing.T) {
	t.Parallel()
	// The ceiling: at most 64 MiB of scrypt memory per unlock.
	if mem := int64(1024) << PasswordLogN; mem > 64<<20 {
		t.Errorf("PasswordLogN %d uses %d MiB", PasswordLogN, mem>>20)
	}
	if LinkSecretLogN > PasswordLogN {
		t.Error("link secrets stretched more than passwords")
	}
}

func TestLimiterBoundsConcurrency(t *testing.T) {
	t.Parallel()
	const limit, workers = 3, 20
	l := NewLimiter(limit)
	var active, peak atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			if err := l.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			defer l.Release()
			n := active.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			active.Add(-1)
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("peak concurrency %d, limit %d", p, limit)
	} else if p < 2 {
		t.Errorf("peak concurrency %d: the limiter serialised everything", p)
	}
}

func TestLimiterContext(t *testing.T) {
	t.Parallel()
	l := NewLimiter(1)
	if err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire while full: %v; want DeadlineExceeded", err)
	}

	// A context that has already ended never takes a slot, even a free one.
	l.Release()
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := l.Acquire(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled context: %v", err)
	}

	// The slot freed above is still free.
	ctx3, cancel3 := context.WithTimeout(context.Background(), time.Second)
	defer cancel3()
	if err := l.Acquire(ctx3); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
	l.Release()
}

func TestLimiterReleaseWithoutAcquirePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	NewLimiter(2).Release()
}

func TestNewLimiterAtLeastOne(t *testing.T) {
	t.Parallel()
	l := NewLimiter(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.Acquire(ctx); err != nil {
		t.Fatalf("NewLimiter(0) admits nobody: %v", err)
	}
	l.Release()
}
