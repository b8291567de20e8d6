package main

// TestDeployFilesMatchTheCode keeps the deployment files and the operations
// guide true: every KLUIS_* and AWS_* variable they name, and every flag on
// a `kluis ...` command line in them, is one Kluis accepts; the example
// environment file and the systemd unit's credentials together make a
// configuration that `kluis serve` accepts; the Dockerfile's health check
// is a real command. A renamed flag fails here instead of in production.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/blob/s3"
	"github.com/kluis-nl/kluis/internal/cli"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/secret"
)

// repoFile reads a file relative to the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serveOptions returns the flags and environment variables of kluis serve,
// read from its --help (the option table in internal/config), plus the
// variables read outside that table.
func serveOptions(t *testing.T) (flags, vars map[string]bool) {
	t.Helper()
	var help bytes.Buffer
	if _, err := config.ParseServe([]string{"--help"}, noEnv, &help); err == nil {
		t.Fatal("--help did not stop the parse")
	}
	flags, vars = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  --([a-z0-9-]+)$`).FindAllStringSubmatch(help.String(), -1) {
		flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\b(KLUIS_[A-Z0-9_]+)\b`).FindAllStringSubmatch(help.String(), -1) {
		vars[m[1]] = true
	}
	if len(flags) < 30 || !vars["KLUIS_DB_FILE"] || !vars["KLUIS_MAX_EXPIRY"] {
		t.Fatalf("could not read the options from kluis serve --help (%d flags)", len(flags))
	}
	// Read outside the option table: the key itself (environment only), the
	// S3 credentials (internal/blob/s3), and the client's.
	for _, v := range []string{"KLUIS_MASTER_KEY", "KLUIS_SERVER", "KLUIS_API_KEY",
		s3.EnvAccessKey, s3.EnvAccessKey + "_FILE", s3.EnvSecretKey, s3.EnvSecretKey + "_FILE",
		s3.EnvSessionToken, s3.EnvSessionToken + "_FILE"} {
		vars[v] = true
	}
	return flags, vars
}

// codeBlocks returns the contents of the fenced code blocks of a Markdown file.
func codeBlocks(md string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// commandLines returns the kluis command lines of a text (continuations
// joined), each as its words from the subcommand on.
func commandLines(text string) [][]string {
	text = strings.ReplaceAll(text, "\\\n", " ")
	var out [][]string
	re := regexp.MustCompile(`(?:^|[\s"'\[(])(?:\S*/)?kluis\s+((?:serve|admin|migrate|healthcheck)\b[^#\n"\]]*)`)
	for _, l := range strings.Split(text, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, strings.Fields(m[1]))
		}
	}
	return out
}

func TestDeployFilesMatchTheCode(t *testing.T) {
	flags, vars := serveOptions(t)
	files := map[string]string{
		"deploy/kluis.service":       repoFile(t, "deploy/kluis.service"),
		"deploy/kluis.env.example":   repoFile(t, "deploy/kluis.env.example"),
		"deploy/nginx.conf.example":  repoFile(t, "deploy/nginx.conf.example"),
		"Dockerfile":                 repoFile(t, "Dockerfile"),
		"docs/operations.md (code)":  codeBlocks(repoFile(t, "docs/operations.md")),
		"README.md (configuration)":  repoFile(t, "README.md"),
		"bench/README.md (S3 setup)": codeBlocks(repoFile(t, "bench/README.md")),
	}
	varRe := regexp.MustCompile(`\b((?:KLUIS|AWS)_[A-Z0-9_]*[A-Z0-9])\b`)
	// The bench scripts' own settings: a name the README gives must be one
	// a script under bench/ reads.
	benchVars := map[string]bool{}
	scripts, _ := filepath.Glob(filepath.Join("..", "..", "bench", "*.sh"))
	for _, f := range scripts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range varRe.FindAllStringSubmatch(string(b), -1) {
			if strings.HasPrefix(m[1], "KLUIS_BENCH_") || strings.HasPrefix(m[1], "KLUIS_PEERS_") || strings.HasPrefix(m[1], "KLUIS_SCALE_") {
				benchVars[m[1]] = true
			}
		}
	}
	if !benchVars["KLUIS_BENCH_SIZE"] {
		t.Fatalf("found no KLUIS_BENCH_SIZE in %v; did the bench scripts move?", scripts)
	}
	commands := 0
	for name, text := range files {
		for _, m := range varRe.FindAllStringSubmatch(text, -1) {
			if !vars[m[1]] && !benchVars[m[1]] && !strings.HasPrefix(m[1], "KLUIS_TEST_") {
				t.Errorf("%s names %s, which Kluis does not read", name, m[1])
			}
		}
		if strings.HasPrefix(name, "README") {
			continue // its configuration table is checked for variables only
		}
		for _, words := range commandLines(text) {
			commands++
			for _, p := range checkCommandFlags(name, words, flags) {
				t.Error(p)
			}
		}
	}
	if commands < 8 {
		t.Errorf("found only %d kluis command lines in the deployment files and docs; did the format change?", commands)
	}
}

