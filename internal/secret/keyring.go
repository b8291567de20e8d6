package secret

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// ErrCorrupt means a sealed value failed authentication, has an unknown
// format version or was sealed under another master key. Callers should
// treat all three alike: the stored data cannot be trusted.
var ErrCorrupt = errors.New("secret: data failed authentication")

const (
	// KeySize is the size of the master key and of [SealWithKey] keys.
	KeySize = chacha20poly1305.KeySize

	// formatV1 is the version byte in front of every sealed value, so a later
	// format (or algorithm) can be introduced without guessing (item 7).
	formatV1 byte = 0x01

	keyIDSize = 8
	nonceSize = chacha20poly1305.NonceSizeX
	tagSize   = chacha20poly1305.Overhead

	sealedOverhead  = 1 + keyIDSize + nonceSize + tagSize
	sessionOverhead = 1 + nonceSize + tagSize

	// maxKeyFileSize bounds what we read from the key file: a base64 key is
	// 45 bytes, so anything much larger is not a key file.
	maxKeyFileSize = 1024
)

// Keyring holds the master key. It is safe for concurrent use.
type Keyring struct {
	aead   cipher.AEAD
	keyID  [keyIDSize]byte
	macKey []byte // for [Keyring.MAC]; derived, never the master key itself
}

// NewKeyring returns a keyring for a 32-byte master key. It keeps its own
// copy of the key.
func NewKeyring(key []byte) (*Keyring, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: master key must be %d bytes, got %d", KeySize, len(key))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	k := &Keyring{aead: aead}
	sum := sha256.Sum256(key)
	copy(k.keyID[:], sum[:keyIDSize])
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kluis keyring mac key v1"))
	k.macKey = m.Sum(nil)
	return k, nil
}

// MAC returns a keyed hash (HMAC-SHA256 under a key derived from the master
// key) of data for purpose. Instances that share the master key get the
// same value, so it can name personal data (a client's IP address) in a
// shared table without storing the data itself; without the master key the
// value reveals nothing, not even by trying every IPv4 address.
func (k *Keyring) MAC(purpose string, data []byte) []byte {
	if strings.IndexByte(purpose, 0) >= 0 {
		panic("secret: purpose must not contain NUL")
	}
	m := hmac.New(sha256.New, k.macKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write(data)
	return m.Sum(nil)
}

// GenerateMasterKey returns 32 random bytes for a new master key.
func GenerateMasterKey() []byte {
	return randomBytes(KeySize)
}

// ID returns a short, public id of the key (hex of the first 8 bytes of its
// SHA-256). It lets operators and a future rotation tell keys apart without
// ever showing the key.
func (k *Keyring) ID() string {
	return hex.EncodeToString(k.keyID[:])
}

// additionalData binds a sealed value to its version, key, purpose and row.
// The NUL after purpose keeps ("ab", "c") and ("a", "bc") apart; purposes are
// constants in our code, so a NUL inside one is a programming error.
func (k *Keyring) additionalData(purpose, id string) []byte {
	if strings.IndexByte(purpose, 0) >= 0 {
		panic("secret: purpose must not contain NUL")
	}
	ad := make([]byte, 0, 1+keyIDSize+len(purpose)+1+len(id))
	ad = append(ad, formatV1)
	ad = append(ad, k.keyID[:]...)
	ad = append(ad, purpose...)
	ad = append(ad, 0)
	ad = append(ad, id...)
	return ad
}

// Seal encrypts plaintext for storage. purpose names what the value is (say
// "transfer.identity") and id the row it belongs to; [Keyring.Open] must be
// given the same pair, so a value copied to another column or row fails.
//
// Format: version (0x01) | key id (8) | nonce (24) | ciphertext and tag.
func (k *Keyring) Seal(purpose, id string, plaintext []byte) []byte {
	ad := k.additionalData(purpose, id)
	out := make([]byte, 0, sealedOverhead+len(plaintext))
	out = append(out, formatV1)
	out = append(out, k.keyID[:]...)
	out = append(out, randomBytes(nonceSize)...)
	return k.aead.Seal(out, out[1+keyIDSize:], plaintext, ad)
}

// Open reverses [Keyring.Seal]. Every failure wraps [ErrCorrupt].
func (k *Keyring) Open(purpose, id string, sealed []byte) ([]byte, error) {
	if len(sealed) < sealedOverhead {
		return nil, fmt.Errorf("%w: sealed value too short (%d bytes)", ErrCorrupt, len(sealed))
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format version 0x%02x", ErrCorrupt, sealed[0])
	}
	if kid := sealed[1 : 1+keyIDSize]; !Equal(kid, k.keyID[:]) {
		// Not secret, but worth saying: after a key mix-up this is the
		// difference between "restore the right key" and "data is damaged".
		return nil, fmt.Errorf("%w: sealed under key %x, keyring has key %s", ErrCorrupt, kid, k.ID())
	}
	nonce := sealed[1+keyIDSize : 1+keyIDSize+nonceSize]
	pt, err := k.aead.Open(nil, nonce, sealed[1+keyIDSize+nonceSize:], k.additionalData(purpose, id))
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

// SealWithKey seals with a key that is not the master key, such as a
// download session key that only the client's token carries. The caller
// chooses the associated data. It panics if key is not 32 bytes, because
// the key always comes from our own code on this side.
//
// Format: version (0x01) | nonce (24) | ciphertext and tag. The version byte
// is authenticated along with ad.
func SealWithKey(key []byte, ad, plaintext []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic("secret: SealWithKey: " + err.Error())
	}
	out := make([]byte, 0, sessionOverhead+len(plaintext))
	out = append(out, formatV1)
	out = append(out, randomBytes(nonceSize)...)
	return aead.Seal(out, out[1:], plaintext, sessionAD(ad))
}

// OpenWithKey reverses [SealWithKey]. Unlike SealWithKey it returns an
// error for a key of the wrong length, because here the key comes from a
// client's token. Every failure wraps [ErrCorrupt].
func OpenWithKey(key []byte, ad, sealed []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("%w: key must be %d bytes, got %d", ErrCorrupt, KeySize, len(key))
	}
	if len(sealed) < sessionOverhead {
		return nil, fmt.Errorf("%w: sealed value too short (%d bytes)", ErrCorrupt, len(sealed))
	}
	if sealed[0] != formatV1 {
		return nil, fmt.Errorf("%w: unknown format version 0x%02x", ErrCorrupt, sealed[0])
	}
	pt, err := aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], sessionAD(ad))
	if err != nil {
		return nil, ErrCorrupt
	}
	return pt, nil
}

