package api

import (
	"archive/zip"
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// ServeFile sends one file of an unlocked transfer as an attachment
// (Range requests work). It returns an error only while nothing has been
// written, so the caller can answer in its own format (JSON for the API,
// a page for the web); a file that fails verification later aborts the
// connection instead of ending as a clean 200.
func ServeFile(w http.ResponseWriter, r *http.Request, svc *transfer.Service, s *transfer.Session, fileID string, log *slog.Logger) error {
	f, fr, err := svc.OpenFile(r.Context(), s, fileID)
	if err != nil {
		return err
	}
	defer fr.Close()
	// Verify the first segment before the status line goes out, so a
	// tampered file gets a clean error where that is still possible.
	if f.Size > 0 {
		var one [1]byte
		if _, err := fr.ReadAt(one[:], 0); err != nil && err != io.EOF {
			return integrityError(err)
		}
	}
	h := w.Header()
	h.Set("Content-Disposition", ContentDisposition(f.Name))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Kluis-SHA256", f.SHA256)
	pf := readAhead(fr, f.Size).(*prefetcher)
	defer pf.wait()
	body := &abortOnError{r: io.NewSectionReader(pf, 0, f.Size)}
	http.ServeContent(w, r, "", time.Time{}, body)
	if r.Header.Get("Range") == "" && body.read == f.Size {
		if err := svc.RecordDownload(r.Context(), s, f.Index); err != nil {
			log.Error("record download", "err", err)
		}
	}
	return nil
}

// ServeZip streams all files of an unlocked transfer, and the message as a
// text file, as one ZIP without compression and without temporary files.
// Like ServeFile it returns an error only while nothing has been written;
// a tampered file later aborts the connection mid-stream.
func ServeZip(w http.ResponseWriter, r *http.Request, svc *transfer.Service, s *transfer.Session, log *slog.Logger) error {
	c, err := svc.Contents(r.Context(), s)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Disposition", ContentDisposition("kluis-"+c.Transfer.ID[:8]+".zip"))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	zw := zip.NewWriter(bw)
	used := map[string]int{}
	unique := func(name string) string {
		base := name
		for {
			used[strings.ToLower(base)]++
			if used[strings.ToLower(base)] == 1 {
				return base
			}
			ext := ""
			if i := strings.LastIndexByte(name, '.'); i > 0 {
				ext = name[i:]
			}
			base = strings.TrimSuffix(name, ext) + " (" + strconv.Itoa(used[strings.ToLower(name)]) + ")" + ext
		}
	}
	if strings.TrimSpace(c.Message) != "" {
		mw, err := zw.CreateHeader(&zip.FileHeader{Name: unique(messageFileName(c.Transfer.Lang)), Method: zip.Store, Modified: time.Now()})
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		io.WriteString(mw, c.Message)
	}
	buf := make([]byte, 256<<10)
	for _, f := range c.Files {
		kf, fr, err := svc.OpenFile(r.Context(), s, f.ID)
		if err != nil {
			log.Error("zip: open file", "file", f.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		fh := &zip.FileHeader{Name: unique(kf.Name), Method: zip.Store, Modified: time.Now()}
		fh.UncompressedSize64 = uint64(kf.Size)
		zf, err := zw.CreateHeader(fh)
		if err != nil {
			fr.Close()
			panic(http.ErrAbortHandler)
		}
		pf := readAhead(fr, kf.Size).(*prefetcher)
		_, err = io.CopyBuffer(zf, io.NewSectionReader(pf, 0, kf.Size), buf)
		pf.wait()
		if err != nil {
			fr.Close()
			log.Error("zip: file failed verification or write; aborting", "file", f.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		fr.Close()
	}
	if err := zw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	if err := svc.RecordDownload(r.Context(), s, -1); err != nil {
		log.Error("record download", "err", err)
	}
	return nil
}
