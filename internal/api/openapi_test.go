package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/api"
	"github.com/kluis-nl/kluis/internal/locale"
)

// The OpenAPI document (openapi.json, served at /api/v1/openapi.json) is
// kept true by three checks:
//
//   - every request the API test suite sends goes through specTransport
//     (the apiEnv client), which validates the request and the response
//     against the document: an undocumented route, status, header or body
//     fails the test that sent it, and so does a request that the document
//     calls invalid but that the server accepts;
//   - TestOpenAPIRoutes: the routes of api.Register (and /healthz, /readyz)
//     and the document's operations are the same set;
//   - TestOpenAPIErrorCodes: the error code enum is kluis.go's codes, and
//     each status's error response admits exactly the codes api.Status maps
//     to it.

const specFile = "openapi.json"

var (
	specOnce  sync.Once
	specDoc   *openapi3.T
	specPaths []specPath
	specErr   error
)

// specPath is one path of the document as a regexp over the escaped URL
// path, with the names of its parameters.
type specPath struct {
	path  string
	re    *regexp.Regexp
	names []string
	item  *openapi3.PathItem
}

var pathParamRE = regexp.MustCompile(`\{([^}]+)\}`)

// loadSpec loads and validates the document once per test binary.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		data, err := os.ReadFile(specFile)
		if err != nil {
			specErr = err
			return
		}
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(data)
		if err != nil {
			specErr = fmt.Errorf("load %s: %w", specFile, err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = fmt.Errorf("validate %s: %w", specFile, err)
			return
		}
		for p, item := range doc.Paths.Map() {
			var names, parts []string
			for _, seg := range strings.Split(p, "/") {
				if m := pathParamRE.FindStringSubmatch(seg); m != nil && m[0] == seg {
					names = append(names, m[1])
					parts = append(parts, `([^/]+)`)
				} else {
					parts = append(parts, regexp.QuoteMeta(seg))
				}
			}
			re := regexp.MustCompile("^" + strings.Join(parts, "/") + "$")
			specPaths = append(specPaths, specPath{path: p, re: re, names: names, item: item})
		}
		specDoc = doc
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return specDoc
}

// findRoute matches a request with the document's operation. The escaped
// path is matched, so an encoded slash stays inside its parameter, as with
// http.ServeMux.
func findRoute(doc *openapi3.T, r *http.Request) (*routers.Route, map[string]string, error) {
	p := r.URL.EscapedPath()
	for _, sp := range specPaths {
		m := sp.re.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		op := sp.item.GetOperation(r.Method)
		if op == nil {
			return nil, nil, fmt.Errorf("%s %s: the document has %s but not for method %s", r.Method, r.URL.Path, sp.path, r.Method)
		}
		params := map[string]string{}
		for i, n := range sp.names {
			v, err := url.PathUnescape(m[i+1])
			if err != nil {
				v = m[i+1]
			}
			params[n] = v
		}
		return &routers.Route{Spec: doc, Server: doc.Servers[0], Path: sp.path, PathItem: sp.item, Method: r.Method, Operation: op}, params, nil
	}
	return nil, nil, fmt.Errorf("%s %s: no path of the document matches", r.Method, r.URL.Path)
}

// checkAuth is the security check of the validator: it only looks whether
// the credential the scheme names was sent; whether it is valid is the
// server's business (and answered with a documented 401).
func checkAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		h := r.Header.Get("Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && strings.TrimSpace(h[7:]) != "" {
			return nil
		}
		return errors.New("no bearer token")
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err == nil {
			return nil
		}
		return fmt.Errorf("no cookie %s", s.Name)
	}
	return fmt.Errorf("security scheme %q is not checked by the test", in.SecuritySchemeName)
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// textual media types are read and validated; others (file bytes) are
// checked by status, headers and media type only.
func textual(mt string) bool {
	return mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "text/plain" ||
		mt == "application/x-www-form-urlencoded"
}

// specTransport validates every request and response of the API test
// suite against the document. Mismatches fail t.
type specTransport struct {
	t    func() testing.TB // the test to fail: the env's current one
	base http.RoundTripper
	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → statuses answered
}

