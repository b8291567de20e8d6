// Package scan is a small client of ClamAV's daemon, clamd, for scanning
// file content before anyone is told a transfer is ready.
//
// # Protocol
//
// clamd speaks a line protocol on a Unix or TCP socket. The client uses
// three commands, each on its own connection and each terminated by a NUL
// byte (the "z" form):
//
//   - zPING, answered by PONG;
//   - zVERSION, answered by the engine and signature versions;
//   - zINSTREAM, followed by chunks of <4-byte big-endian length><data> and
//     a zero length; answered by "stream: OK", "stream: NAME FOUND", or
//     "INSTREAM size limit exceeded. ERROR" when the stream passed clamd's
//     StreamMaxLength (clamd then closes the connection, so a write may
//     fail before the answer is read).
//
// Memory is one chunk buffer per scan, whatever the size of the content.
//
// # Errors
//
// Scan tells three outcomes apart: a verdict (Result), ErrTooLarge (the
// content passed StreamMaxLength, so clamd gave no verdict), and errors
// that wrap ErrUnavailable (clamd could not be reached, timed out, or
// reported an error of its own: try again later). An error reading the
// content itself is returned as it is, wrapping neither.
package scan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// ErrUnavailable is wrapped by every error that means clamd gave no verdict
// for a reason of its own: it cannot be reached, it timed out, or it
// answered with an error. The content may be scanned again later.
var ErrUnavailable = errors.New("scan: clamd unavailable")

// ErrTooLarge means the content is larger than clamd's StreamMaxLength:
// clamd refused to scan it. Policy decides what happens to such a file.
var ErrTooLarge = errors.New("scan: content larger than clamd's StreamMaxLength")

// Result is clamd's verdict on content.
type Result struct {
	Infected  bool
	Signature string // the signature that matched, when Infected
}

// Defaults of Client.Timeout and Client.ReplyTimeout.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultReplyTimeout = 10 * time.Minute
)

// chunkSize is the size of one INSTREAM chunk and of the client's buffer.
const chunkSize = 256 << 10

// Client talks to one clamd. Its zero value is not usable; use Parse.
type Client struct {
	network, addr string
	// Timeout bounds connecting, each write, and each command's answer
	// except INSTREAM's.
	Timeout time.Duration
	// ReplyTimeout bounds the wait for INSTREAM's verdict after the last
	// byte was sent: clamd scans then, and a large archive takes time
	// (clamd's own MaxScanTime is 2 minutes by default).
	ReplyTimeout time.Duration
}

// Parse reads clamd's address: "unix:/path/to/clamd.ctl" or
// "tcp://host:port" (port 3310 when left out).
func Parse(addr string) (*Client, error) {
	c := &Client{Timeout: DefaultTimeout, ReplyTimeout: DefaultReplyTimeout}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		p := strings.TrimPrefix(strings.TrimPrefix(addr, "unix:"), "//")
		if !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("clamd address %q: a unix socket needs an absolute path, as unix:/run/clamav/clamd.ctl", addr)
		}
		c.network, c.addr = "unix", p
	case strings.HasPrefix(addr, "tcp://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("clamd address %q: write it as tcp://host:port, as tcp://127.0.0.1:3310", addr)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "3310")
		}
		c.network, c.addr = "tcp", host
	default:
		return nil, fmt.Errorf("clamd address %q: use unix:/path/to/clamd.ctl or tcp://host:3310", addr)
	}
	return c, nil
}

// String is the address as Parse accepts it.
func (c *Client) String() string {
	if c.network == "unix" {
		return "unix:" + c.addr
	}
	return "tcp://" + c.addr
}

func (c *Client) dial(ctx context.Context) (net.Conn, func() bool, error) {
	d := net.Dialer{Timeout: c.Timeout}
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// Cancelling ctx unblocks any read or write in flight.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return conn, stop, nil
}

// Ping checks that clamd answers.
func (c *Client) Ping(ctx context.Context) error {
	reply, err := c.command(ctx, "zPING\x00")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("%w: unexpected answer to PING: %q", ErrUnavailable, reply)
	}
	return nil
}

// Version returns clamd's version line (engine/signatures/date).
func (c *Client) Version(ctx context.Context) (string, error) {
	return c.command(ctx, "zVERSION\x00")
}

func (c *Client) command(ctx context.Context, cmd string) (string, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(c.Timeout))
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", c.netErr(ctx, err)
	}
	return c.reply(ctx, conn)
}

// reply reads one NUL-terminated answer (at most 4 KiB).
func (c *Client) reply(ctx context.Context, conn net.Conn) (string, error) {
	b, err := io.ReadAll(io.LimitReader(conn, 4<<10))
	if len(b) > 0 && b[len(b)-1] == 0 {
		return string(b[:len(b)-1]), nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return "", c.netErr(ctx, err)
}

func (c *Client) netErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, c, err)
}

// Scan streams r to clamd (INSTREAM) and returns its verdict. It returns
// ErrTooLarge when r is longer than clamd's StreamMaxLength, an error
// wrapping ErrUnavailable when clamd gave no verdict, and a read error of
// r as it is.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(c.Timeout))
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return Result{}, c.netErr(ctx, err)
	}
	buf := make([]byte, 4+chunkSize)
	for {
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			conn.SetWriteDeadline(time.Now().Add(c.Timeout))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				// clamd closes the connection when the stream passes
				// StreamMaxLength; its answer may still be there.
				conn.SetReadDeadline(time.Now().Add(c.Timeout))
				if reply, rerr := c.reply(ctx, conn); rerr == nil {
					return parseVerdict(reply)
				}
				return Result{}, c.netErr(ctx, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return Result{}, fmt.Errorf("scan: read content: %w", rerr)
		}
	}
	conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	if _, err := conn.Write([]byte{0, 0, 0, 0}); err != nil {
		conn.SetReadDeadline(time.Now().Add(c.Timeout))
		if reply, rerr := c.reply(ctx, conn); rerr == nil {
			return parseVerdict(reply)
		}
		return Result{}, c.netErr(ctx, err)
	}
	conn.SetReadDeadline(time.Now().Add(c.ReplyTimeout))
	reply, err := c.reply(ctx, conn)
	if err != nil {
		return Result{}, err
	}
	return parseVerdict(reply)
}

// parseVerdict reads INSTREAM's answer: "stream: OK", "stream: NAME FOUND",
// "INSTREAM size limit exceeded. ERROR", or another "... ERROR".
func parseVerdict(reply string) (Result, error) {
	switch {
	case strings.HasPrefix(reply, "INSTREAM size limit exceeded"):
		return Result{}, ErrTooLarge
	case strings.HasSuffix(reply, " ERROR"):
		return Result{}, fmt.Errorf("%w: clamd: %s", ErrUnavailable, reply)
	}
	v, ok := strings.CutPrefix(reply, "stream: ")
	if !ok {
		return Result{}, fmt.Errorf("%w: unexpected answer to INSTREAM: %q", ErrUnavailable, reply)
	}
	if v == "OK" {
		return Result{}, nil
	}
	if sig, ok := strings.CutSuffix(v, " FOUND"); ok && sig != "" {
		return Result{Infected: true, Signature: sig}, nil
	}
	return Result{}, fmt.Errorf("%w: unexpected answer to INSTREAM: %q", ErrUnavailable, reply)
}
