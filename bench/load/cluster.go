package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/s3"
)

// cluster is what one run starts: the database, the storage, perhaps a
// Mailpit, and the instances.
type cluster struct {
	o           options
	dir         string // everything local of this run
	bin         string
	dsn         string // --db of the instances
	storage     string // --storage of the instances ("" local)
	storageKind string
	instances   []*instance
	mailpit     *mailpit
	pg          *sql.DB // PostgreSQL: the run's database, for the lock waits
	cleanups    []func()
}

// instance is one `kluis serve` process.
type instance struct {
	url  string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startCluster(ctx context.Context, o options) (c *cluster, err error) {
	c = &cluster{o: o, storageKind: "local folder"}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if c.dir, err = os.MkdirTemp("", "kluis-load-"); err != nil {
		return nil, err
	}
	c.cleanups = append(c.cleanups, func() {
		if !o.keepLogs {
			os.RemoveAll(c.dir)
		}
	})
	if c.bin = o.kluis; c.bin == "" {
		c.bin = filepath.Join(c.dir, "kluis")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/kluis")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/kluis (run from the repository root, or give -kluis): %w", err)
		}
	}
	data := filepath.Join(c.dir, "data")
	switch o.db {
	case "sqlite":
		if o.instances > 1 {
			return nil, errors.New("-db sqlite runs one instance: several instances need -db postgres")
		}
		c.dsn = "sqlite:" + filepath.Join(data, "kluis.db")
	case "postgres":
		if c.dsn, err = c.freshPostgres(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("-db %q: choose sqlite or postgres", o.db)
	}
	if o.storage != "" {
		if err := c.freshS3(ctx); err != nil {
			return nil, err
		}
	}
	if o.mix == "mixed" {
		if c.mailpit, err = startMailpit(ctx, o.mailpit, c.dir); err != nil {
			return nil, err
		}
		c.cleanups = append(c.cleanups, c.mailpit.stop)
	}
	var key [32]byte
	rand.Read(key[:])
	env := append(os.Environ(), "KLUIS_MASTER_KEY="+base64.StdEncoding.EncodeToString(key[:]),
		"KLUIS_DB=", "KLUIS_DB_FILE=", "KLUIS_SMTP=", "KLUIS_SMTP_FILE=", "KLUIS_STORAGE=", "KLUIS_POLICY=")
	args := []string{"serve", "--addr", "127.0.0.1:0", "--db", c.dsn, "--log-level", "info",
		"--max-transfer-size", "10GB", "--security-contact", "mailto:security@example.nl",
		"--security-txt-expires", time.Now().AddDate(0, 6, 0).Format("2006-01-02")}
	if c.storage != "" {
		args = append(args, "--storage", c.storage)
	}
	switch o.mix {
	case "transfers":
		// The write path without the request limits: 50 clients from one
		// address would only measure the limiter.
		args = append(args, "--rate-limit", "0", "--rate-limit-global", "0")
	case "mixed":
		// Each simulated client has an address of its own, sent in
		// X-Forwarded-For by this (trusted) loopback proxy.
		args = append(args, "--trusted-proxy", "127.0.0.1",
			"--rate-limit", strconv.Itoa(o.rateLimit), "--rate-limit-global", strconv.Itoa(o.rateGlobal),
			"--smtp", "smtp://"+c.mailpit.smtp+"?tls=none", "--mail-from", "Kluis Load <kluis@load.example.nl>")
	}
	for i := range o.instances {
		// With local storage the instances share one data folder (its
		// blobs/ and tmp/); on S3 each has its own, unused.
		d := data
		if c.storage != "" {
			d = filepath.Join(c.dir, "data-"+strconv.Itoa(i))
		}
		in, err := startInstance(ctx, c.bin, append(args, "--data", d), env, filepath.Join(c.dir, "server-"+strconv.Itoa(i)+".log"))
		if err != nil {
			return nil, err
		}
		c.instances = append(c.instances, in)
	}
	return c, nil
}

// freshPostgres makes a database kluis_load_<random> and drops it at stop.
func (c *cluster) freshPostgres(ctx context.Context) (string, error) {
	if c.o.pgAdmin == "" {
		return "", errors.New("-db postgres needs -pg-admin (or KLUIS_TEST_POSTGRES_URL): an administrator URL that may CREATE DATABASE")
	}
	u, err := url.Parse(c.o.pgAdmin)
	if err != nil {
		return "", errors.New("-pg-admin: not a URL")
	}
	adb, err := sql.Open("pgx", c.o.pgAdmin)
	if err != nil {
		return "", err
	}
	var b [6]byte
	rand.Read(b[:])
	name := "kluis_load_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		return "", fmt.Errorf("create database: %w", err)
	}
	c.cleanups = append(c.cleanups, func() {
		defer adb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "load: drop database %s: %v\n", name, err)
		}
	})
	u.Path = "/" + name
	if c.pg, err = sql.Open("pgx", u.String()); err != nil {
		return "", err
	}
	c.pg.SetMaxOpenConns(1)
	c.cleanups = append(c.cleanups, func() { c.pg.Close() })
	return u.String(), nil
}

