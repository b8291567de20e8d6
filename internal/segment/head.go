package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// A manifest that is stored whole must be rewritten (and resealed) on
// every segment commit, so a commit costs O(segments before it). Instead,
// the caller stores each Entry once, in its own sealed row bound to the
// file and the entry's index, and beside the file one small Head: the
// number of entries, where the file ends, the running hash state, and the
// header hash of the last entry. Appending a segment is then O(1): check
// the entry against the head, write the entry and the new head.
//
// Each entry also carries the header hash of the entry before it (Prev),
// so the entries form a chain that ends in Head.Last. Assemble checks the
// chain, the count and the offsets when a file is read: a dropped, swapped
// or replayed entry row fails there even though each row is sealed on its
// own, and a dropped, swapped or replayed blob fails the header pin as
// before.

// entryVersion is the version byte of a stored Entry and of a Head.
const entryVersion = 0x01

// Head is the state of a file after its last segment: all a commit needs.
type Head struct {
	Count     int    `json:"n"`  // number of entries
	Size      int64  `json:"s"`  // plaintext size: the end of the last entry
	HashState []byte `json:"hs"` // running SHA-256 state after the last entry; nil when empty
	Last      []byte `json:"l"`  // HeaderHash of the last entry; nil when empty
	// Short counts the entries that ended before the file did because
	// their request ended (not at the segment bound) and held less than
	// the caller's minimum: tiny requests. The caller bounds it.
	Short int `json:"sh,omitempty"`
}

// Append checks that e follows h (offset, count, a well-formed entry),
// links e to the entry before it (e.Prev) and returns the head after e.
// h is not changed.
func (h Head) Append(e *Entry) (Head, error) {
	if h.Count >= MaxSegments {
		return h, ErrTooManySegments
	}
	if e.Offset != h.Size {
		return h, fmt.Errorf("segment: entry offset %d, file ends at %d", e.Offset, h.Size)
	}
	if e.Key == "" {
		return h, fmt.Errorf("segment: append: entry without a blob key")
	}
	if err := e.check(); err != nil {
		return h, fmt.Errorf("segment: append: %w", err)
	}
	e.Prev = bytes.Clone(h.Last)
	return Head{Count: h.Count + 1, Size: e.end(), HashState: bytes.Clone(e.HashState), Last: bytes.Clone(e.HeaderHash), Short: h.Short}, nil
}

// Head returns the head of m: what a file stored whole as m is, stored one
// entry at a time. It sets each entry's Prev, as Append would have.
func (m *Manifest) Head() Head {
	var h Head
	for i := range m.Entries {
		e := &m.Entries[i]
		e.Prev = bytes.Clone(h.Last)
		h = Head{Count: h.Count + 1, Size: e.end(), HashState: e.HashState, Last: e.HeaderHash}
	}
	return h
}

// Marshal encodes h as the version byte followed by JSON.
func (h Head) Marshal() []byte {
	b, err := json.Marshal(h)
	if err != nil {
		panic("segment: marshal head: " + err.Error())
	}
	return append([]byte{entryVersion}, b...)
}

// UnmarshalHead decodes a head made by Head.Marshal.
func UnmarshalHead(b []byte) (Head, error) {
	var h Head
	if err := unmarshalVersioned("head", b, &h); err != nil {
		return Head{}, err
	}
	switch {
	case h.Count < 0 || h.Count > MaxSegments || h.Size < 0 || h.Short < 0:
		return Head{}, fmt.Errorf("%w: head: bad count or size", ErrIntegrity)
	case (h.Count == 0) != (h.Size == 0), (h.Count == 0) != (h.HashState == nil), (h.Count == 0) != (h.Last == nil):
		return Head{}, fmt.Errorf("%w: head: count, size, hash state and last entry disagree", ErrIntegrity)
	}
	if h.Count > 0 {
		if _, err := restoreHash(h.HashState); err != nil {
			return Head{}, fmt.Errorf("%w: head: %w", ErrIntegrity, err)
		}
		if n, ok := hashedLen(h.HashState); ok && n != h.Size {
			return Head{}, fmt.Errorf("%w: head: hash state covers %d bytes, file ends at %d", ErrIntegrity, n, h.Size)
		}
	}
	return h, nil
}

// MarshalEntry encodes one stored entry: the version byte and JSON.
func MarshalEntry(e Entry) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic("segment: marshal entry: " + err.Error())
	}
	return append([]byte{entryVersion}, b...)
}

// UnmarshalEntry decodes an entry made by MarshalEntry and checks what can
// be checked without its neighbours.
func UnmarshalEntry(b []byte) (Entry, error) {
	var e Entry
	if err := unmarshalVersioned("entry", b, &e); err != nil {
		return Entry{}, err
	}
	if err := e.check(); err != nil {
		return Entry{}, fmt.Errorf("%w: entry: %w", ErrIntegrity, err)
	}
	return e, nil
}

func unmarshalVersioned(what string, b []byte, v any) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty %s", ErrIntegrity, what)
	}
	if b[0] != entryVersion {
		return fmt.Errorf("%w: unknown %s version %#x", ErrIntegrity, what, b[0])
	}
	dec := json.NewDecoder(bytes.NewReader(b[1:]))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrIntegrity, what, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: %s: trailing data", ErrIntegrity, what)
	}
	return nil
}

// Assemble checks that entries, read in index order, are exactly the file
// h describes, and returns them as a manifest: as many as h counts,
// contiguous from offset 0, each linked to the one before it, the last
// one matching h, no blob or header used twice.
func Assemble(h Head, entries []Entry) (*Manifest, error) {
	if len(entries) != h.Count {
		return nil, fmt.Errorf("%w: %d segment entries stored, the file has %d", ErrIntegrity, len(entries), h.Count)
	}
	m := &Manifest{Entries: make([]Entry, 0, len(entries))}
	keys := make(map[string]bool, len(entries))
	heads := make(map[string]bool, len(entries))
	var prev []byte
	for i, e := range entries {
		if e.Offset != m.Size() {
			return nil, fmt.Errorf("%w: segment entry %d starts at %d, expected %d", ErrIntegrity, i, e.Offset, m.Size())
		}
		if !bytes.Equal(e.Prev, prev) {
			return nil, fmt.Errorf("%w: segment entry %d does not follow entry %d", ErrIntegrity, i, i-1)
		}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%w: segment entry %d: %w", ErrIntegrity, i, err)
		}
		if e.Key == "" || keys[e.Key] || heads[string(e.HeaderHash)] {
			return nil, fmt.Errorf("%w: segment entry %d: missing or repeated blob", ErrIntegrity, i)
		}
		keys[e.Key], heads[string(e.HeaderHash)] = true, true
		prev = e.HeaderHash
		m.Entries = append(m.Entries, e)
	}
	if m.Size() != h.Size || !bytes.Equal(prev, h.Last) || !bytes.Equal(m.HashState(), h.HashState) {
		return nil, fmt.Errorf("%w: the last segment entry does not match the file", ErrIntegrity)
	}
	return m, nil
}

// Sum returns the SHA-256 of the whole file, from the head's hash state.
func (h Head) Sum() ([]byte, error) {
	hs, err := restoreHash(h.HashState)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return hs.Sum(nil), nil
}