func newSpecTransport(t func() testing.TB, base http.RoundTripper) *specTransport {
	loadSpec(t())
	return &specTransport{t: t, base: base, seen: map[string]map[int]bool{}}
}

func (s *specTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	route, params, err := findRoute(specDoc, req)
	if err != nil {
		s.t().Errorf("openapi: undocumented route: %v", err)
		return s.base.RoundTrip(req)
	}
	what := req.Method + " " + route.Path
	opts := &openapi3filter.Options{
		AuthenticationFunc:                checkAuth,
		IncludeResponseStatus:             true,
		RejectWhenRequestBodyNotSpecified: true,
		SkipSettingDefaults:               true,
	}

	// The request. Textual bodies are buffered and validated; file bytes
	// only by their media type.
	reqMT := mediaType(req.Header.Get("Content-Type"))
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	send := req
	var reqBody []byte
	if hasBody && (textual(reqMT) || reqMT == "") && req.ContentLength >= 0 && req.ContentLength <= 8<<20 {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		send = req.Clone(req.Context())
		send.Body = io.NopCloser(bytes.NewReader(b))
		send.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	vreq := req.Clone(req.Context())
	vreq.Body = http.NoBody
	if reqBody != nil {
		vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	rin := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
	var reqErr error
	if hasBody && reqBody == nil {
		// File bytes: the media type must be one the operation takes.
		o := *opts
		o.ExcludeRequestBody = true
		rin.Options = &o
		reqErr = openapi3filter.ValidateRequest(req.Context(), rin)
		rb := route.Operation.RequestBody
		switch {
		case rb == nil || rb.Value == nil:
			reqErr = errors.Join(reqErr, errors.New("a body was sent, but the operation takes none"))
		case rb.Value.Content.Get(req.Header.Get("Content-Type")) == nil:
			reqErr = errors.Join(reqErr, fmt.Errorf("request Content-Type %q is not one the operation takes", req.Header.Get("Content-Type")))
		}
		rin.Options = opts
	} else {
		reqErr = openapi3filter.ValidateRequest(req.Context(), rin)
	}

	resp, err := s.base.RoundTrip(send)
	if err != nil {
		return resp, err
	}
	s.mu.Lock()
	if s.seen[route.Operation.OperationID] == nil {
		s.seen[route.Operation.OperationID] = map[int]bool{}
	}
	s.seen[route.Operation.OperationID][resp.StatusCode] = true
	s.mu.Unlock()

	if reqErr != nil && resp.StatusCode < 400 {
		s.t().Errorf("openapi: %s: the document says the request is invalid, but the server answered %d: %v", what, resp.StatusCode, reqErr)
	}

	// The response. Textual bodies are read (and put back) and validated;
	// file bytes are not read: the status, the headers and the media type
	// are checked.
	respMT := mediaType(resp.Header.Get("Content-Type"))
	readBody := req.Method != http.MethodHead && textual(respMT)
	var body []byte
	if readBody {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = b
		var rest io.Reader = bytes.NewReader(b)
		if rerr != nil {
			rest = io.MultiReader(rest, errReader{rerr})
		}
		resp.Body = io.NopCloser(rest)
	}
	vin := rin
	if req.Method == http.MethodHead {
		// ValidateResponse skips HEAD entirely; validate its status and
		// headers as for the HEAD operation, without a body.
		g := vreq.Clone(vreq.Context())
		g.Method = http.MethodGet
		vin = &openapi3filter.RequestValidationInput{Request: g, PathParams: params, Route: route, Options: opts}
	}
	ropts := *opts
	ropts.ExcludeResponseBody = !readBody
	rv := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: vin,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &ropts,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), rv); err != nil {
		s.t().Errorf("openapi: %s: response %d does not match the document: %v\nbody: %.500s", what, resp.StatusCode, err, body)
	} else if !readBody {
		if r := route.Operation.Responses.Status(resp.StatusCode); r != nil && r.Value != nil && len(r.Value.Content) > 0 {
			ct := resp.Header.Get("Content-Type")
			if ct != "" && r.Value.Content.Get(ct) == nil {
				s.t().Errorf("openapi: %s: response %d has Content-Type %q, which the document does not list", what, resp.StatusCode, ct)
			}
		}
	}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestOpenAPIServed: the document is served as JSON, as it is in the tree.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	resp := e.req("GET", "/api/v1/openapi.json", "", nil, nil)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	want, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Error("the served document differs from " + specFile)
	}
	doc := loadSpec(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
}

