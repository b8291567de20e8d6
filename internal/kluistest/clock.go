// Package kluistest is what Kluis's tests share: a clock they move by hand
// ([Clock]), a log that keeps what was logged ([Logs]) and an SMS gateway
// that records what it is asked to send ([SMSGateway]). It imports no
// other Kluis package, so every package's tests can use it, also those of
// the packages the server is built from. The server itself is started for
// a test by package app/apptest.
package kluistest

import (
	"sync"
	"time"
)

// Clock is a time that tests set and move by hand; pass its Now as the
// clock of the code under test. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at the real time, in UTC and to the
// millisecond (as the database keeps times): file modification times stay
// real, and the collector compares them with the clock.
func NewClock() *Clock {
	return &Clock{t: time.Now().UTC().Truncate(time.Millisecond)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