// freshS3 puts this run under a random prefix of the bucket and deletes
// every object (and version) under it at stop.
func (c *cluster) freshS3(ctx context.Context) error {
	u, err := url.Parse(c.o.storage)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return errors.New("-storage: give s3://BUCKET?endpoint=HOST&region=REGION")
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	prefix += "load-" + hex.EncodeToString(b[:])
	c.storage = "s3://" + u.Host + "/" + prefix + "?" + u.RawQuery
	c.storageKind = "S3 (" + u.Host + "/" + prefix + ")"
	cfg, err := s3.ParseURL(c.storage, os.Getenv)
	if err != nil {
		return fmt.Errorf("-storage: %w", err)
	}
	st, err := s3.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("-storage: %w", err)
	}
	c.cleanups = append(c.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var keys []string
		st.List(ctx, "", func(i blob.Info) error { keys = append(keys, i.Key); return nil })
		for _, k := range keys {
			st.Delete(ctx, k)
		}
		st.CollectTemp(ctx, time.Now().Add(time.Hour))
	})
	return nil
}

func startInstance(ctx context.Context, bin string, args, env []string, logPath string) (*instance, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	in := &instance{cmd: cmd, log: logPath, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Kluis is running at "); ok {
				addr <- strings.TrimSuffix(strings.Fields(rest)[0], "/")
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() { cmd.Wait(); logf.Close(); close(in.done) }()
	select {
	case in.url = <-addr:
		return in, nil
	case <-in.done:
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("kluis serve exited at start:\n%s", b)
	case <-time.After(60 * time.Second):
		in.stop()
		return nil, errors.New("kluis serve did not start within 60 s")
	case <-ctx.Done():
		in.stop()
		return nil, ctx.Err()
	}
}

func (in *instance) stop() {
	if in.cmd.Process == nil {
		return
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(30 * time.Second):
		in.cmd.Process.Kill()
		<-in.done
	}
}

// rss is the process's resident memory in bytes (Linux), or 0.
func (in *instance) rss() int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(in.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpu is the CPU time the process has used so far (Linux), or 0.
func (in *instance) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(in.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th of them, in clock ticks (100 a second).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// apiKeys makes one API key per sender address with the admin command.
func (c *cluster) apiKeys(ctx context.Context, senders []string) ([]string, error) {
	keys := make([]string, len(senders))
	errs := make([]error, len(senders))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, s := range senders {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cmd := exec.CommandContext(ctx, c.bin, "admin", "apikey", "create", "--sender", s, "--db", c.dsn, "--data", filepath.Join(c.dir, "data"))
			cmd.Env = append(os.Environ(), "KLUIS_DB=", "KLUIS_DB_FILE=")
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					err = fmt.Errorf("%w: %s", err, ee.Stderr)
				}
				errs[i] = fmt.Errorf("apikey create: %w", err)
				return
			}
			keys[i] = strings.TrimSpace(string(out))
		})
	}
	wg.Wait()
	return keys, errors.Join(errs...)
}

// cpu is the CPU time all instances have used so far.
func (c *cluster) cpu() time.Duration {
	var d time.Duration
	for _, in := range c.instances {
		d += in.cpu()
	}
	return d
}

func (c *cluster) stop() {
	for _, in := range c.instances {
		in.stop()
	}
	if c.o.keepLogs {
		for _, in := range c.instances {
			fmt.Println("server log:", in.log)
		}
	}
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

// mailpit is a private Mailpit, so verification codes can be read back.
type mailpit struct {
	smtp, api string
	cmd       *exec.Cmd
	done      chan struct{}
}

func startMailpit(ctx context.Context, bin, dir string) (*mailpit, error) {
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("mailpit"); err != nil {
			return nil, errors.New("the mixed workload needs Mailpit: give -mailpit or set KLUIS_TEST_MAILPIT_BIN")
		}
	}
	m := &mailpit{smtp: freePort(), api: freePort(), done: make(chan struct{})}
	m.cmd = exec.Command(bin, "--smtp", m.smtp, "--listen", m.api, "--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--max", "100000")
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { m.cmd.Wait(); close(m.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + m.api + "/api/v1/messages?limit=1"); err == nil {
			resp.Body.Close()
			if conn, err := net.Dial("tcp", m.smtp); err == nil {
				conn.Close()
				return m, nil
			}
		}
		select {
		case <-m.done:
			return nil, errors.New("mailpit exited at start")
		case <-ctx.Done():
			m.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	m.stop()
	return nil, errors.New("mailpit not ready within 20 s")
}

func (m *mailpit) stop() {
	m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		m.cmd.Process.Kill()
		<-m.done
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