// checkCommandFlags checks the --flags of one command line against the
// command's own help (kluis serve: the option table) and returns the
// problems.
func checkCommandFlags(file string, words []string, serveFlags map[string]bool) (problems []string) {
	var sub []string
	for _, w := range words {
		if strings.HasPrefix(w, "-") || len(sub) == 3 || strings.ToUpper(w) == w {
			break
		}
		sub = append(sub, w)
	}
	var help bytes.Buffer
	if sub[0] != "serve" {
		// The subcommand must exist: its --help succeeds and shows usage.
		stdio := cli.Stdio{In: strings.NewReader(""), Out: &help, Err: &help}
		if code := program.Run(context.Background(), append(append([]string{}, sub...), "--help"), noEnv, stdio); code != 0 {
			return []string{fmt.Sprintf("%s: kluis %s: exit %d: %s", file, strings.Join(sub, " "), code, help.String())}
		}
	}
	for _, w := range words {
		f, ok := strings.CutPrefix(w, "--")
		if !ok || f == "" {
			continue
		}
		f, _, _ = strings.Cut(f, "=")
		f = strings.TrimRight(f, ",.;:)`")
		if sub[0] == "serve" {
			if !serveFlags[f] {
				problems = append(problems, fmt.Sprintf("%s: kluis serve --%s is not a flag of kluis serve", file, f))
			}
			continue
		}
		if !regexp.MustCompile(`(^|[\s\[])--` + regexp.QuoteMeta(f) + `\b`).MatchString(help.String()) {
			problems = append(problems, fmt.Sprintf("%s: kluis %s --%s: not in the command's usage", file, strings.Join(sub, " "), f))
		}
	}
	return problems
}

// TestCommandFlagCheck: the checker itself finds a wrong flag, a wrong
// subcommand and a wrong serve flag, and passes good lines.
func TestCommandFlagCheck(t *testing.T) {
	flags, _ := serveOptions(t)
	text := "kluis serve --max-expiry 30d --storage s3://b\\\n  --trusted-proxy 10.0.0.5\n" +
		"  KLUIS_DB_FILE=/x kluis admin rotate-master-key --master-key-file /k --db postgres://h/d\n" +
		"kluis migrate --data /var/lib/kluis\n" +
		"kluis serve --max-expire 30d\n" +
		"kluis admin apikey list --database x\n" +
		"kluis admin rotate-key --data x\n"
	lines := commandLines(text)
	if len(lines) != 6 {
		t.Fatalf("found %d command lines, want 6: %q", len(lines), lines)
	}
	var got []int
	for i, words := range lines {
		if len(checkCommandFlags("x", words, flags)) > 0 {
			got = append(got, i)
		}
	}
	if fmt.Sprint(got) != "[3 4 5]" {
		t.Fatalf("lines with problems: %v, want [3 4 5]", got)
	}
}

// envFile parses KEY=VALUE lines (comments and blank lines skipped).
func envFile(t *testing.T, text string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("not KEY=VALUE: %q", l)
		}
		env[k] = v
	}
	return env
}