func sessionAD(ad []byte) []byte {
	return append([]byte{formatV1}, ad...)
}

// LoadMasterKey reads the master key file at path (base64, standard
// encoding, one line). It refuses a file that group or others can read, so
// a key that leaked to other local users is noticed instead of used.
func LoadMasterKey(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secret: master key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret: master key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("secret: master key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; its ACLs are the operator's job.
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret: master key file %s is readable by group or others (mode %04o); run: chmod 600 %s",
			path, st.Mode().Perm(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("secret: master key file %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("secret: master key file %s is too large to be a key", path)
	}
	// Trim surrounding whitespace so a key written with echo or an editor
	// (CRLF, trailing newline) still loads. Errors never quote the content.
	key, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("secret: master key file %s does not hold base64 (standard encoding)", path)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: master key file %s holds %d bytes, want %d", path, len(key), KeySize)
	}
	return NewKeyring(key)
}

// LoadOrCreateMasterKey loads the master key at path, creating it first when
// the file does not exist (embedded mode: the key lives in the data folder).
// created reports whether this call made the key, so the caller can tell
// the operator to back it up.
func LoadOrCreateMasterKey(path string) (k *Keyring, created bool, err error) {
	k, err = LoadMasterKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	key := GenerateMasterKey()
	err = createKeyFile(path, key)
	if errors.Is(err, fs.ErrExist) {
		// Another instance won the race; use its key, not ours.
		k, err = LoadMasterKey(path)
		return k, false, err
	}
	if err != nil {
		return nil, false, err
	}
	k, err = NewKeyring(key)
	return k, err == nil, err
}

// createKeyFile writes the key with O_EXCL, so it never overwrites a key
// (that would make all data unreadable), and fsyncs the file and its
// directory so a crash cannot leave data sealed under a key that is gone.
func createKeyFile(path string, key []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("secret: create master key file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			// A half-written file would be refused on every later start.
			os.Remove(path)
		}
	}()
	if _, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return fmt.Errorf("secret: write master key file: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("secret: sync master key file: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("secret: close master key file: %w", err)
	}
	if err = syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("secret: sync directory of master key file: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
