package outbox

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type countingMetrics struct {
	mu                    sync.Mutex
	sent, temporary, perm int
	reasons               []string
}

func (c *countingMetrics) Sent() { c.mu.Lock(); c.sent++; c.mu.Unlock() }
func (c *countingMetrics) Failed(permanent bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if permanent {
		c.perm++
	} else {
		c.temporary++
	}
	c.reasons = append(c.reasons, reason)
}

// TestMetricsHooks: each attempt reports its outcome once; a temporary
// failure, then a delivery; a permanent failure.
func TestMetricsHooks(t *testing.T) {
	e := newEnv(t)
	m := &countingMetrics{}
	e.o = New(Deps{DB: e.db, Keys: e.keys, Sender: e.sender, Domain: "example.org", Now: e.clock.Now, Log: e.logs.Logger(), Metrics: m})
	e.sender.fail = func(n int) error {
		switch n {
		case 1:
			return errors.New("421 4.3.2 try again later")
		case 3:
			return fmt.Errorf("smtp: %w", permErr{})
		}
		return nil
	}
	e.enqueue(t, e.o, testMsg(1))
	e.drain(t) // temporary failure
	e.clock.Advance(time.Minute)
	e.drain(t) // delivered
	e.enqueue(t, e.o, testMsg(2))
	e.drain(t) // rejected
	if m.sent != 1 || m.temporary != 1 || m.perm != 1 {
		t.Fatalf("sent %d, temporary %d, permanent %d; want 1 each", m.sent, m.temporary, m.perm)
	}
	if m.reasons[0] != "421 4.3.2 try again later" || m.reasons[1] != "smtp: 550 5.1.1 no such user" {
		t.Errorf("reasons %q", m.reasons)
	}
}