// recordingMux is an api.Mux that keeps the patterns Register adds.
type recordingMux struct {
	*http.ServeMux
	patterns []string
}

func (m *recordingMux) Handle(p string, h http.Handler) {
	m.patterns = append(m.patterns, p)
	m.ServeMux.Handle(p, h)
}

func (m *recordingMux) HandleFunc(p string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(p, http.HandlerFunc(h))
}

// TestOpenAPIRoutes: every route of api.Register (and /healthz, /readyz)
// is in the document, and every operation of the document is served by the
// route of the same method and path.
func TestOpenAPIRoutes(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	e := newAPIEnv(t)
	a, err := api.New(e.svc, e.senders, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	mux := &recordingMux{ServeMux: http.NewServeMux()}
	a.Register(mux)
	// The health checks are registered by internal/server; the tour test
	// calls them on the real server. Other routes there (the development
	// mailbox, security.txt, the web UI) are not part of the API.
	for _, p := range []string{"GET /healthz", "GET /readyz"} {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	patterns := mux.patterns
	if len(patterns) < 10 {
		t.Fatalf("only %d routes registered: %q", len(patterns), patterns)
	}

	documented := map[string]bool{} // "METHOD /path"
	for p, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			documented[m+" "+p] = true
		}
	}
	for _, p := range patterns {
		if !documented[p] {
			t.Errorf("route %q is registered but not in %s", p, specFile)
		}
	}
	var ops []string
	for p := range documented {
		ops = append(ops, p)
	}
	sort.Strings(ops)
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := pathParamRE.ReplaceAllString(path, "x2345678901234567890123456")
		_, got := mux.Handler(httptest.NewRequest(method, concrete, nil))
		want := op
		if method == http.MethodHead && !slices.Contains(patterns, op) {
			want = "GET " + path // a GET pattern also serves HEAD
		}
		if got != want {
			t.Errorf("%s is in %s, but the mux routes %s %s to %q", op, specFile, method, concrete, got)
		}
	}
}

// TestOpenAPIErrorCodes: the ErrorCode enum holds exactly the codes of
// kluis.go, and the error response of each status admits exactly the codes
// that api.Status maps to it.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	f, err := parser.ParseFile(token.NewFileSet(), "../../kluis.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					c, _ := strconv.Unquote(lit.Value)
					codes = append(codes, c)
				}
			}
		}
	}
	if len(codes) < 10 {
		t.Fatalf("only %d codes found in kluis.go", len(codes))
	}
	var enum []string
	for _, v := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(codes)
	sort.Strings(enum)
	if !slices.Equal(codes, enum) {
		t.Errorf("ErrorCode enum %q, kluis.go has %q", enum, codes)
	}
	errBody := func(code string) any {
		return map[string]any{"error": map[string]any{"code": code, "message": "m"}}
	}
	statuses := map[int]bool{}
	for _, c := range codes {
		st := api.Status(kluis.Code(c))
		statuses[st] = true
		name := fmt.Sprintf("Error%d", st)
		s := doc.Components.Schemas[name]
		if s == nil {
			t.Errorf("code %s has status %d, but the document has no schema %s", c, st, name)
			continue
		}
		if err := s.Value.VisitJSON(errBody(c), openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("code %s (status %d) is refused by %s: %v", c, st, name, err)
		}
	}
	for name, s := range doc.Components.Schemas {
		st, err := strconv.Atoi(strings.TrimPrefix(name, "Error"))
		if !strings.HasPrefix(name, "Error") || err != nil {
			continue
		}
		if !statuses[st] {
			t.Errorf("schema %s: no code has status %d", name, st)
		}
		for _, c := range codes {
			ok := s.Value.VisitJSON(errBody(c), openapi3.EnableJSONSchema2020()) == nil
			if ok != (api.Status(kluis.Code(c)) == st) {
				t.Errorf("schema %s admits code %s: %v, but api.Status(%s) = %d", name, c, ok, c, api.Status(kluis.Code(c)))
			}
		}
	}
}

