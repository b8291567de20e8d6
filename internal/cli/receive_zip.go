package cli

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

// receiveZip downloads everything as one ZIP, checks that it reads back
// completely (every entry's CRC-32), and only then gives it its name.
func (a *app) receiveZip(ctx context.Context, c *client.Client, session string, contents *client.Contents, dir string, force bool) (receivedFile, error) {
	var total int64
	for _, f := range contents.Files {
		total += f.Size
	}
	prog := a.newProgress(total)
	defer prog.finish()
	var lastErr error
	brokeAt := int64(-1)
	for attempt := 0; attempt < maxDownloadAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return receivedFile{}, &client.NetError{Op: "download", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
			}
		}
		resp, err := c.DownloadZip(ctx, session)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return receivedFile{}, err
		}
		name := "kluis-" + contents.Transfer.ID[:min(8, len(contents.Transfer.ID))] + ".zip"
		if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
			name = safeName(params["filename"], 0)
		}
		final := filepath.Join(dir, name)
		if _, err := os.Lstat(final); err == nil && !force {
			resp.Body.Close()
			return receivedFile{}, a.fail(exitUsage, a.p.T("cli.hint.exists"), "cli.receive.exists", final)
		}
		part := filepath.Join(dir, "."+name+".kluis-part")
		pf, err := a.openPart(part, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			resp.Body.Close()
			return receivedFile{}, err
		}
		prog.file(name, total, 0)
		prog.reset(0)
		n, err := io.CopyBuffer(&countingWriter{w: pf, p: prog}, resp.Body, make([]byte, copyBuffer))
		resp.Body.Close()
		if err != nil {
			pf.Close()
			os.Remove(part)
			if ctx.Err() != nil {
				return receivedFile{}, &client.NetError{Op: "download", Err: ctx.Err()}
			}
			lastErr = &client.NetError{Op: "download of " + name, Err: err}
			// The server breaks a ZIP off where a file fails
			// verification: the same place every time.
			if n == brokeAt {
				return receivedFile{}, &client.IntegrityError{Msg: a.p.T("cli.receive.breaks_off", name, a.p.Size(n))}
			}
			brokeAt = n
			continue
		}
		zr, zerr := zip.NewReader(pf, n)
		if zerr == nil {
			zerr = checkZip(zr)
		}
		pf.Close()
		if zerr != nil {
			os.Remove(part)
			return receivedFile{}, &client.IntegrityError{Msg: a.p.T("cli.receive.zip_damaged", zerr.Error())}
		}
		if err := a.place(part, final, force); err != nil {
			return receivedFile{}, err
		}
		return receivedFile{Name: name, Path: final, Size: n}, nil
	}
	return receivedFile{}, lastErr
}

func checkZip(zr *zip.Reader) error {
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}
