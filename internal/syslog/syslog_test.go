package syslog

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/syslog/syslogtest"
)

func TestParseAddr(t *testing.T) {
	for _, c := range []struct{ in, network, err string }{
		{"tcp://siem.example.nl:601", "tcp", ""},
		{"udp://10.0.0.5:514", "udp", ""},
		{"tls://[2001:db8::1]:6514", "tls", ""},
		{"siem.example.nl:514", "", "give udp://HOST:PORT"},
		{"tcp://siem.example.nl", "", "give a port, e.g. tcp://siem.example.nl:601"},
		{"http://siem:80", "", "scheme must be udp, tcp or tls"},
		{"tcp://siem:601/path", "", "give udp://HOST:PORT"},
		{"tcp://user@siem:601", "", "give udp://HOST:PORT"},
	} {
		n, _, err := ParseAddr(c.in)
		if c.err == "" && (err != nil || n != c.network) {
			t.Errorf("ParseAddr(%q) = %q, %v", c.in, n, err)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseAddr(%q) error %v, want one containing %q", c.in, err, c.err)
		}
	}
	if _, err := ParseFacility("local9"); err == nil || !strings.Contains(err.Error(), "local0 … local7") {
		t.Errorf("ParseFacility(local9): %v", err)
	}
	if _, err := New(Config{Addr: "tcp://a:601", CAFile: "/x"}); err == nil || !strings.Contains(err.Error(), "tls://") {
		t.Errorf("CA file without tls: %v", err)
	}
}

// TestRsyslogReceives sends over TCP and UDP to a real rsyslogd and reads
// back the fields its RFC 5424 parser found: the format is right when a
// SIEM's parser agrees with every field.
func TestRsyslogReceives(t *testing.T) {
	t.Parallel()
	r := syslogtest.Start(t)
	ctx := context.Background()
	at := time.Date(2026, 12, 5, 19, 30, 1, 123456000, time.UTC)
	for _, network := range []string{"tcp", "udp"} {
		addr := r.TCP
		if network == "udp" {
			addr = r.UDP
		}
		w, err := New(Config{Addr: network + "://" + addr, Facility: 16, AppName: "kluis test", Hostname: "host-" + network})
		if err != nil {
			t.Fatal(err)
		}
		body := `{"msg":"één regel","detail":"line1` + "\n" + `line2"}`
		if err := w.Send(ctx,
			Message{Facility: 16, Severity: Warning, Time: at, MsgID: "log", Body: []byte(body)},
			Message{Facility: AuditFacility, Severity: Notice, Time: at, MsgID: "audit", SeqID: 42, Body: []byte(`{"id":42}`)},
		); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	es := r.Wait(10*time.Second, "4 messages", func(es []syslogtest.Entry) bool { return len(es) >= 4 })
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Host+"/"+e.MsgID] = true
		if e.Protocol != "1" || e.App != "kluis_test" || e.ProcID != strconv.Itoa(os.Getpid()) {
			t.Errorf("header fields %+v: want version 1, app kluis_test (space replaced), our pid", e)
		}
		if !strings.HasPrefix(e.Time, "2026-12-05T19:30:01.123456") {
			t.Errorf("time %q, want the message's own time with microseconds", e.Time)
		}
		switch e.MsgID {
		case "log":
			if e.Facility != "16" || e.Severity != "4" || e.SD != "-" {
				t.Errorf("log entry %+v: want facility 16 (local0), severity 4, no structured data", e)
			}
			if e.Msg != `{"msg":"één regel","detail":"line1 line2"}` {
				t.Errorf("log msg %q: want the UTF-8 body on one line", e.Msg)
			}
		case "audit":
			if e.Facility != "13" || e.Severity != "5" || e.SD != `[meta sequenceId="42"]` || e.Msg != `{"id":42}` {
				t.Errorf("audit entry %+v", e)
			}
		default:
			t.Errorf("unexpected entry %+v", e)
		}
	}
	for _, k := range []string{"host-tcp/log", "host-tcp/audit", "host-udp/log", "host-udp/audit"} {
		if !seen[k] {
			t.Errorf("receiver did not get %s: %+v", k, es)
		}
	}
}

