package s3

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Defaults of Config.
const (
	// DefaultPartSize is the size of one multipart part, and the most a
	// Writer buffers. S3's minimum part size (the last part may be smaller).
	DefaultPartSize = 5 << 20
	// DefaultReadAhead is the size of a Reader's windows.
	DefaultReadAhead = 1 << 20
	// maxParts is S3's limit on the parts of one multipart upload: with
	// 5 MiB parts a blob can be up to ~48.8 GiB (segments are far smaller).
	maxParts = 10000
)

// Config says where and how to reach the bucket. ParseURL builds one from
// the --storage URL and the environment.
type Config struct {
	// Bucket is the bucket's name; it must exist.
	Bucket string
	// Prefix, if not empty, ends in '/' and is put in front of every key:
	// s3://bucket/kluis/ stores key "t/1" as object "kluis/t/1".
	Prefix string
	// Endpoint is host[:port], without a scheme.
	Endpoint string
	// Secure means https (with certificate verification). Plain http is
	// only accepted for loopback endpoints.
	Secure bool
	// Region is the bucket's region; empty lets the client ask.
	Region string
	// PathStyle addresses the bucket as https://host/bucket/key rather
	// than https://bucket.host/key. The default for custom endpoints.
	PathStyle bool

	AccessKey    string
	SecretKey    string // never printed: see String
	SessionToken string // optional (AWS_SESSION_TOKEN)

	// PartSize is the multipart part size (default DefaultPartSize, at
	// least 5 MiB) and the most each Writer holds in memory.
	PartSize int64
	// ReadAhead is the size of a Reader's windows (default
	// DefaultReadAhead): the unit in which its stream reads ahead, and
	// what a ranged GET for a read off the stream fetches.
	ReadAhead int64
	// CacheWindows is how many fetched windows each Reader keeps, beyond
	// the one read last (default 4: the windows between the parallel reads
	// of a download's read-ahead, and a segment's final chunk); reads up to
	// this many windows ahead of the stream are served by it.
	CacheWindows int
	// Prefetch is how many windows a Reader's stream reads ahead of the
	// reads (default 2; 0 or less: the default, as ParseURL sets none). A
	// Reader holds at most CacheWindows+1 windows plus these, and one
	// being filled.
	Prefetch int

	// Transport, if set, replaces the HTTP transport (tests count requests
	// with it). It must verify certificates.
	Transport http.RoundTripper
}

// String describes the configuration without the secret.
func (c Config) String() string {
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	return fmt.Sprintf("s3://%s/%s?endpoint=%s://%s&region=%s&path_style=%v",
		c.Bucket, c.Prefix, scheme, c.Endpoint, c.Region, c.PathStyle)
}

// GoString keeps %#v from printing the secret too.
func (c Config) GoString() string { return "s3.Config(" + c.String() + ")" }

// Environment variables holding the credentials. Each may instead be given
// as NAME_FILE: the path of a file holding the value (Docker/Kubernetes
// secrets); one trailing newline is dropped.
const (
	EnvAccessKey    = "AWS_ACCESS_KEY_ID"
	EnvSecretKey    = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken = "AWS_SESSION_TOKEN"
)

