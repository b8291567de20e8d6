package policy

import "sync/atomic"

// Holder holds the policy in force. The server reads it on every transfer
// and replaces it on SIGHUP; a bad file never replaces a good policy.
type Holder struct {
	p atomic.Pointer[Policy]
}

// NewHolder returns a holder with p in force (nil: Default()).
func NewHolder(p *Policy) *Holder {
	h := &Holder{}
	h.Set(p)
	return h
}

// Get returns the policy in force.
func (h *Holder) Get() *Policy {
	if p := h.p.Load(); p != nil {
		return p
	}
	return Default()
}

// Set puts p in force (nil: Default()).
func (h *Holder) Set(p *Policy) {
	if p == nil {
		p = Default()
	}
	h.p.Store(p)
}

// Reload reads and validates file and puts it in force. On an error the
// policy in force stays as it was, and the error says what to fix.
func (h *Holder) Reload(file string) error {
	p, err := Load(file)
	if err != nil {
		return err
	}
	h.Set(p)
	return nil
}
