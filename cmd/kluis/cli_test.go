package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

// The scripts in testdata/script run the real kluis command (this test
// binary, dispatched by testscript.Main) against a real server started in
// this process (runServe) with its own data folder under $WORK/data.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kluis": main,
	})
}

func TestScripts(t *testing.T) {
	// One clamd with the test signatures (scantest) for the scripts that
	// scan; they skip without it ($CLAMD empty), except in CI.
	clamd := ""
	if os.Getenv("KLUIS_TEST_CLAMD") != "" || os.Getenv("CI") == "true" {
		clamd = scantest.Start(t, scantest.Options{}).Unix()
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Condition: func(cond string) (bool, error) {
			if cond == "clamd" {
				return clamd != "", nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("CLAMD", clamd)
			env.Setenv("HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("XDG_CONFIG_HOME", filepath.Join(env.WorkDir, "config"))
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "cache"))
			env.Setenv("KLUIS_SERVER", "")
			env.Setenv("KLUIS_API_KEY", "")
			// The scripts match English texts; nl.txtar sets Dutch.
			env.Setenv("KLUIS_LANG", "en")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"server":     cmdServer,
			"loginmail":  cmdLoginMail,
			"maillink":   cmdMailLink,
			"nomail":     cmdNoMail,
			"exitcode":   cmdExitCode,
			"mkfile":     cmdMkfile,
			"echofile":   cmdEchoFile,
			"grepvar":    cmdGrepVar,
			"jsonget":    cmdJSONGet,
			"jsonck":     cmdJSONCheck,
			"sleep":      cmdSleep,
			"tamper":     cmdTamper,
			"proxy":      cmdProxy,
			"killcli":    cmdKillCLI,
			"proxybytes": cmdProxyBytes,
			"perm":       cmdPerm,
			// File requests (citizen_test.go).
			"requestlink":   cmdRequestLink,
			"citizenupload": cmdCitizenUpload,
		},
	})
}

// scriptState is what the custom commands of one script share.
type scriptState struct {
	server string
	proxy  *countingProxy
}

var states sync.Map // $WORK → *scriptState

func state(ts *testscript.TestScript) *scriptState {
	v, _ := states.LoadOrStore(ts.Getenv("WORK"), &scriptState{})
	return v.(*scriptState)
}