// ParseURL parses a storage URL of the form
//
//	s3://BUCKET[/PREFIX]?endpoint=https://host:port&region=REGION&path_style=true
//
// and reads the credentials through getenv (os.Getenv in production).
// Without endpoint, Amazon S3 itself is used (s3.REGION.amazonaws.com,
// virtual-host style). Errors say what to fix and never contain a secret.
func ParseURL(raw string, getenv func(string) string) (*Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL: it might hold a secret
		}
		return nil, fmt.Errorf("s3: cannot parse the storage URL: %v", err)
	}
	if u.Scheme != "s3" {
		return nil, errors.New(`s3: the storage URL must start with "s3://" (s3://BUCKET?endpoint=https://host:port&region=REGION)`)
	}
	if u.User != nil {
		return nil, fmt.Errorf("s3: the storage URL must not contain credentials; set %s and %s (or %s_FILE and %s_FILE) instead",
			EnvAccessKey, EnvSecretKey, EnvAccessKey, EnvSecretKey)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("s3: the storage URL names no bucket: write s3://BUCKET?endpoint=…")
	}
	if u.Fragment != "" {
		return nil, errors.New("s3: the storage URL must not have a #fragment")
	}
	c := &Config{Bucket: u.Host}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return nil, fmt.Errorf("s3: bucket name %q: %v", c.Bucket, err)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		for part := range strings.SplitSeq(p, "/") {
			if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\\\x00") {
				return nil, fmt.Errorf("s3: prefix %q in the storage URL: empty, \".\" and \"..\" parts are not allowed", p)
			}
		}
		c.Prefix = p + "/"
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("s3: cannot parse the query of the storage URL: %v", err)
	}
	for name, vals := range q {
		switch name {
		case "endpoint", "region", "path_style", "read_ahead":
			if len(vals) != 1 {
				return nil, fmt.Errorf("s3: storage URL parameter %q given %d times", name, len(vals))
			}
		default:
			// The name only: the value might be a misplaced secret.
			return nil, fmt.Errorf("s3: unknown storage URL parameter %q (known: endpoint, region, path_style, read_ahead)", name)
		}
	}
	c.Region = q.Get("region")
	if ep := q.Get("endpoint"); ep != "" {
		if err := c.setEndpoint(ep); err != nil {
			return nil, err
		}
		c.PathStyle = true
	} else {
		region := c.Region
		if region == "" {
			region = "us-east-1"
			c.Region = region
		}
		c.Endpoint = "s3." + region + ".amazonaws.com"
		c.Secure = true
	}
	if ps := q.Get("path_style"); ps != "" {
		b, err := strconv.ParseBool(ps)
		if err != nil {
			return nil, fmt.Errorf("s3: path_style=%q in the storage URL: want true or false", ps)
		}
		c.PathStyle = b
	}
	if ra := q.Get("read_ahead"); ra != "" {
		n, err := strconv.ParseInt(ra, 10, 64)
		if err != nil || n < 64<<10 || n > 64<<20 {
			return nil, fmt.Errorf("s3: read_ahead=%q in the storage URL: want a number of bytes from 65536 to 67108864", ra)
		}
		c.ReadAhead = n
	}

	if c.AccessKey, err = secret(getenv, EnvAccessKey); err != nil {
		return nil, err
	}
	if c.SecretKey, err = secret(getenv, EnvSecretKey); err != nil {
		return nil, err
	}
	if c.SessionToken, err = secret(getenv, EnvSessionToken); err != nil {
		return nil, err
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, fmt.Errorf("s3: no credentials: set %s and %s (or %s_FILE and %s_FILE, paths of files holding them)",
			EnvAccessKey, EnvSecretKey, EnvAccessKey, EnvSecretKey)
	}
	return c, nil
}

// setEndpoint checks and sets the endpoint: an http(s) URL with a host and
// nothing else; plain http only for loopback.
func (c *Config) setEndpoint(ep string) error {
	e, err := url.Parse(ep)
	if err != nil || e.Host == "" || e.Opaque != "" {
		return fmt.Errorf("s3: endpoint=%q in the storage URL: want https://host[:port]", ep)
	}
	if e.User != nil {
		return fmt.Errorf("s3: the endpoint must not contain credentials; set %s and %s instead", EnvAccessKey, EnvSecretKey)
	}
	if (e.Path != "" && e.Path != "/") || e.RawQuery != "" || e.Fragment != "" {
		return fmt.Errorf("s3: endpoint %s://%s in the storage URL must have no path or query: want https://host[:port]", e.Scheme, e.Host)
	}
	switch e.Scheme {
	case "https":
		c.Secure = true
	case "http":
		if !isLoopback(e.Hostname()) {
			return fmt.Errorf("s3: endpoint http://%s would send data and signed requests unencrypted: use https:// (plain http is only allowed for loopback addresses such as 127.0.0.1)", e.Host)
		}
	default:
		return fmt.Errorf("s3: endpoint=%q in the storage URL: the scheme must be https:// (or http:// for loopback)", ep)
	}
	if p := e.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("s3: endpoint %s in the storage URL: invalid port %q", e.Host, p)
		}
	}
	c.Endpoint = e.Host
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// secret reads name, or the file named by name_FILE (not both).
func secret(getenv func(string) string, name string) (string, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	if v != "" && file != "" {
		return "", fmt.Errorf("s3: both %s and %s_FILE are set: set only one", name, name)
	}
	if file == "" {
		return v, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		// The path and the OS error only, never the content.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("s3: %s_FILE: cannot read %s: %v", name, file, err)
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return "", fmt.Errorf("s3: %s_FILE: %s is empty", name, file)
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("s3: %s_FILE: %s holds more than one line", name, file)
	}
	return s, nil
}