// TestDeployConfigurationStarts: the example environment file plus the
// systemd unit's Environment= lines and credentials (filled with plausible
// secrets) are a configuration kluis serve accepts, with a master key file
// Kluis loads and S3 settings the S3 store accepts; every credential is
// used and every %d/ file is loaded; the stop timeout covers the graceful
// shutdown.
func TestDeployConfigurationStarts(t *testing.T) {
	unit := repoFile(t, "deploy/kluis.service")
	env := envFile(t, repoFile(t, "deploy/kluis.env.example"))
	creds := t.TempDir()
	loaded := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^LoadCredential=([^:\n]+):(\S+)$`).FindAllStringSubmatch(unit, -1) {
		loaded[m[1]] = true
	}
	secrets := map[string]string{
		"master.key":    base64.StdEncoding.EncodeToString(secret.GenerateMasterKey()) + "\n",
		"smtp":          "smtps://kluis:p%40ss@mail.example.nl:465\n",
		"db":            "postgres://kluis:secret@db.example.nl:5432/kluis?sslmode=verify-full\n",
		"s3-access-key": "AKIAEXAMPLE\n",
		"s3-secret-key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
		"metrics-token": "0123456789abcdef0123456789abcdef\n",
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^Environment=([A-Z0-9_]+)=(\S*)$`).FindAllStringSubmatch(unit, -1) {
		k, v := m[1], m[2]
		if name, ok := strings.CutPrefix(v, "%d/"); ok {
			if !loaded[name] {
				t.Errorf("kluis.service: %s=%s, but no LoadCredential=%s:", k, v, name)
			}
			used[name] = true
			content, ok := secrets[name]
			if !ok {
				t.Fatalf("kluis.service: credential %s: the test has no example value; add one", name)
			}
			p := filepath.Join(creds, name)
			if err := os.WriteFile(p, []byte(content), 0o400); err != nil {
				t.Fatal(err)
			}
			v = p
		}
		env[k] = v
	}
	for name := range loaded {
		if !used[name] {
			t.Errorf("kluis.service: LoadCredential=%s is not named by any *_FILE variable", name)
		}
	}
	// The unit's data folder is the StateDirectory.
	if !strings.Contains(unit, "\nStateDirectory=kluis\n") || env["KLUIS_DATA"] != "/var/lib/kluis" {
		t.Errorf("kluis.service: KLUIS_DATA %q is not the StateDirectory /var/lib/kluis", env["KLUIS_DATA"])
	}
	getenv := func(k string) string { return env[k] }
	cfg, err := config.ParseServe(nil, getenv, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("kluis serve does not accept kluis.env.example with kluis.service: %v", err)
	}
	if !strings.HasPrefix(cfg.DB, "postgres://") || cfg.SMTP == "" || len(cfg.MetricsToken) < 16 || len(cfg.TrustedProxies) == 0 {
		t.Errorf("secrets from credentials not applied: db %v, smtp %v, metrics token %v, proxies %v",
			cfg.DB != "", cfg.SMTP != "", cfg.MetricsToken != "", cfg.TrustedProxies)
	}
	if _, err := secret.LoadMasterKey(cfg.MasterKeyFile); err != nil {
		t.Errorf("the master key credential does not load: %v", err)
	}
	sc, err := s3.ParseURL(cfg.Storage, getenv)
	if err != nil {
		t.Errorf("KLUIS_STORAGE with the S3 credentials: %v", err)
	} else if sc.AccessKey != "AKIAEXAMPLE" {
		t.Errorf("S3 access key not read from AWS_ACCESS_KEY_ID_FILE")
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("kluis.service: no TimeoutStopSec")
	}
	stop, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if stop < cfg.ShutdownTimeout+3*time.Second {
		t.Errorf("kluis.service: TimeoutStopSec=%s leaves no room after --shutdown-timeout %s", stop, cfg.ShutdownTimeout)
	}
	for _, d := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "Restart=on-failure", "ExecStart=/usr/local/bin/kluis serve"} {
		if !strings.Contains(unit, "\n"+d+"\n") {
			t.Errorf("kluis.service lacks %s", d)
		}
	}

	if path, err := exec.LookPath("systemd-analyze"); err == nil {
		dir := t.TempDir()
		exe, _ := os.Executable()
		u := strings.ReplaceAll(unit, "/usr/local/bin/kluis", exe)
		u = strings.ReplaceAll(u, "/etc/kluis/kluis.env", filepath.Join(dir, "kluis.env"))
		os.WriteFile(filepath.Join(dir, "kluis.env"), nil, 0o600)
		file := filepath.Join(dir, "kluis.service")
		os.WriteFile(file, []byte(u), 0o644)
		out, _ := exec.Command(path, "verify", "--man=no", "--generators=no", file).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, file) {
				t.Errorf("systemd-analyze verify: %s", l)
			}
		}
	} else {
		t.Log("systemd-analyze not found: the unit's syntax is not verified")
	}
}

// TestDockerfile: a static, trimmed build; a non-root user; the data
// folder as a volume; the exposed port is the one the image listens on;
// the health check is a kluis command that exists.
func TestDockerfile(t *testing.T) {
	df := strings.ReplaceAll(repoFile(t, "Dockerfile"), "\\\n", " ")
	for _, w := range []string{"CGO_ENABLED=0", "-trimpath", "USER 65532:65532", `VOLUME ["/var/lib/kluis"]`,
		"KLUIS_DATA=/var/lib/kluis", "KLUIS_ADDR=0.0.0.0:8080", "EXPOSE 8080", `CMD ["/usr/local/bin/kluis", "healthcheck"]`} {
		if !strings.Contains(df, w) {
			t.Errorf("Dockerfile lacks %s", w)
		}
	}
	if regexp.MustCompile(`(?m)^USER\s+(root|0)\b`).MatchString(df) {
		t.Error("Dockerfile runs as root")
	}
	// The health check's defaults follow KLUIS_ADDR as the image sets it:
	// it asks (and names, whether anything answers or not) the loopback
	// address.
	var out bytes.Buffer
	program.Run(context.Background(), []string{"healthcheck", "--timeout", "1ms"}, func(k string) string {
		return map[string]string{"KLUIS_ADDR": "0.0.0.0:8080", "KLUIS_LANG": "en"}[k]
	}, cli.Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
	if !strings.Contains(out.String(), "http://127.0.0.1:8080/healthz") {
		t.Errorf("healthcheck in the image does not ask http://127.0.0.1:8080/healthz:\n%s", out.String())
	}
	ignore := repoFile(t, ".dockerignore")
	for _, w := range []string{".git", "**/node_modules", "kluis-data"} {
		if !strings.Contains(ignore, "\n"+w+"\n") && !strings.HasPrefix(ignore, w+"\n") {
			t.Errorf(".dockerignore lacks %s", w)
		}
	}
}
