// Package scantest starts ClamAV's real daemon for tests: clamd from
// Debian's package (KLUIS_TEST_CLAMD names the binary), with a signature
// database made here from the EICAR test string and a Kluis marker, so
// nothing is downloaded. Tests skip without KLUIS_TEST_CLAMD, and fail
// instead when CI=true.
package scantest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/scan"
)

// EICAR is the anti-virus test file (eicar.org): every scanner reports it,
// and it is harmless.
const EICAR = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// Marker is a byte string the test signatures match anywhere in a file, so
// tests can hide "malware" inside larger content (EICAR itself only matches
// as a whole file, by its MD5).
const Marker = "KLUIS-TEST-MALWARE-MARKER-7f3a9c"

// Daemon is a clamd process started for one test.
type Daemon struct {
	bin, dir, conf string
	unix, tcp      string
	cmd            *exec.Cmd
	exited         chan error
}

// Options change the daemon's configuration.
type Options struct {
	// StreamMaxLength is clamd's INSTREAM limit ("10M", "300M");
	// empty: clamd's default (25M).
	StreamMaxLength string
}

// Bin returns the clamd binary of KLUIS_TEST_CLAMD, or skips the test
// (fails it with CI=true) when it is not set.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("KLUIS_TEST_CLAMD")
	if bin == "" {
		msg := "KLUIS_TEST_CLAMD not set (path of clamd, from Debian's clamav-daemon package)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — required in CI")
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts clamd with the test signatures on a Unix socket and a TCP
// port on loopback; it is stopped when the test ends.
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	bin := Bin(t)
	// Unix socket paths are limited to about 100 bytes; t.TempDir can be
	// longer.
	dir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	// An MD5 signature of the whole EICAR file (as sigtool --md5 writes
	// it) and a body signature for the marker anywhere in a file.
	sum := md5.Sum([]byte(EICAR))
	hdb := fmt.Sprintf("%s:%d:Kluis-Test-EICAR\n", hex.EncodeToString(sum[:]), len(EICAR))
	ndb := fmt.Sprintf("Kluis-Test-Marker:0:*:%s\n", hex.EncodeToString([]byte(Marker)))
	if err := os.WriteFile(filepath.Join(db, "kluis.hdb"), []byte(hdb), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "kluis.ndb"), []byte(ndb), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{bin: bin, dir: dir, unix: filepath.Join(dir, "clamd.sock"), tcp: freePort(t)}
	_, port, _ := net.SplitHostPort(d.tcp)
	conf := []string{
		"Foreground yes",
		"DatabaseDirectory " + db,
		"LocalSocket " + d.unix,
		"TCPSocket " + port,
		"TCPAddr 127.0.0.1",
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"LogTime yes",
		"SelfCheck 0",
	}
	if o.StreamMaxLength != "" {
		conf = append(conf, "StreamMaxLength "+o.StreamMaxLength)
	}
	d.conf = filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(d.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Start(t)
	t.Cleanup(func() { d.Stop(t) })
	return d
}

// Unix is the daemon's address on its Unix socket, for scan.Parse.
func (d *Daemon) Unix() string { return "unix:" + d.unix }

// TCP is the daemon's address on loopback TCP, for scan.Parse.
func (d *Daemon) TCP() string { return "tcp://" + d.tcp }

// Start starts the daemon (again, after Stop) and waits until it answers
// PING on both sockets.
func (d *Daemon) Start(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		t.Fatal("clamd: already running")
	}
	os.Remove(d.unix)
	cmd := exec.Command(d.bin, "--foreground", "--config-file="+d.conf)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	d.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{d.Unix(), d.TCP()} {
		c, err := scan.Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = time.Second
		for {
			err := c.Ping(context.Background())
			if err == nil {
				break
			}
			select {
			case werr := <-exited:
				log, _ := os.ReadFile(filepath.Join(d.dir, "clamd.log"))
				t.Fatalf("clamd exited at start (%v): %s", werr, log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("clamd does not answer on %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	d.exited = exited
}

// Stop ends the daemon; a stopped daemon's sockets refuse connections.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
	os.Remove(d.unix)
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
