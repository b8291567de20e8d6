package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// lockWait is how long rotate-master-key waits for the database lock.
var lockWait = 2 * time.Second

// adminRotateKey is kluis admin rotate-master-key: a new master key, and
// every sealed value of the database re-sealed under it in one
// transaction. An interruption at any point is finished by running it
// again (see the command's help).
func (a *app) adminRotateKey(ctx context.Context, args []string) error {
	f := a.flags("admin rotate-master-key", "cli.rotate.usage")
	sf := f.storeFlags(true)
	reason := f.reasonFlag()
	if err := f.parseNone(args); err != nil {
		return err
	}
	ctx, err := a.breakGlass(ctx, f, *reason, true)
	if err != nil {
		return err
	}
	st, err := a.store(sf)
	if err != nil {
		return err
	}
	if st.MasterKey != "" {
		return a.fail(exitUsage, a.p.T("cli.hint.rotate_key_file"), "cli.rotate.key_in_env")
	}
	// Before reading keys: a mistyped folder should say so first.
	if err := a.checkSQLite(st); err != nil {
		return err
	}
	keyFile := st.MasterKeyFile
	oldText, err := os.ReadFile(keyFile)
	if err != nil {
		return a.fail(exitUsage, "", "cli.admin.master_key", a.fileText(err))
	}
	oldKeys, err := secret.LoadMasterKey(keyFile)
	if err != nil {
		return a.fail(exitUsage, "", "cli.admin.master_key", err.Error())
	}
	newPath := keyFile + ".new"
	newKeys, err := secret.LoadMasterKey(newPath)
	resuming := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return a.fail(exitUsage, a.p.T("cli.hint.rotate_new_unusable", newPath), "cli.rotate.new_unusable", newPath, a.fileText(err))
	}
	if resuming {
		if newKeys.ID() == oldKeys.ID() {
			return a.fail(exitUsage, a.p.T("cli.hint.remove_run_again", newPath), "cli.rotate.same_key", newPath, keyFile)
		}
		fmt.Fprintln(a.io.Err, a.p.T("cli.rotate.resuming", newPath, newKeys.ID()))
	}

	fmt.Fprintln(a.io.Err, a.p.T("cli.rotate.stop_server"))
	db, err := store.OpenExclusive(ctx, st.DB, st.DataDir, lockWait)
	if errors.Is(err, store.ErrBusy) {
		return a.fail(exitUsage, a.p.T("cli.hint.stop_instances"), "cli.rotate.in_use", dbDisplay(st), err.Error())
	}
	if err != nil {
		return err
	}
	defer db.Close()

	if !resuming {
		raw := secret.GenerateMasterKey()
		newKeys, err = secret.NewKeyring(raw)
		if err != nil {
			return err
		}
		if err := writeKeyFileAtomic(newPath, []byte(base64.StdEncoding.EncodeToString(raw)+"\n")); err != nil {
			return a.fail(exitUsage, "", "cli.rotate.write_new", a.fileText(err))
		}
		clear(raw)
	}
	counts, err := transfer.RotateMasterKey(ctx, db, oldKeys, newKeys)
	if err != nil {
		return &cliError{code: exitUsage, msg: a.p.T("cli.rotate.failed", err.Error()), hint: a.p.T("cli.hint.rotate_unchanged", newPath), err: err}
	}
	// The database is re-sealed; the entry says who did it and why.
	if err := audit.New(db, 0, nil, nil).Record(ctx, db.Q, audit.Event{Action: audit.MasterKeyRotate, Object: newKeys.ID(), Detail: "old=" + oldKeys.ID()}); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}

	oldPath := keyFile + ".old-" + oldKeys.ID()
	finish := a.p.T("cli.hint.rotate_finish")
	if err := writeKeyFileAtomic(oldPath, oldText); err != nil {
		return a.fail(exitUsage, finish, "cli.rotate.keep_old_failed", newKeys.ID(), a.fileText(err))
	}
	if err := os.Rename(newPath, keyFile); err != nil {
		return a.fail(exitUsage, finish, "cli.rotate.rename_failed", newKeys.ID(), newPath, keyFile, a.fileText(err))
	}
	if err := syncDir(filepath.Dir(keyFile)); err != nil {
		return a.fail(exitUsage, finish, "cli.rotate.rename_failed", newKeys.ID(), newPath, keyFile, a.fileText(err))
	}

	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.rotate.header"))
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", c.Column, c.Resealed, c.Already)
	}
	tw.Flush()
	fmt.Fprintln(a.io.Out, a.p.T("cli.rotate.done", oldKeys.ID(), newKeys.ID(), keyFile))
	fmt.Fprint(a.io.Err, "\n"+a.p.T("cli.rotate.back_up", keyFile, oldPath))
	return nil
}

// writeKeyFileAtomic writes data to path with mode 0600 through a temporary
// file in the same folder: synced, renamed over path, folder synced. A
// crash leaves either the old file or the new one, never half of one.
func writeKeyFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
