package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

// sendState is the resume state of one send; it never holds a password.
type sendState struct {
	Server      string `json:"server"`
	TransferID  string `json:"transfer_id"`
	UploadToken string `json:"upload_token"`
	LinkSecret  string `json:"link_secret,omitempty"` // --no-password only
	Generated   bool   `json:"password_generated,omitempty"`
	// PasswordShown records that a generated password was printed when the
	// transfer was created. With --json it is printed only at the end, so
	// an interrupted --json run never showed it: that draft is useless to
	// its recipients and is not continued.
	PasswordShown bool        `json:"password_shown,omitempty"`
	ExpiresAt     time.Time   `json:"expires_at"`
	Files         []fileState `json:"files"`
}

type fileState struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Location string `json:"location,omitempty"` // tus upload path
	Done     bool   `json:"done,omitempty"`
}

// loadSendState returns the saved state if its transfer can still take
// uploads (resumed = true), or if it was finished already (resumed =
// false, st != nil). A state that is of no use is removed.
func (a *app) loadSendState(ctx context.Context, c *client.Client, path string, sf []sendFile) (st *sendState, resumed bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, a.fail(exitUsage, "", "cli.send.state_read", a.fileText(err))
	}
	st = &sendState{}
	if json.Unmarshal(b, st) != nil || len(st.Files) != len(sf) {
		os.Remove(path)
		return nil, false, nil
	}
	t, err := c.Transfer(ctx, st.UploadToken, st.TransferID)
	if err != nil {
		var ne *client.NetError
		if errors.As(err, &ne) {
			return nil, false, a.explain(err, "sender")
		}
		fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.cannot_continue", st.TransferID, a.explain(err, "sender").msg))
		os.Remove(path)
		return nil, false, nil
	}
	switch t.State {
	case "draft", "uploading":
		if st.Generated && !st.PasswordShown {
			// Its password was to be printed at the end (--json) and the
			// run never got there: nobody can ever open this transfer.
			fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.password_never_shown", st.TransferID))
			os.Remove(path)
			return nil, false, nil
		}
		return st, true, nil
	case "ready", "scanning":
		return st, false, nil
	}
	fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.send.cannot_continue_state", st.TransferID, a.stateText(t.State)))
	os.Remove(path)
	return nil, false, nil
}

func saveSendState(path string, st *sendState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

const maxUploadAttempts = 5

// uploadFile sends file i over tus, continuing at the server's offset; a
// network error is retried a few times.
func (a *app) uploadFile(ctx context.Context, c *client.Client, st *sendState, statePath string, i int, f sendFile, prog *progress) error {
	fst := &st.Files[i]
	if fst.Done {
		prog.file(f.name, f.size, f.size)
		return nil
	}
	if fst.Location == "" {
		ctype := mime.TypeByExtension(filepath.Ext(f.name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		loc, err := c.CreateUpload(ctx, st.UploadToken, f.size, f.name, ctype)
		if err != nil {
			return err
		}
		fst.Location = loc
		if err := saveSendState(statePath, st); err != nil {
			return a.fail(exitUsage, "", "cli.send.state_save", a.fileText(err))
		}
	}
	file, err := os.Open(f.path)
	if err != nil {
		return a.fail(exitUsage, a.p.T("cli.hint.keep_files"), "cli.send.open_file", a.fileText(err))
	}
	defer file.Close()
	started := false
	var lastErr error
	for attempt := 0; attempt < maxUploadAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return &client.NetError{Op: "upload", Err: ctx.Err()}
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		off, _, err := c.UploadOffset(ctx, st.UploadToken, fst.Location)
		if err != nil {
			var ne *client.NetError
			if errors.As(err, &ne) && ctx.Err() == nil {
				lastErr = err
				continue
			}
			return err
		}
		if !started {
			prog.file(f.name, f.size, off)
			started = true
		} else {
			prog.reset(off)
		}
		if off < f.size {
			body := &countingReader{r: io.NewSectionReader(file, off, f.size-off), p: prog}
			_, err = c.Patch(ctx, st.UploadToken, fst.Location, off, body, f.size-off)
			if err != nil {
				var ne *client.NetError
				if (errors.As(err, &ne) && ctx.Err() == nil) || client.Code(err) == "conflict" || client.Code(err) == "mismatched_offset" {
					lastErr = err
					continue
				}
				return err
			}
		}
		fst.Done = true
		if err := saveSendState(statePath, st); err != nil {
			return a.fail(exitUsage, "", "cli.send.state_save", a.fileText(err))
		}
		return nil
	}
	return lastErr
}