// TestOpenAPITour sends a request to every operation of the document,
// through the validating client, so that each has been checked at least
// once with a success status.
func TestOpenAPITour(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	st := e.client.Transport.(*specTransport)
	const sender = "afzender@example.nl"
	_, key, err := e.senders.CreateAPIKey(e.ctx, sender)
	if err != nil {
		t.Fatal(err)
	}
	e.jsonOK(e.req("GET", "/api/v1/openapi.json", "", nil, nil), 200, nil)
	e.jsonOK(e.req("GET", "/api/v1/config", "", nil, nil), 200, nil)
	e.jsonOK(e.req("GET", "/healthz", "", nil, nil), 200, nil)
	e.jsonOK(e.req("GET", "/readyz", "", nil, nil), 200, nil)

	// Sender verification: start, a wrong code, the API key, logout.
	var v struct {
		Verification string `json:"verification"`
	}
	e.jsonOK(e.req("POST", "/api/v1/verify", "", nil, map[string]string{"email": sender, "name": "Afzender", "lang": "en"}), 202, &v)
	apiError(t, e.req("POST", "/api/v1/verify/confirm", "", nil, map[string]string{"code": "12", "verification": v.Verification, "client": "cli"}), 400)
	e.jsonOK(e.req("GET", "/api/v1/me", key, nil, nil), 200, nil)
	resp := e.req("POST", "/api/v1/logout", "", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Errorf("logout: %d", resp.StatusCode)
	}

	// Create with the API key; list; get.
	var c created
	e.jsonOK(e.req("POST", "/api/v1/transfers", key, nil, map[string]any{
		"to": []string{"Ontvanger <ontvanger@example.nl>"}, "cc": []string{"cc@example.nl"}, "message": "Hierbij.",
		"expires_at": e.clock.Now().Add(48 * time.Hour).Format(time.RFC3339), "lang": "nl",
		"password": map[string]string{"mode": "generate"}, "options": map[string]bool{"notify_download": true},
	}), 201, &c)
	e.jsonOK(e.req("GET", "/api/v1/transfers", key, nil, nil), 200, nil)
	e.jsonOK(e.req("GET", "/api/v1/transfers/"+c.ID, c.UploadToken, nil, nil), 200, nil)

	// tus: discovery, create (with the first bytes), offset, append,
	// terminate a second upload.
	for _, p := range []string{"/api/v1/uploads/", "/api/v1/uploads/" + c.ID} {
		resp = e.req("OPTIONS", p, "", nil, nil)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("OPTIONS %s: %d", p, resp.StatusCode)
		}
	}
	data := randomBytes(7, 1000)
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("verslag.pdf")) + ",filetype " + base64.StdEncoding.EncodeToString([]byte("application/pdf"))
	tus := func(method, path string, h map[string]string, body any, want int) *http.Response {
		t.Helper()
		if h == nil {
			h = map[string]string{}
		}
		h["Tus-Resumable"] = "1.0.0"
		resp := e.req(method, path, c.UploadToken, h, body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
		return resp
	}
	resp = tus("POST", "/api/v1/uploads/", map[string]string{"Upload-Length": "1000", "Upload-Metadata": meta,
		"Content-Type": "application/offset+octet-stream"}, data[:400], 201)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	tus("HEAD", loc.Path, nil, nil, 200)
	tus("PATCH", loc.Path, map[string]string{"Upload-Offset": "400", "Content-Type": "application/offset+octet-stream"}, data[400:], 204)
	resp = tus("POST", "/api/v1/uploads/", map[string]string{"Upload-Length": "5"}, nil, 201)
	loc2, _ := url.Parse(resp.Header.Get("Location"))
	tus("DELETE", loc2.Path, nil, nil, 204)
	// tusd's own errors are plain text: a PATCH at the wrong offset.
	resp = tus("PATCH", loc.Path, map[string]string{"Upload-Offset": "3", "Content-Type": "application/offset+octet-stream"}, "x", 409)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("tusd error Content-Type %q", ct)
	}

	// Plain upload, finish, extend, one recipient revoked.
	e.put(c, "bijlage.txt", []byte("hallo"))
	var fin struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil), 200, &fin)
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/extend", c.UploadToken, nil,
		map[string]string{"expires_at": e.clock.Now().Add(72 * time.Hour).Format(time.RFC3339)}), 200, nil)
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, map[string]string{"recipient": "cc@example.nl"}), 200, nil)

	// The recipient: lookup, unlock, contents, files (whole, range, HEAD),
	// ZIP.
	u, _ := url.Parse(fin.Links[0].URL)
	access := strings.TrimPrefix(u.Path, "/r/")
	e.jsonOK(e.req("GET", "/api/v1/links/"+access, "", nil, nil), 200, nil)
	sess := e.unlock(access, c.Password)
	var contents struct {
		Files []fileJSON `json:"files"`
	}
	e.jsonOK(e.req("GET", "/api/v1/session", sess, nil, nil), 200, &contents)
	if len(contents.Files) != 2 {
		t.Fatalf("%d files", len(contents.Files))
	}
	fpath := "/api/v1/session/files/" + contents.Files[0].ID
	for _, tc := range []struct {
		method, rng string
		want        int
	}{{"GET", "", 200}, {"GET", "bytes=0-9", 206}, {"GET", "bytes=5000-", 416}, {"HEAD", "", 200}} {
		h := map[string]string{}
		if tc.rng != "" {
			h["Range"] = tc.rng
		}
		resp := e.req(tc.method, fpath, sess, h, nil)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.rng, resp.StatusCode, tc.want)
		}
	}
	resp = e.req("GET", "/api/v1/session/zip", sess, nil, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("zip: %d", resp.StatusCode)
	}
	// Revoke for everyone; the session ends.
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil), 200, nil)
	resp = e.req("GET", "/api/v1/session", sess, nil, nil)
	if resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("session after revoke: %d", resp.StatusCode)
	}
	apiError(t, resp, resp.StatusCode)
	// Erase the revoked transfer; the purge may have ended the upload token
	// already, so as the sender.
	resp = e.req("DELETE", "/api/v1/transfers/"+c.ID, key, nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("erase: %d", resp.StatusCode)
	}

	// Every operation was answered with a success status at least once.
	notHere := map[string]string{
		"confirmVerification": "needs the mailed code, and the test mailer drops mail",
		"startSSO":            "needs an OpenID provider: TestSSODeviceThroughAPI and TestSSOLoopbackThroughAPI (sso_test.go) answer it with success through the same checks",
		"finishSSO":           "needs an OpenID provider: TestSSODeviceThroughAPI (sso_test.go) answers it with 202 and 200 through the same checks",
	}
	notHere["changeInboxPassphrase"] = "needs an inbox: TestInboxPassphraseAPI (requests_test.go) answers it with success through the same checks"
	for _, op := range []string{"getInbox", "createInbox", "listFileRequests", "createFileRequests", "getFileRequest", "revokeFileRequest", "openFileRequest"} {
		notHere[op] = "needs an inbox and a person who sends: TestFileRequestAPI (requests_test.go) answers it with success through the same checks"
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for p, item := range loadSpec(t).Paths.Map() {
		for m, op := range item.Operations() {
			ok := false
			for code := range st.seen[op.OperationID] {
				ok = ok || code < 300
			}
			if why := notHere[op.OperationID]; why != "" {
				t.Logf("%s %s: no success case here: %s", m, p, why)
				continue
			}
			if !ok {
				t.Errorf("%s %s (%s) was not exercised with a success status (seen: %v)", m, p, op.OperationID, st.seen[op.OperationID])
			}
		}
	}
}

// TestOpenAPILanguages: the language fields admit exactly the languages
// Kluis speaks (and "" for the default).
func TestOpenAPILanguages(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	want := append(locale.Codes(), "")
	for _, name := range []string{"Sender", "CreateRequest"} {
		var got []string
		for _, v := range doc.Components.Schemas[name].Value.Properties["lang"].Value.Enum {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s.lang enum %q, want %q", name, got, want)
		}
	}
}
