// Package segment stores the content of one Kluis file as a sequence of age
// v1 files ("segments") and describes them with a manifest.
//
// # Segments
//
// Each segment is a complete, standard age file encrypted to the transfer's
// X25519 recipient with age's public API, holding one contiguous byte range
// of the plaintext. A segment ends at MaxSize plaintext bytes or whenever an
// upload request ends, so an interrupted upload never has to reopen a blob:
// it resumes with a new segment at the exact byte where the last one ended,
// on any instance. Because every segment is plain age, an operator can
// decrypt each one with the age tool and concatenate the outputs.
//
// Inside a segment, age's STREAM payload (64 KiB ChaCha20-Poly1305 chunks,
// counter nonces, a last-chunk flag) already detects bit flips, truncation,
// padding and reordered chunks. What age cannot see is the relation between
// segments: which blobs belong to a file, in which order, and whether a blob
// is the one that was written. Nor does age authenticate the sender: anyone
// who knows the recipient can produce a valid age file for it.
//
// # Manifest
//
// The manifest therefore lists the segments in order and pins each one by
// its plaintext offset and size, its ciphertext size, and the SHA-256 of its
// age header plus the 16-byte payload nonce. The header binds the file key
// (through the header MAC) and the nonce derives the payload key, so pinning
// those bytes pins the whole segment: a dropped, swapped, replayed or forged
// segment fails the header check before a byte of it is released, and any
// other change then fails age's own authentication.
//
// Each entry also carries the marshaled state of the running SHA-256 of the
// whole file after that segment, so a resumed upload continues the hash
// without re-reading stored data and finishing an upload is O(1).
//
// The encoding is a version byte (0x01) followed by JSON. The manifest is
// only as trustworthy as its storage: the caller seals it with the master
// key (an AEAD), which is what makes the pins unforgeable for an attacker
// who controls only the blob store.
//
// # Stored one entry at a time
//
// Kluis stores a manifest as its entries, each sealed on its own and bound
// to its file and index, plus a small Head (count, end offset, hash state,
// last header hash), so that committing a segment costs the same whatever
// came before it (see head.go). Each entry names the header hash of the
// one before it (Prev), and Assemble checks that chain against the head, so
// a dropped, swapped or replayed entry row is detected as a stored
// manifest's would be. Marshal and Unmarshal remain for manifests stored
// whole by earlier versions.
package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
)

// MaxSize is the plaintext bound of one segment.
const MaxSize = 64 << 20

// MaxSegments bounds the segments of one file; reaching it means a client
// is sending tiny requests, and the manifest must stay small.
const MaxSegments = 4096

// ErrIntegrity is wrapped by every error that reports stored data (a blob or
// a manifest) that does not match what was written.
var ErrIntegrity = errors.New("segment: stored data failed verification")

// ErrTooManySegments is returned by Manifest.Append at MaxSegments.
var ErrTooManySegments = errors.New("segment: too many segments for one file")

// maxSize is MaxSize except in tests, which lower it to cross the bound
// without writing 64 MiB.
var maxSize int64 = MaxSize

const (
	manifestVersion = 0x01

	// These describe age's STREAM payload; they are needed to check that a
	// manifest entry's sizes are consistent with each other.
	chunkSize     = 64 << 10
	chunkOverhead = 16 // Poly1305 tag
	nonceSize     = 16

	// maxHeaderLen bounds what a reader holds in memory for the header
	// check. An X25519 header is about 200 bytes; post-quantum recipients
	// need a few KiB.
	maxHeaderLen = 64 << 10
)

// Entry describes one segment.
type Entry struct {
	Key        string `json:"k"`  // blob key (set by the caller after Close)
	Offset     int64  `json:"o"`  // plaintext offset of the first byte
	Size       int64  `json:"s"`  // plaintext bytes
	CipherSize int64  `json:"c"`  // bytes of the age file
	HeaderHash []byte `json:"h"`  // SHA-256 of the first HeaderLen bytes: age header plus payload nonce
	HeaderLen  int64  `json:"hl"` // length of the age header plus the 16-byte payload nonce
	HashState  []byte `json:"hs"` // marshaled state of the running SHA-256 of the whole file after this segment
	// Prev is the HeaderHash of the entry before this one (nil for the
	// first), so stored entries form a chain; see Head.Append.
	Prev []byte `json:"p,omitempty"`
}

func (e *Entry) end() int64 { return e.Offset + e.Size }

// cipherSize is the exact size of an age file whose header and nonce take
// headerLen bytes and whose payload holds size plaintext bytes.
func cipherSize(headerLen, size int64) int64 {
	chunks := (size + chunkSize - 1) / chunkSize
	if chunks == 0 {
		chunks = 1 // an empty payload is one empty final chunk
	}
	return headerLen + size + chunks*chunkOverhead
}

// check validates everything about an entry that can be checked without the
// blob. Offsets are checked by the caller, who knows the previous entry.
func (e *Entry) check() error {
	switch {
	case e.Size <= 0 || e.Size > maxSize:
		return fmt.Errorf("bad plaintext size %d", e.Size)
	case e.Offset < 0:
		return fmt.Errorf("bad offset %d", e.Offset)
	case e.HeaderLen <= nonceSize || e.HeaderLen > maxHeaderLen:
		return fmt.Errorf("bad header length %d", e.HeaderLen)
	case len(e.HeaderHash) != sha256.Size:
		return fmt.Errorf("bad header hash length %d", len(e.HeaderHash))
	case e.CipherSize != cipherSize(e.HeaderLen, e.Size):
		return fmt.Errorf("ciphertext size %d does not match plaintext size %d", e.CipherSize, e.Size)
	}
	if len(e.HashState) == 0 {
		return errors.New("missing hash state")
	}
	if _, err := restoreHash(e.HashState); err != nil {
		return err
	}
	// The hash state counts the bytes hashed so far; if it disagrees with
	// the offsets, the hash and the content would silently diverge.
	if n, ok := hashedLen(e.HashState); ok && n != e.end() {
		return fmt.Errorf("hash state covers %d bytes, entry ends at %d", n, e.end())
	}
	return nil
}

