// Package syslogtest runs a real syslog receiver for tests: rsyslogd from
// Debian's rsyslog package (KLUIS_TEST_RSYSLOGD names the binary), on
// loopback TCP and UDP ports, writing every message it parsed as one JSON
// object per line (its own RFC 5424 parser's fields), so a test sees what
// a SIEM would. Tests skip without KLUIS_TEST_RSYSLOGD, and fail without
// it when CI=true.
package syslogtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Entry is one message as rsyslog parsed it.
type Entry struct {
	Protocol string `json:"protocol"`
	Facility string `json:"facility"`
	Severity string `json:"severity"`
	Host     string `json:"host"`
	App      string `json:"app"`
	ProcID   string `json:"procid"`
	MsgID    string `json:"msgid"`
	SD       string `json:"sd"`
	Time     string `json:"time"`
	Msg      string `json:"msg"`
}

// Receiver is a running rsyslogd.
type Receiver struct {
	TCP, UDP string // 127.0.0.1:PORT
	out      string
	cmd      *exec.Cmd
	conf     string
	t        testing.TB
}

// Bin returns the rsyslogd binary of KLUIS_TEST_RSYSLOGD, or skips the
// test (fails it with CI=true) when it is not set.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("KLUIS_TEST_RSYSLOGD")
	if bin == "" {
		msg := "KLUIS_TEST_RSYSLOGD not set (path of rsyslogd, from Debian's rsyslog package)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — required in CI")
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts rsyslogd; it is stopped when the test ends.
func Start(t testing.TB) *Receiver {
	t.Helper()
	Bin(t)
	dir := t.TempDir()
	r := &Receiver{TCP: freePort(t, "tcp"), UDP: freePort(t, "udp"), out: filepath.Join(dir, "received.jsonl"), t: t}
	_, tcpPort, _ := net.SplitHostPort(r.TCP)
	_, udpPort, _ := net.SplitHostPort(r.UDP)
	r.conf = filepath.Join(dir, "rsyslog.conf")
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port=%q)
input(type="imudp" address="127.0.0.1" port=%q)
template(name="fields" type="list" option.jsonf="on") {
  property(outname="protocol" name="protocol-version" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="host" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="time" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
}
*.* action(type="omfile" file=%q template="fields" flushOnTXEnd="on" asyncWriting="off")
`, dir, tcpPort, udpPort, r.out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	return r
}

func (r *Receiver) start() {
	t := r.t
	t.Helper()
	var stderr bytes.Buffer
	r.cmd = exec.Command(Bin(t), "-n", "-f", r.conf, "-i", r.conf+".pid")
	r.cmd.Stdout, r.cmd.Stderr = &stderr, &stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	cmd := r.cmd
	t.Cleanup(func() { stop(cmd) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.TCP, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s: %v\n%s", r.TCP, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Stop stops the receiver (its ports refuse until Restart).
func (r *Receiver) Stop() { stop(r.cmd) }

// Restart starts it again on the same ports, keeping what it received.
func (r *Receiver) Restart() { r.start() }

// Entries returns what the receiver has written so far.
func (r *Receiver) Entries() []Entry {
	r.t.Helper()
	f, err := os.Open(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	var es []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			r.t.Fatalf("rsyslog output line %q: %v", sc.Text(), err)
		}
		e.Msg = strings.TrimPrefix(e.Msg, " ")
		es = append(es, e)
	}
	return es
}

// Wait polls until ok holds for the entries received, or fails the test
// after timeout.
func (r *Receiver) Wait(timeout time.Duration, what string, ok func([]Entry) bool) []Entry {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		es := r.Entries()
		if ok(es) {
			return es
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("syslog receiver: %s not seen within %s; received %d entries: %+v", what, timeout, len(es), es)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t testing.TB, network string) string {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
}
