package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

const defaultServer = "http://127.0.0.1:8080"

// serverFlags are the flags every client command has for its server.
type serverFlags struct {
	url          *string
	insecureHTTP *bool
}

// serverFlags defines --server and --insecure-http.
func (f *flagSet) serverFlags() serverFlags {
	def := f.a.getenv("KLUIS_SERVER")
	if def == "" {
		def = defaultServer
	}
	return serverFlags{
		url:          f.StringDefault("server", def, "cli.ph.url", "cli.flag.server", defaultServer),
		insecureHTTP: f.Bool("insecure-http", "cli.flag.insecure_http"),
	}
}

// newClient makes the client for server (the --server value, or the
// server of a link), with the --insecure-http choice of s.
func (a *app) newClient(server string, s serverFlags) (*client.Client, error) {
	var opts []client.Option
	if *s.insecureHTTP {
		opts = append(opts, client.AllowInsecureHTTP())
	}
	c, err := client.New(server, nil, opts...)
	if err != nil {
		return nil, a.explain(err, "")
	}
	c.UserAgent = "kluis-cli/" + a.prog.Version
	return c, nil
}

// ---------------------------------------------------------------------------
// The login store: CONFIG/kluis/token.json, mode 0600, keyed by server URL.

type storedLogin struct {
	Token     string    `json:"token"`
	Email     string    `json:"email"`
	ExpiresAt time.Time `json:"expires_at"`
}

type tokenFile struct {
	Servers map[string]storedLogin `json:"servers"`
}

func (a *app) configDir() (string, error) {
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kluis"), nil
	}
	d, err := userDir(a.getenv, true)
	if err != nil {
		return "", a.fail(exitUsage, a.p.T("cli.hint.config_dir"), "cli.err.config_dir")
	}
	return filepath.Join(d, "kluis"), nil
}

func (a *app) cacheDir() (string, error) {
	if d := a.getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kluis"), nil
	}
	d, err := userDir(a.getenv, false)
	if err != nil {
		return "", a.fail(exitUsage, a.p.T("cli.hint.cache_dir"), "cli.err.cache_dir")
	}
	return filepath.Join(d, "kluis"), nil
}

// userDir is where os.UserConfigDir (config true) or os.UserCacheDir put
// their folders when XDG_CONFIG_HOME or XDG_CACHE_HOME is not set, read
// through getenv.
func userDir(getenv func(string) string, config bool) (string, error) {
	var v, sub string
	switch runtime.GOOS {
	case "windows":
		v, sub = "LocalAppData", ""
		if config {
			v = "AppData"
		}
	case "darwin", "ios":
		v, sub = "HOME", filepath.Join("Library", "Caches")
		if config {
			sub = filepath.Join("Library", "Application Support")
		}
	default:
		v, sub = "HOME", ".cache"
		if config {
			sub = ".config"
		}
	}
	d := getenv(v)
	if d == "" || !filepath.IsAbs(d) {
		return "", errors.New(v + " is not set")
	}
	return filepath.Join(d, sub), nil
}

func serverKey(server string) string { return strings.TrimRight(server, "/") }

func (a *app) readTokens() (*tokenFile, string, error) {
	dir, err := a.configDir()
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "token.json")
	tf := &tokenFile{Servers: map[string]storedLogin{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return tf, path, nil
	}
	if err != nil {
		return nil, "", a.fail(exitUsage, "", "cli.err.login_file", a.fileText(err))
	}
	if err := json.Unmarshal(b, tf); err != nil {
		return nil, "", a.fail(exitUsage, a.p.T("cli.hint.login_file_damaged"), "cli.err.login_file_damaged", path, err.Error())
	}
	if tf.Servers == nil {
		tf.Servers = map[string]storedLogin{}
	}
	return tf, path, nil
}

func (a *app) writeTokens(path string, tf *tokenFile) error {
	b, err := json.MarshalIndent(tf, "", "  ")
	if err == nil {
		err = writeFileAtomic(path, append(b, '\n'))
	}
	if err != nil {
		return a.fail(exitUsage, "", "cli.err.login_store", a.fileText(err))
	}
	return nil
}

// writeFileAtomic writes a private file (0600, folder 0700) by rename.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// apiKeyFlag defines --api-key.
func (f *flagSet) apiKeyFlag() *string {
	return f.String("api-key", "cli.ph.key", "cli.flag.api_key")
}

// senderToken returns the API key (--api-key, KLUIS_API_KEY) or the stored
// login for server.
func (a *app) senderToken(server, apiKey string) (string, error) {
	if apiKey == "" {
		apiKey = a.getenv("KLUIS_API_KEY")
	}
	if apiKey != "" {
		return apiKey, nil
	}
	tf, _, err := a.readTokens()
	if err != nil {
		return "", err
	}
	key := serverKey(server)
	l, ok := tf.Servers[key]
	if !ok || l.Token == "" {
		return "", a.fail(exitAuth, a.p.T("cli.hint.login_server", key), "cli.err.not_logged_in", key)
	}
	if !l.ExpiresAt.IsZero() && time.Now().After(l.ExpiresAt) {
		return "", a.fail(exitAuth, a.p.T("cli.hint.login_again", l.Email), "cli.err.login_ended", key, a.p.Date(l.ExpiresAt))
	}
	return l.Token, nil
}