// server [FLAGS...]: starts `kluis serve` in this process on a free port
// with data folder $WORK/data; sets SERVER and KLUIS_SERVER.
func cmdServer(ts *testscript.TestScript, neg bool, args []string) {
	data := ts.MkAbs("data")
	logf, err := os.Create(ts.MkAbs("server.log"))
	ts.Check(err)
	env := map[string]string{"KLUIS_LOG_LEVEL": "warn"}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runServe(ctx, append([]string{"--data", data, "--addr", "127.0.0.1:0"}, args...), getenv, pw, logf)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		const prefix = "Kluis is running at "
		for sc.Scan() {
			if i := strings.Index(sc.Text(), prefix); i >= 0 {
				if f := strings.Fields(sc.Text()[i+len(prefix):]); len(f) > 0 {
					select {
					case urlc <- strings.TrimSuffix(f[0], "/"):
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	ts.Defer(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
		}
		logf.Close()
		states.Delete(ts.Getenv("WORK"))
	})
	select {
	case u := <-urlc:
		state(ts).server = u
		ts.Setenv("SERVER", u)
		ts.Setenv("KLUIS_SERVER", u)
	case err := <-done:
		ts.Fatalf("kluis serve ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		ts.Fatalf("kluis serve printed no address within 30 s")
	}
}

type mailEntry struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	To   string `json:"to"`
	Text string `json:"text"`
}

func mailbox(ts *testscript.TestScript) []mailEntry {
	resp, err := http.Get(state(ts).server + "/dev/mailbox.json")
	ts.Check(err)
	defer resp.Body.Close()
	var out struct {
		Entries []mailEntry `json:"entries"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&out))
	return out.Entries // newest first
}

// waitMail returns the newest mail of kind to addr whose id is not in
// skip, waiting up to 20 s.
func waitMail(ts *testscript.TestScript, kind, addr string, skip map[string]bool) mailEntry {
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, e := range mailbox(ts) {
			if e.Kind == kind && strings.EqualFold(e.To, addr) && !skip[e.ID] {
				return e
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no %s mail to %s within 20 s", kind, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cliCommand builds a run of the kluis command (this test binary) with the
// script's environment and folder.
func cliCommand(ts *testscript.TestScript, args ...string) *exec.Cmd {
	var bin string
	for _, d := range filepath.SplitList(ts.Getenv("PATH")) {
		if fi, err := os.Stat(filepath.Join(d, "kluis")); err == nil && fi.Mode().IsRegular() {
			bin = filepath.Join(d, "kluis")
			break
		}
	}
	if bin == "" {
		ts.Fatalf("kluis not found in PATH")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = ts.MkAbs(".")
	for _, k := range []string{"PATH", "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "KLUIS_SERVER", "KLUIS_API_KEY", "KLUIS_LANG", "LANG", "LC_ALL", "LC_MESSAGES", "TMPDIR", "WORK"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	return cmd
}

// loginmail ADDR [FLAGS...]: runs `kluis login --email ADDR`, and types the
// code from the mail into its standard input.
func cmdLoginMail(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: loginmail ADDR [FLAGS...]")
	}
	skip := map[string]bool{}
	for _, e := range mailbox(ts) {
		skip[e.ID] = true
	}
	cmd := cliCommand(ts, append([]string{"login", "--email", args[0]}, args[1:]...)...)
	stdin, err := cmd.StdinPipe()
	ts.Check(err)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ts.Check(cmd.Start())
	m := waitMail(ts, "verify_code", args[0], skip)
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(m.Text)
	if code == "" {
		cmd.Process.Kill()
		ts.Fatalf("no code in the mail:\n%s", m.Text)
	}
	fmt.Fprintln(stdin, code)
	stdin.Close()
	err = cmd.Wait()
	fmt.Fprint(ts.Stdout(), stdout.String())
	fmt.Fprint(ts.Stderr(), stderr.String())
	if (err != nil) != neg {
		ts.Fatalf("kluis login: %v", err)
	}
}

// maillink ADDR VAR: sets VAR to the link in the newest notification mail
// to ADDR.
func cmdMailLink(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: maillink ADDR VAR")
	}
	m := waitMail(ts, "notify", args[0], nil)
	link := regexp.MustCompile(`https?://\S+/r/\S+`).FindString(m.Text)
	if link == "" {
		ts.Fatalf("no link in the mail:\n%s", m.Text)
	}
	ts.Setenv(args[1], link)
}

// nomail ADDR: no mail went to ADDR, including one still in the outbox
// (it waits up to 2 s for the outbox to run).
func cmdNoMail(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: nomail ADDR")
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, e := range mailbox(ts) {
			if strings.EqualFold(e.To, args[0]) {
				ts.Fatalf("a %s mail went to %s", e.Kind, args[0])
			}
		}
	}
}

// exitcode N CMD [ARGS...]: runs CMD and checks that it exits with N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: exitcode N CMD [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// mkfile NAME SIZE: a file of SIZE pseudo-random bytes.
func cmdMkfile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: mkfile NAME SIZE")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	f, err := os.Create(ts.MkAbs(args[0]))
	ts.Check(err)
	var seed [32]byte
	copy(seed[:], args[0])
	r := rand.NewChaCha8(seed)
	_, err = io.CopyN(f, r, size)
	ts.Check(err)
	ts.Check(f.Close())
}

// echofile FILE WORDS...: writes the words and a newline to FILE.
func cmdEchoFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: echofile FILE WORDS...")
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strings.Join(args[1:], " ")+"\n"), 0o600))
}

// grepvar FILE REGEXP VAR: sets VAR to the first submatch of REGEXP in
// FILE (stdout and stderr are the last command's).
func cmdGrepVar(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: grepvar FILE REGEXP VAR")
	}
	m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile(args[0]))
	if len(m) < 2 {
		ts.Fatalf("%q not found in %s", args[1], args[0])
	}
	ts.Setenv(args[2], m[1])
}

func jsonPath(ts *testscript.TestScript, file, path string) (any, bool) {
	var v any
	if err := json.Unmarshal([]byte(ts.ReadFile(file)), &v); err != nil {
		ts.Fatalf("%s is not one JSON value: %v", file, err)
	}
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func jsonString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonget FILE PATH VAR: sets VAR to the value at PATH (a.0.b) of the JSON
// in FILE.
func cmdJSONGet(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: jsonget FILE PATH VAR")
	}
	v, ok := jsonPath(ts, args[0], args[1])
	if !ok {
		ts.Fatalf("%s has no %s", args[0], args[1])
	}
	ts.Setenv(args[2], jsonString(v))
}

// jsonck FILE PATH REGEXP: the value at PATH matches REGEXP; with !, PATH
// must be absent.
func cmdJSONCheck(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		if len(args) != 2 {
			ts.Fatalf("usage: ! jsonck FILE PATH")
		}
		if v, ok := jsonPath(ts, args[0], args[1]); ok {
			ts.Fatalf("%s has %s = %v", args[0], args[1], v)
		}
		return
	}
	if len(args) != 3 {
		ts.Fatalf("usage: jsonck FILE PATH REGEXP")
	}
	v, ok := jsonPath(ts, args[0], args[1])
	if !ok {
		ts.Fatalf("%s has no %s", args[0], args[1])
	}
	if !regexp.MustCompile(args[2]).MatchString(jsonString(v)) {
		ts.Fatalf("%s: %s = %q does not match %q", args[0], args[1], jsonString(v), args[2])
	}
}

func cmdSleep(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: sleep DURATION")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	time.Sleep(d)
}

