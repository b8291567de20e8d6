package api_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

// TestScanAPI: with --clamd, a file with malware sent over tus (in two
// requests, so resumed) or a plain PUT is refused at finish with
// 422 infected, and no mail is queued; the transfer then finishes with the
// clean file. With clamd stopped, finish answers 503 scan_pending with
// Retry-After, and succeeds once clamd is back.
func TestScanAPI(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	e := startAPIEnv(t, apptest.Options{Args: []string{"--clamd", d.TCP()}})
	finish := func(c created) *http.Response {
		return e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil)
	}

	// tus, resumed: the marker lies across the two requests' boundary.
	c := e.create("")
	data := append(append(randomBytes(3, 300_000), scantest.Marker...), randomBytes(4, 1000)...)
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("scan.pdf"))
	h := map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": meta,
		"Content-Type": "application/offset+octet-stream"}
	split := 300_010
	resp := e.req("POST", "/api/v1/uploads/", c.UploadToken, h, data[:split])
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 201 || err != nil {
		t.Fatalf("tus create: %d %v", resp.StatusCode, err)
	}
	resp = e.req("PATCH", loc.Path, c.UploadToken, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": strconv.Itoa(split),
		"Content-Type": "application/offset+octet-stream"}, data[split:])
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("tus patch: %d", resp.StatusCode)
	}
	e.put(c, "brief.txt", []byte("Beste meneer, hierbij de stukken."))
	if code, msg, _ := apiError(t, finish(c), http.StatusUnprocessableEntity); code != "infected" || !strings.Contains(msg, "File 1 of 2") {
		t.Fatalf("tus upload with malware: %s %q", code, msg)
	}
	if q := e.app.Queued("", ""); len(q) != 0 {
		t.Fatalf("%d mails queued", len(q))
	}
	if ids := e.finish(c); len(ids) != 1 {
		t.Fatalf("finish without the infected file: %v", ids)
	}

	// A plain PUT with EICAR.
	c = e.create("")
	e.put(c, "eicar.com", []byte(scantest.EICAR))
	if code, _, _ := apiError(t, finish(c), http.StatusUnprocessableEntity); code != "infected" {
		t.Fatalf("plain upload of EICAR: %s", code)
	}

	// clamd down: 503 scan_pending with Retry-After, then recovery.
	c = e.create("")
	e.put(c, "a.txt", []byte("schoon"))
	d.Stop(t)
	resp = finish(c)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("scan_pending without Retry-After")
	}
	if code, _, _ := apiError(t, resp, http.StatusServiceUnavailable); code != "scan_pending" {
		t.Fatalf("clamd down: %s", code)
	}
	d.Start(t)
	e.finish(c)
}
