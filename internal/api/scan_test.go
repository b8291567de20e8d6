package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

// TestScanAPI: with --clamd, a file with malware sent over tus (in two
// requests, so resumed) or a plain PUT is refused at finish with
// 422 infected, and no mail is queued; the transfer then finishes with the
// clean file. With clamd stopped, finish answers 200 with state scanning
// (nothing sent), and the transfer becomes ready once clamd is back.
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
	e.put(c, "brief.txt", []byte("Beste meneer."))
	e.put(c, "eicar.com", []byte(scantest.EICAR))
	// The answer names the file by number and the finding, for pages
	// that say it in their reader's language.
	resp = finish(c)
	var refused struct {
		Error struct {
			Code    string `json:"code"`
			File    int    `json:"file"`
			Finding string `json:"finding"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&refused); err != nil || resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("plain upload of EICAR: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	if e := refused.Error; e.Code != "infected" || e.File != 2 || !strings.Contains(e.Finding, "EICAR") {
		t.Fatalf("plain upload of EICAR: %+v, want infected, file 2 and an EICAR finding", e)
	}

	// clamd down: 200 with state scanning ("being checked", fail-closed),
	// then ready once clamd is back and the background retry ran.
	c = e.create("")
	e.put(c, "a.txt", []byte("schoon"))
	d.Stop(t)
	resp = finish(c)
	var got struct {
		State string `json:"state"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil || got.State != "scanning" {
		t.Fatalf("clamd down: status %d, state %q, want 200 scanning", resp.StatusCode, got.State)
	}
	resp.Body.Close()
	d.Start(t)
	e.clock.Advance(time.Hour)
	if n, err := e.app.Transfers.RetryScans(e.ctx); err != nil || n != 1 {
		t.Fatalf("retry after clamd returned: %d, %v", n, err)
	}
	if tr, err := e.db.Transfer(e.ctx, c.ID); err != nil || tr.State != "ready" {
		t.Fatalf("after the retry: %v, %v", tr, err)
	}
}

// TestScanAPIFailOpen: with --scan-unavailable open and clamd down, finish
// answers 200 and names the files that went out unscanned, so the
// client can warn its sender.
func TestScanAPIFailOpen(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	e := startAPIEnv(t, apptest.Options{Args: []string{"--clamd", d.TCP(), "--scan-unavailable", "open"}})
	c := e.create("")
	e.put(c, "a.txt", []byte("schoon"))
	d.Stop(t)
	resp := e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil)
	defer resp.Body.Close()
	var got struct {
		State          string `json:"state"`
		UnscannedFiles []int  `json:"unscanned_files"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&got) != nil {
		t.Fatalf("finish with clamd down, fail-open: %d", resp.StatusCode)
	}
	if got.State != "ready" || len(got.UnscannedFiles) != 1 || got.UnscannedFiles[0] != 1 {
		t.Fatalf("finish: state %q, unscanned_files %v; want ready, [1]", got.State, got.UnscannedFiles)
	}
}

// TestScanRefusalStatus: the owner's status of a transfer the malware
// scan stopped says so, with the file and the finding, also after the
// purge erased its content (it used to read "purged", and "revoked" on
// the sender's pages): state failed and scan_refusal. Both ways a scan
// stops a transfer: the refusal at finish that the client answers by
// revoking (as kluis send and the send page do), and the wait for clamd
// that ends when the retry finds malware, or when the wait runs out.
func TestScanRefusalStatus(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	e := startAPIEnv(t, apptest.Options{Args: []string{"--clamd", d.TCP(), "--scan-wait", "2h"}})
	_, key, err := e.senders.CreateAPIKey(e.ctx, "afzender@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	status := func(id string) (st struct {
		State       string `json:"state"`
		ScanRefusal *struct {
			Reason  string `json:"reason"`
			File    int    `json:"file"`
			Files   int    `json:"files"`
			Name    string `json:"name"`
			Finding string `json:"finding"`
		} `json:"scan_refusal"`
	}) {
		t.Helper()
		e.jsonOK(e.req("GET", "/api/v1/transfers/"+id, key, nil, nil), 200, &st)
		return st
	}
	purge := func() {
		t.Helper()
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Refused at finish, then revoked by the client.
	c := e.create("")
	e.put(c, "brief.txt", []byte("Beste meneer."))
	e.put(c, "eicar.com", []byte(scantest.EICAR))
	apiError(t, e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil), http.StatusUnprocessableEntity)
	if st := status(c.ID); st.State != "uploading" || st.ScanRefusal != nil {
		t.Errorf("open after the refusal: %+v, want uploading without a refusal (the sender may finish without the file)", st)
	}
	resp := e.req("POST", "/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil)
	resp.Body.Close()
	purge()
	st := status(c.ID)
	if r := st.ScanRefusal; st.State != "failed" || r == nil || r.Reason != "infected" || r.File != 2 || r.Files != 2 || r.Name != "" ||
		!strings.Contains(r.Finding, "Kluis-Test-EICAR") {
		t.Errorf("revoked after the refusal, purged: %+v %+v, want failed, infected, file 2 of 2 and the finding", st, r)
	}

	// Waited for clamd; the retry finds malware.
	c = e.create("")
	e.put(c, "virus.com", []byte(scantest.EICAR))
	d.Stop(t)
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil), 200, nil)
	d.Start(t)
	e.clock.Advance(time.Minute)
	if _, err := e.svc.RetryScans(e.ctx); err != nil {
		t.Fatal(err)
	}
	purge()
	st = status(c.ID)
	if r := st.ScanRefusal; st.State != "failed" || r == nil || r.Reason != "infected" || r.File != 1 || !strings.Contains(r.Finding, "Kluis-Test-EICAR") {
		t.Errorf("refused after the wait, purged: %+v %+v", st, r)
	}

	// Waited for clamd until the wait ran out.
	c = e.create("")
	e.put(c, "a.txt", []byte("schoon"))
	d.Stop(t)
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, nil), 200, nil)
	e.clock.Advance(3 * time.Hour)
	if _, err := e.svc.RetryScans(e.ctx); err != nil {
		t.Fatal(err)
	}
	purge()
	st = status(c.ID)
	if r := st.ScanRefusal; st.State != "failed" || r == nil || r.Reason != "timeout" || r.File != 0 || r.Finding != "" {
		t.Errorf("wait ran out, purged: %+v %+v", st, r)
	}

	// A transfer that was sent and then revoked is not a refusal.
	c = e.create("")
	e.put(c, "a.txt", []byte("schoon"))
	e.finish(c)
	resp = e.req("POST", "/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil)
	resp.Body.Close()
	purge()
	if st := status(c.ID); st.ScanRefusal != nil || st.State == "failed" {
		t.Errorf("sent, revoked, purged: %+v", st)
	}

	// The sender's list (and so `kluis status` without an id) says the
	// same: the three refused transfers read failed, the sent one not.
	var list struct {
		Transfers []struct{ ID, State string } `json:"transfers"`
	}
	e.jsonOK(e.req("GET", "/api/v1/transfers", key, nil, nil), 200, &list)
	failed := 0
	for _, x := range list.Transfers {
		if x.State == "failed" {
			failed++
		}
		if x.ID == c.ID && x.State == "failed" {
			t.Errorf("the list says the sent and revoked transfer failed")
		}
	}
	if failed != 3 {
		t.Errorf("the list has %d failed transfers, want the 3 refused ones: %+v", failed, list.Transfers)
	}
}