// perm FILE MODE: FILE has exactly the permission bits MODE (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fi.Mode().Perm(); uint64(got) != want {
		ts.Fatalf("%s has mode %o, want %o", args[0], got, want)
	}
}

// tamper ID: flips one byte in the middle of the first stored segment of
// transfer ID in $WORK/data.
func cmdTamper(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: tamper TRANSFER")
	}
	var files []string
	root := ts.MkAbs(filepath.Join("data", "blobs", "t", args[0]))
	ts.Check(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	}))
	if len(files) == 0 {
		ts.Fatalf("no stored segments under %s", root)
	}
	sort.Strings(files)
	b, err := os.ReadFile(files[0])
	ts.Check(err)
	b[len(b)/2] ^= 0x01
	ts.Check(os.WriteFile(files[0], b, 0o600))
}

// countingProxy forwards TCP to the server and counts the bytes from
// client to server. With pauseAt > 0 it stops forwarding at that count
// until pauseAt is set to 0.
type countingProxy struct {
	ln      net.Listener
	target  string
	fwd     atomic.Int64
	pauseAt atomic.Int64
}

// proxy: starts a counting proxy to $SERVER; sets PROXY.
func cmdProxy(ts *testscript.TestScript, neg bool, args []string) {
	st := state(ts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	p := &countingProxy{ln: ln, target: strings.TrimPrefix(st.server, "http://")}
	st.proxy = p
	ts.Defer(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(c)
		}
	}()
	ts.Setenv("PROXY", "http://"+ln.Addr().String())
}

func (p *countingProxy) handle(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	// Drain the server's side until it closes, even after the client is
	// gone: closing a socket with unread data sends a reset, and a reset
	// makes the server drop request bytes it has not read yet.
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		rb := make([]byte, 32<<10)
		for {
			n, err := up.Read(rb)
			if n > 0 {
				c.Write(rb[:n]) // the client may be dead; keep draining
			}
			if err != nil {
				break
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	buf := make([]byte, 32<<10)
	for {
		want := len(buf)
		for {
			pa := p.pauseAt.Load()
			if pa <= 0 {
				break
			}
			if room := pa - p.fwd.Load(); room > 0 {
				want = int(min(room, int64(len(buf))))
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		n, err := c.Read(buf[:want])
		if n > 0 {
			p.fwd.Add(int64(n))
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			up.(*net.TCPConn).CloseWrite()
			// Let the server read and answer what it got.
			select {
			case <-serverDone:
			case <-time.After(30 * time.Second):
			}
			return
		}
	}
}

// killcli BYTES kluis ARGS...: runs `kluis ARGS...` through the proxy's pause:
// once the proxy has forwarded BYTES (from the start of the proxy), the
// process gets SIGKILL; then forwarding goes on.
func cmdKillCLI(ts *testscript.TestScript, neg bool, args []string) {
	p := state(ts).proxy
	if p == nil || len(args) < 2 {
		ts.Fatalf("usage: proxy first; killcli BYTES ARGS...")
	}
	at, err := strconv.ParseInt(args[0], 10, 64)
	ts.Check(err)
	p.pauseAt.Store(at)
	defer p.pauseAt.Store(0)
	if args[1] != "kluis" {
		ts.Fatalf("usage: killcli BYTES kluis ARGS...")
	}
	cmd := cliCommand(ts, args[2:]...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ts.Check(cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
wait:
	for p.fwd.Load() < at {
		select {
		case err := <-exited:
			ts.Fatalf("kluis ended before it was killed (%v):\n%s%s", err, stdout.String(), stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			ts.Fatalf("the proxy did not reach %d bytes within 60 s", at)
		case <-time.After(5 * time.Millisecond):
			continue wait
		}
	}
	ts.Check(cmd.Process.Signal(syscall.SIGKILL))
	err = <-exited
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		ts.Fatalf("kluis was not killed by SIGKILL: %v", err)
	}
	fmt.Fprint(ts.Stdout(), stdout.String())
	fmt.Fprint(ts.Stderr(), stderr.String())
	ts.Logf("killed kluis after the proxy forwarded %d bytes", p.fwd.Load())
}

// proxybytes FILE RATIO: the proxy forwarded (client to server) at least
// the size of FILE and at most RATIO times it.
func cmdProxyBytes(ts *testscript.TestScript, neg bool, args []string) {
	p := state(ts).proxy
	if p == nil || len(args) != 2 {
		ts.Fatalf("usage: proxy first; proxybytes FILE RATIO")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	ratio, err := strconv.ParseFloat(args[1], 64)
	ts.Check(err)
	got := p.fwd.Load()
	ts.Logf("proxy forwarded %d bytes for a file of %d bytes (%.3f×)", got, fi.Size(), float64(got)/float64(fi.Size()))
	if got < fi.Size() || float64(got) > ratio*float64(fi.Size()) {
		ts.Fatalf("proxy forwarded %d bytes for a file of %d bytes; want between 1× and %.2f×", got, fi.Size(), ratio)
	}
}
