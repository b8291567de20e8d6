//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownWaitsForPolicyReload (issue 12): kluis serve returns only
// when every background loop has stopped, the policy watcher included. A
// SIGHUP reload still reading the policy file at shutdown finishes first.
// Before, the watcher was never joined: the server returned (and closed the
// database) while the reload was still running.
func TestShutdownWaitsForPolicyReload(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	const valid = `{"organisation_domains": ["example.nl"]}`
	if err := os.WriteFile(pol, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runServe(ctx, []string{"--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--policy", pol},
			func(string) string { return "" }, pw, io.Discard)
		pw.Close()
		done <- err
	}()
	running := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Kluis is running at") {
				close(running)
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("kluis serve ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("kluis serve printed no address within 30 s")
	}

	// The policy file becomes a named pipe: a reload blocks reading it
	// until this test writes.
	fifo := filepath.Join(dir, "policy.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	if err := os.Rename(fifo, pol); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Opening a pipe for writing without blocking succeeds only once a
	// reader has it open: then the reload is in progress.
	var w *os.File
	for deadline := time.Now().Add(10 * time.Second); ; {
		f, err := os.OpenFile(pol, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			w = f
			break
		}
		if !errors.Is(err, syscall.ENXIO) || time.Now().After(deadline) {
			t.Fatalf("the reload never opened the policy file: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer w.Close()

	cancel()
	select {
	case err := <-done:
		t.Fatalf("kluis serve returned (%v) while the policy reload was still running", err)
	case <-time.After(2 * time.Second):
	}
	if _, err := w.WriteString(valid); err != nil {
		t.Fatal(err)
	}
	w.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("kluis serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("kluis serve did not stop within 15 s of the reload's end")
	}
}
