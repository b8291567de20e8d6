package bench

// The download comparison with other servers (issue 21 item 1): the same
// file downloaded with curl into /dev/null from Kluis (local folder and
// S3), from Gokapi v2 with server-side encryption, from transfer.sh
// serving the plaintext from its local folder, as a ZIP from each, a raw
// GET of the plaintext from the S3 server, and age -d of Kluis's stored
// segments. bench/peers.sh builds the peers in a scratch folder, starts
// everything, uploads the file and passes the addresses here; without
// KLUIS_PEERS_KLUIS this benchmark skips.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// curl downloads url into /dev/null and checks the status and that at
// least want bytes came (a ZIP has a few more). args go to curl before
// the URL.
func curl(url string, want int64, args ...string) error {
	args = append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"}, args...)
	out, err := exec.Command("curl", append(args, url)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("curl %s: %v: %s", url, err, out)
	}
	var code int
	var n int64
	if _, err := fmt.Sscan(string(out), &code, &n); err != nil || code != http.StatusOK || n < want {
		return fmt.Errorf("curl %s: status %d, %d bytes, want 200 and %d: %s", url, code, n, want, out)
	}
	return nil
}

// ageSegments decrypts the segment files in dir with the age command into
// /dev/null, the files shared out in turn between workers that each run
// one age process after the other.
func ageSegments(ageBin, identity, dir string, workers int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		files = append(files, filepath.Join(dir, e.Name()))
	}
	sort.Strings(files)
	if len(files) == 0 {
		return fmt.Errorf("no segments in %s", dir)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(files); i += workers {
				out, err := exec.Command(ageBin, "-d", "-i", identity, "-o", "/dev/null", files[i]).CombinedOutput()
				if err != nil {
					errs[w] = fmt.Errorf("age -d %s: %v: %s", files[i], err, out)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// gokapiToken asks Gokapi for a temporary API key with one permission,
// authenticated by the proxy header its setup names.
func gokapiToken(base, perm string) (string, error) {
	req, _ := http.NewRequest("GET", base+"/auth/token", nil)
	req.Header.Set("X-Bench-User", "bench")
	req.Header.Set("permission", perm)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Key == "" {
		return "", fmt.Errorf("gokapi token: status %d, %v", resp.StatusCode, err)
	}
	return out.Key, nil
}

// BenchmarkPeers runs one download of each kind per iteration. Each
// reports MiB/s of the file's size (a ZIP's few extra bytes not counted).
func BenchmarkPeers(b *testing.B) {
	if os.Getenv("KLUIS_PEERS_KLUIS") == "" {
		b.Skip("peer comparison: run bash bench/peers.sh (it starts the servers and sets KLUIS_PEERS_*)")
	}
	n := benchSize(b)
	var err error
	get := os.Getenv
	kluis := func(base, session, path string) func() error {
		return func() error { return curl(base+path, n, "-H", "Authorization: Bearer "+session) }
	}
	type target struct {
		name string
		need string // the variable that must be set, else the target is left out
		prep func() ([]string, error)
		run  func(extra []string) error
	}
	plain := func(f func() error) func([]string) error { return func([]string) error { return f() } }
	targets := []target{
		{name: "TransferSh", need: "KLUIS_PEERS_TRANSFERSH", run: plain(func() error { return curl(get("KLUIS_PEERS_TRANSFERSH"), n) })},
		{name: "Gokapi", need: "KLUIS_PEERS_GOKAPI", run: plain(func() error {
			return curl(get("KLUIS_PEERS_GOKAPI")+"/downloadFile?id="+get("KLUIS_PEERS_GOKAPI_FILE"), n)
		})},
		{name: "Kluis", need: "KLUIS_PEERS_KLUIS", run: plain(kluis(get("KLUIS_PEERS_KLUIS"), get("KLUIS_PEERS_KLUIS_SESSION"), "/api/v1/session/files/"+get("KLUIS_PEERS_KLUIS_FILE")))},
		{name: "AgeDecrypt", need: "KLUIS_PEERS_AGE", run: plain(func() error {
			return ageSegments(get("KLUIS_PEERS_AGE"), get("KLUIS_PEERS_AGE_IDENTITY"), get("KLUIS_PEERS_AGE_SEGMENTS"), 2)
		})},
		{name: "AgeDecryptOneProcess", need: "KLUIS_PEERS_AGE", run: plain(func() error {
			out, err := exec.Command(get("KLUIS_PEERS_AGE"), "-d", "-i", get("KLUIS_PEERS_AGE_IDENTITY"), "-o", "/dev/null", get("KLUIS_PEERS_AGE_FILE")).CombinedOutput()
			if err != nil {
				return fmt.Errorf("age -d: %v: %s", err, out)
			}
			return nil
		})},
		{name: "TransferShZip", need: "KLUIS_PEERS_TRANSFERSH_ZIP", run: plain(func() error { return curl(get("KLUIS_PEERS_TRANSFERSH_ZIP"), n) })},
		{name: "GokapiZip", need: "KLUIS_PEERS_GOKAPI",
			prep: func() ([]string, error) {
				key, err := gokapiToken(get("KLUIS_PEERS_GOKAPI"), "PERM_DOWNLOAD")
				return []string{"-H", "apikey: " + key, "-H", "ids: " + get("KLUIS_PEERS_GOKAPI_FILE")}, err
			},
			run: func(h []string) error { return curl(get("KLUIS_PEERS_GOKAPI")+"/api/files/downloadzip", n, h...) }},
		{name: "KluisZip", need: "KLUIS_PEERS_KLUIS", run: plain(kluis(get("KLUIS_PEERS_KLUIS"), get("KLUIS_PEERS_KLUIS_SESSION"), "/api/v1/session/zip"))},
		{name: "S3RawGet", need: "KLUIS_PEERS_S3_OBJECT", run: plain(func() error {
			return curl(get("KLUIS_PEERS_S3_OBJECT"), n, "--aws-sigv4", "aws:amz:"+get("KLUIS_PEERS_S3_REGION")+":s3",
				"--user", get("KLUIS_PEERS_S3_USER"), "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD")
		})},
		{name: "KluisS3", need: "KLUIS_PEERS_KLUIS_S3", run: plain(kluis(get("KLUIS_PEERS_KLUIS_S3"), get("KLUIS_PEERS_KLUIS_S3_SESSION"), "/api/v1/session/files/"+get("KLUIS_PEERS_KLUIS_S3_FILE")))},
		{name: "KluisS3Zip", need: "KLUIS_PEERS_KLUIS_S3", run: plain(kluis(get("KLUIS_PEERS_KLUIS_S3"), get("KLUIS_PEERS_KLUIS_S3_SESSION"), "/api/v1/session/zip"))},
	}
	for _, tg := range targets {
		if get(tg.need) == "" {
			continue
		}
		b.Run(tg.name, func(b *testing.B) {
			b.SetBytes(n)
			var took time.Duration
			var busy float64 // CPU seconds the whole machine spent, all processes
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var extra []string
				if tg.prep != nil {
					if extra, err = tg.prep(); err != nil {
						b.Fatal(err)
					}
				}
				cpu0 := machineBusy()
				start := time.Now()
				b.StartTimer()
				err := tg.run(extra)
				b.StopTimer()
				took += time.Since(start)
				busy += machineBusy() - cpu0
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n)*float64(b.N)/(1<<20)/took.Seconds(), "MiB/s")
			// Where the cores went: the CPU seconds per GiB moved (server,
			// client and, on S3, the S3 server together) and how many
			// cores were busy on average. A download that keeps both
			// cores busy is bound by its CPU cost per GiB, not by waiting.
			if busy > 0 {
				b.ReportMetric(busy/(float64(n)*float64(b.N)/(1<<30)), "cpu-s/GiB")
				b.ReportMetric(busy/took.Seconds(), "busy-cores")
			}
		})
	}
}

// machineBusy returns the CPU seconds all cores have spent not idle since
// boot (user, nice, system, irq, softirq, steal in /proc/stat), or 0 where
// there is no /proc/stat.
func machineBusy() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	return ticks / 100 // USER_HZ is 100 on Linux
}
