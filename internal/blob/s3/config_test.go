package s3

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var creds = map[string]string{EnvAccessKey: "AKID", EnvSecretKey: "topsecret-value"}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want Config
	}{
		{"s3://kluis?endpoint=http://127.0.0.1:7070&region=us-east-1",
			Config{Bucket: "kluis", Endpoint: "127.0.0.1:7070", Region: "us-east-1", PathStyle: true}},
		{"s3://kluis/data/blobs/?endpoint=https://s3.example.nl&region=nl-ams",
			Config{Bucket: "kluis", Prefix: "data/blobs/", Endpoint: "s3.example.nl", Secure: true, Region: "nl-ams", PathStyle: true}},
		{"s3://kluis?endpoint=https://s3.example.nl:9000&path_style=false",
			Config{Bucket: "kluis", Endpoint: "s3.example.nl:9000", Secure: true, PathStyle: false}},
		{"s3://kluis?endpoint=http://localhost:9000&read_ahead=2097152",
			Config{Bucket: "kluis", Endpoint: "localhost:9000", PathStyle: true, ReadAhead: 2 << 20}},
		{"s3://kluis?endpoint=http://[::1]:9000",
			Config{Bucket: "kluis", Endpoint: "[::1]:9000", PathStyle: true}},
		{"s3://kluis?region=eu-west-1",
			Config{Bucket: "kluis", Endpoint: "s3.eu-west-1.amazonaws.com", Secure: true, Region: "eu-west-1"}},
		{"s3://kluis",
			Config{Bucket: "kluis", Endpoint: "s3.us-east-1.amazonaws.com", Secure: true, Region: "us-east-1"}},
	} {
		c, err := ParseURL(tc.raw, env(creds))
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.raw, err)
			continue
		}
		tc.want.AccessKey, tc.want.SecretKey = "AKID", "topsecret-value"
		if *c != tc.want {
			t.Errorf("ParseURL(%q) = %#v, want %#v", tc.raw, *c, tc.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
	}{
		{"https://kluis", `must start with "s3://"`},
		{"s3:kluis", "names no bucket"},
		{"s3:///x?endpoint=https://h", "names no bucket"},
		{"s3://Bad_Bucket?endpoint=https://h", "bucket name"},
		{"s3://kluis/a/../b?endpoint=https://h", "prefix"},
		{"s3://kluis?endpoint=http://s3.example.nl", "only allowed for loopback"},
		{"s3://kluis?endpoint=http://10.0.0.1:9000", "only allowed for loopback"},
		{"s3://kluis?endpoint=ftp://h", "scheme must be https"},
		{"s3://kluis?endpoint=s3.example.nl", "want https://host"},
		{"s3://kluis?endpoint=https://h/path", "no path"},
		{"s3://kluis?endpoint=https://h:99999", "invalid port"},
		{"s3://kluis?endpoint=https://h&path_style=maybe", "path_style"},
		{"s3://kluis?endpoint=https://h&read_ahead=12", "read_ahead"},
		{"s3://kluis?endpoint=https://h&endpoint=https://i", "given 2 times"},
		{"s3://kluis?endpoint=https://h&secret_key=topsecret-value", `unknown storage URL parameter "secret_key"`},
		{"s3://AKID:topsecret-value@kluis?endpoint=https://h", "must not contain credentials"},
		{"s3://kluis?endpoint=https://AKID:topsecret-value@h", "must not contain credentials"},
		{"s3://kluis#frag", "fragment"},
		{"s3://kluis?endpoint=https://h&%zz", "cannot parse the query"},
	} {
		_, err := ParseURL(tc.raw, env(creds))
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseURL(%q): %v, want it to mention %q", tc.raw, err, tc.want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("ParseURL(%q): error echoes the secret: %v", tc.raw, err)
		}
	}
}

func TestParseURLCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("key", "AKFILE\n")
	secretFile := write("secret", "topsecret-from-file\r\n")
	empty := write("empty", "\n")
	twoLines := write("two", "topsecret-a\ntopsecret-b\n")
	const raw = "s3://kluis?endpoint=https://h"

	c, err := ParseURL(raw, env(map[string]string{EnvAccessKey + "_FILE": keyFile, EnvSecretKey + "_FILE": secretFile}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKey != "AKFILE" || c.SecretKey != "topsecret-from-file" {
		t.Fatalf("from files: %q / %q", c.AccessKey, c.SecretKey)
	}
	c, err = ParseURL(raw, env(map[string]string{EnvAccessKey: "AK", EnvSecretKey: "topsecret-x", EnvSessionToken: "tok"}))
	if err != nil || c.SessionToken != "tok" {
		t.Fatalf("session token: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
		{map[string]string{EnvAccessKey: "AK"}, "no credentials"},
		{map[string]string{EnvAccessKey: "AK", EnvSecretKey: "topsecret-1", EnvSecretKey + "_FILE": secretFile}, "both AWS_SECRET_ACCESS_KEY and AWS_SECRET_ACCESS_KEY_FILE"},
		{map[string]string{EnvAccessKey: "AK", EnvSecretKey + "_FILE": filepath.Join(dir, "missing")}, "AWS_SECRET_ACCESS_KEY_FILE: cannot read"},
		{map[string]string{EnvAccessKey: "AK", EnvSecretKey + "_FILE": empty}, "is empty"},
		{map[string]string{EnvAccessKey: "AK", EnvSecretKey + "_FILE": twoLines}, "more than one line"},
	} {
		_, err := ParseURL(raw, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: %v, want %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
}

func TestConfigStringHidesSecret(t *testing.T) {
	c, err := ParseURL("s3://kluis?endpoint=https://h", env(creds))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprint(*c), fmt.Sprintf("%v %+v %#v %s", *c, *c, *c, c)} {
		if strings.Contains(s, "topsecret") {
			t.Fatalf("printed config holds the secret: %s", s)
		}
	}
}