// Manifest lists the segments of one file in order.
type Manifest struct {
	Entries []Entry
}

// Size is the plaintext size of the file: the end of the last entry.
func (m *Manifest) Size() int64 {
	if len(m.Entries) == 0 {
		return 0
	}
	return m.Entries[len(m.Entries)-1].end()
}

// HashState is the running hash state after the last entry, to be passed to
// NewWriter when the upload resumes; nil for an empty file.
func (m *Manifest) HashState() []byte {
	if len(m.Entries) == 0 {
		return nil
	}
	return m.Entries[len(m.Entries)-1].HashState
}

// Append adds e after the last entry. The entry must start exactly where the
// file ends and must not be empty (a writer closed without data has nothing
// worth storing).
func (m *Manifest) Append(e Entry) error {
	if len(m.Entries) >= MaxSegments {
		return ErrTooManySegments
	}
	if e.Offset != m.Size() {
		return fmt.Errorf("segment: entry offset %d, file ends at %d", e.Offset, m.Size())
	}
	if err := e.check(); err != nil {
		return fmt.Errorf("segment: append: %w", err)
	}
	m.Entries = append(m.Entries, e)
	return nil
}

// Sum returns the SHA-256 of the whole file, from the last hash state.
func (m *Manifest) Sum() ([]byte, error) {
	if len(m.Entries) == 0 {
		s := sha256.Sum256(nil)
		return s[:], nil
	}
	h, err := restoreHash(m.HashState())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return h.Sum(nil), nil
}

// wireManifest is the JSON form; its own type keeps the encoding stable if
// Manifest grows fields that are not meant to be stored.
type wireManifest struct {
	Entries []Entry `json:"e"`
}

// Marshal encodes m as the version byte followed by JSON.
func (m *Manifest) Marshal() []byte {
	entries := m.Entries
	if entries == nil {
		entries = []Entry{}
	}
	b, err := json.Marshal(wireManifest{Entries: entries})
	if err != nil {
		// Only strings, integers and byte slices: cannot fail.
		panic("segment: marshal manifest: " + err.Error())
	}
	return append([]byte{manifestVersion}, b...)
}

// Unmarshal decodes a manifest made by Marshal and checks that it describes
// a well-formed file: contiguous entries from offset 0, consistent sizes,
// and hash states that cover exactly the bytes before them.
func Unmarshal(b []byte) (*Manifest, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty manifest", ErrIntegrity)
	}
	if b[0] != manifestVersion {
		return nil, fmt.Errorf("%w: unknown manifest version %#x", ErrIntegrity, b[0])
	}
	var w wireManifest
	dec := json.NewDecoder(bytes.NewReader(b[1:]))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrIntegrity, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: manifest: trailing data", ErrIntegrity)
	}
	if len(w.Entries) > MaxSegments {
		return nil, fmt.Errorf("%w: manifest has %d entries", ErrIntegrity, len(w.Entries))
	}
	m := &Manifest{Entries: make([]Entry, 0, len(w.Entries))}
	keys := make(map[string]bool, len(w.Entries))
	heads := make(map[string]bool, len(w.Entries))
	for i, e := range w.Entries {
		if e.Offset != m.Size() {
			return nil, fmt.Errorf("%w: manifest entry %d starts at %d, expected %d", ErrIntegrity, i, e.Offset, m.Size())
		}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%w: manifest entry %d: %w", ErrIntegrity, i, err)
		}
		// A stored manifest always names its blobs, and one blob (or one
		// header, which includes a random nonce) cannot be two segments.
		if e.Key == "" || keys[e.Key] || heads[string(e.HeaderHash)] {
			return nil, fmt.Errorf("%w: manifest entry %d: missing or repeated blob", ErrIntegrity, i)
		}
		keys[e.Key], heads[string(e.HeaderHash)] = true, true
		m.Entries = append(m.Entries, e)
	}
	return m, nil
}

func restoreHash(state []byte) (hash.Hash, error) {
	h := sha256.New()
	if state == nil {
		return h, nil
	}
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("bad hash state: %w", err)
	}
	return h, nil
}

func marshalHash(h hash.Hash) []byte {
	b, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("segment: marshal sha256 state: " + err.Error())
	}
	return b
}

// hashedLen reads the byte count from a marshaled crypto/sha256 state. The
// layout (magic, 8 words, 64-byte block, big-endian length) is fixed because
// Go must keep reading states that older versions wrote; if it ever grows a
// new layout, the check is skipped rather than failing good data.
func hashedLen(state []byte) (int64, bool) {
	const magic = "sha\x03"
	if len(state) != len(magic)+8*4+64+8 || string(state[:len(magic)]) != magic {
		return 0, false
	}
	n := binary.BigEndian.Uint64(state[len(state)-8:])
	if n > 1<<62 {
		return -1, true
	}
	return int64(n), true
}
