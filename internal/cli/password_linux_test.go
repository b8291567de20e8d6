package cli

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kluis-nl/kluis/internal/locale"
)

// openPty returns the two ends of a new pseudo-terminal: what a terminal
// emulator holds (master) and what a shell's programs get (tty).
func openPty(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return master, tty
}

// On a real terminal the password is read without echo, after the prompt;
// a pipe is not a terminal.
func TestReadSecretFromTerminal(t *testing.T) {
	master, tty := openPty(t)
	term := TerminalOf(tty)
	if term == nil {
		t.Fatal("TerminalOf(a pty) = nil")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if TerminalOf(r) != nil {
		t.Fatal("a pipe is taken for a terminal")
	}

	var errOut bytes.Buffer
	a := &app{getenv: noEnv, p: locale.For(locale.NL), io: Stdio{In: tty, Out: &bytes.Buffer{}, Err: &errOut, Terminal: term}}
	f := a.flags("receive", "cli.receive.usage")
	s := f.secretFlags()
	type result struct {
		v   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := a.readSecret(f, s, "Wachtwoord: ")
		done <- result{v, err}
	}()
	// Type only once echo is off, as a person would after the prompt.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("echo was never switched off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := master.WriteString("geheim wachtwoord\n"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.v != "geheim wachtwoord" {
		t.Fatalf("readSecret = %q, %v", res.v, res.err)
	}
	if got := errOut.String(); got != "Wachtwoord: \n" {
		t.Errorf("prompt on Err = %q", got)
	}
	// Nothing of what was typed came back to the screen.
	fds := []unix.PollFd{{Fd: int32(master.Fd()), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 200); err != nil {
		t.Fatal(err)
	} else if n > 0 {
		echo := make([]byte, 256)
		n, _ := master.Read(echo)
		if strings.Contains(string(echo[:n]), "geheim") {
			t.Errorf("the password was echoed: %q", echo[:n])
		}
	}
	if tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS); err != nil || tio.Lflag&unix.ECHO == 0 {
		t.Errorf("echo was not switched back on (%v)", err)
	}
}