// TestReconnect: a send while the receiver is away fails (the caller keeps
// the message), and the next send after it is back succeeds on a new
// connection.
func TestReconnect(t *testing.T) {
	t.Parallel()
	r := syslogtest.Start(t)
	ctx := context.Background()
	w, err := New(Config{Addr: "tcp://" + r.TCP, Facility: 3, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	send := func(id int64) error {
		return w.Send(ctx, Message{Facility: 3, Severity: Info, MsgID: "t", SeqID: id, Body: []byte("m" + strconv.FormatInt(id, 10))})
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	r.Wait(10*time.Second, "message 1", func(es []syslogtest.Entry) bool { return len(es) == 1 })
	r.Stop()
	// The old connection may take a write before the reset shows; within
	// a few tries the sender must notice.
	failed := false
	for i := range 20 {
		if send(int64(100+i)) != nil {
			failed = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !failed {
		t.Fatal("sends to a stopped receiver kept succeeding")
	}
	r.Restart()
	if err := send(2); err != nil {
		t.Fatalf("send after the receiver is back: %v", err)
	}
	r.Wait(10*time.Second, "message 2 after restart", func(es []syslogtest.Entry) bool {
		for _, e := range es {
			if e.Msg == "m2" {
				return true
			}
		}
		return false
	})
}

// TestHandler: records go out with the severity of their level, and the
// console handler beside it is not slowed by a receiver that is away.
func TestHandler(t *testing.T) {
	t.Parallel()
	r := syslogtest.Start(t)
	w, err := New(Config{Addr: "tcp://" + r.TCP, Facility: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h := NewHandler(w, slog.LevelInfo)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	log := slog.New(h).With("component", "test")
	log.Debug("not sent")
	log.Info("started", "n", 1)
	log.Warn("slow")
	log.Error("broken", "err", "x")
	cancel()
	<-done
	es := r.Wait(10*time.Second, "3 log lines", func(es []syslogtest.Entry) bool { return len(es) >= 3 })
	want := map[string]string{"started": "6", "slow": "4", "broken": "3"}
	for _, e := range es {
		if strings.Contains(e.Msg, "not sent") {
			t.Errorf("a debug line went out at level info: %s", e.Msg)
		}
		for msg, sev := range want {
			if strings.Contains(e.Msg, `"msg":"`+msg+`"`) {
				if e.Severity != sev || e.Facility != "3" || !strings.Contains(e.Msg, `"component":"test"`) {
					t.Errorf("%s: %+v, want severity %s, facility 3 (daemon), the With attribute", msg, e, sev)
				}
				delete(want, msg)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("not received: %v", want)
	}

	// Receiver away: Handle returns at once, and lines beyond the queue
	// are dropped and counted instead of blocking.
	r.Stop()
	h2 := NewHandler(w, slog.LevelInfo)
	start := time.Now()
	for range queueLen + 10 {
		slog.New(h2).Info("queued")
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("logging %d lines with the receiver away took %s", queueLen+10, time.Since(start))
	}
	if d := h2.Dropped(); d != 10 {
		t.Errorf("dropped %d lines, want 10 (the queue holds %d)", d, queueLen)
	}
}

// TestTLS: tls:// verifies the receiver's certificate against --syslog-ca-file
// and frames messages by octet counting (RFC 5425).
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, _ := strconv.Atoi(strings.TrimSpace(n))
					buf := make([]byte, size)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					got <- string(buf)
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if _, err := New(Config{Addr: "tls://localhost:" + port, CAFile: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("a missing CA file was accepted")
	}
	// Without the CA the receiver's certificate is refused.
	w0, _ := New(Config{Addr: "tls://localhost:" + port, Facility: 3})
	if err := w0.Send(context.Background(), Message{Facility: 3, Severity: Info, MsgID: "x", Body: []byte("no")}); err == nil {
		t.Error("a self-signed receiver was trusted without --syslog-ca-file")
	}
	w, err := New(Config{Addr: "tls://localhost:" + port, CAFile: caFile, Facility: 3, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Send(context.Background(),
		Message{Facility: 3, Severity: Info, MsgID: "a", Body: []byte("first")},
		Message{Facility: 13, Severity: Notice, MsgID: "audit", SeqID: 7, Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<30>1 `, `<109>1 `} {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, want) {
				t.Errorf("frame %q, want prefix %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("TLS receiver got nothing")
		}
	}
}

// TestAuditMessages: every field of an entry, and its place in the chain,
// reach the receiver; a failed result is a warning.
func TestAuditMessages(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	ms := AuditMessages([]*store.AuditRow{
		{ID: 9, At: at, Actor: "sender:a@example.nl", Action: "transfer.revoke", Object: "t1", Result: "ok", IP: "192.0.2.1", Role: "helpdesk", Reason: "asked", PrevHash: []byte{1}, Hash: []byte{2}},
		{ID: 10, At: at, Actor: "recipient:3", Action: "unlock", Result: "fail"},
	})
	if len(ms) != 2 || ms[0].SeqID != 9 || ms[0].Facility != AuditFacility || ms[0].Severity != Notice || ms[1].Severity != Warning {
		t.Fatalf("messages %+v", ms)
	}
	want := `{"id":9,"at":"2026-12-05T10:00:00.000Z","actor":"sender:a@example.nl","action":"transfer.revoke","object":"t1","result":"ok","ip":"192.0.2.1","role":"helpdesk","reason":"asked","prev_hash":"01","hash":"02"}`
	if string(ms[0].Body) != want {
		t.Errorf("body\n%s\nwant\n%s", ms[0].Body, want)
	}
}

func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}
