package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// adminExportIdentity is kluis admin export-identity TRANSFER: unwrap a
// transfer's age identity with its password (or link secret), so its
// stored segments can be decrypted with the age tool, without Kluis.
func (a *app) adminExportIdentity(ctx context.Context, args []string) error {
	f := a.flags("admin export-identity", "cli.identity.usage")
	sf := f.storeFlags(true)
	secretFlags := f.secretFlags()
	out := f.String("o", "cli.ph.file", "cli.flag.identity_o")
	reason := f.reasonFlag()
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usageError("cli.identity.one_transfer")
	}
	// It gives the power to read a transfer: always say why.
	if ctx, err = a.breakGlass(ctx, f, *reason, true); err != nil {
		return err
	}
	if *secretFlags.file != "" && *secretFlags.stdin {
		return f.usageError("cli.password.both")
	}
	transferID := pos[0]
	st, db, err := a.openStoreFlags(ctx, sf)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := a.adminKeys(st)
	if err != nil {
		return err
	}
	sec, err := a.readSecret(f, secretFlags, a.p.T("cli.identity.password_prompt"))
	if errors.Is(err, errNoSecret) {
		return f.usageError("cli.identity.needs_password")
	}
	if err != nil {
		return err
	}
	// A pasted link: its secret is the part after #.
	if i := strings.LastIndexByte(sec, '#'); i >= 0 && strings.Contains(sec[:i], "/") {
		sec = sec[i+1:]
	}
	if sec == "" {
		return f.usageError("cli.password.empty")
	}
	var file *os.File
	if *out != "" {
		// Before the scrypt work, so a mistake shows at once.
		if file, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return a.fail(exitUsage, "", "cli.err.flag_file", "-o", a.fileText(err))
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := transfer.New(transfer.Deps{DB: db, Keys: keys, Config: transfer.DefaultConfig(), Log: log}) // no blobs needed
	identity, err := svc.ExportIdentity(ctx, transferID, sec)
	result := audit.OK
	if err != nil {
		result = audit.Refused
	}
	if aerr := audit.New(db, 0, nil, nil).Record(ctx, db.Q, audit.Event{Action: audit.IdentityExport, Object: transferID, Result: result}); aerr != nil && err == nil {
		err = aerr // no identity without its entry
	}
	if err != nil {
		if file != nil {
			file.Close()
			os.Remove(*out)
		}
		return err
	}
	if file == nil {
		fmt.Fprintln(a.io.Out, identity)
	} else {
		_, err = fmt.Fprintf(file, "# age identity of Kluis transfer %s, exported %s\n%s\n", transferID, time.Now().UTC().Format(time.RFC3339), identity)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*out)
			return a.fail(exitUsage, "", "cli.err.flag_file", "-o", a.fileText(err))
		}
	}
	idFile := *out
	if idFile == "" {
		idFile = a.p.T("cli.identity.file_placeholder")
	}
	seg := filepath.Join(st.DataDir, "blobs", "t", transferID)
	fmt.Fprint(a.io.Err, a.p.T("cli.identity.done", transferID, seg, idFile))
	return nil
}

// adminKeys loads the master key as kluis serve would, but never creates one.
func (a *app) adminKeys(st *config.Store) (*secret.Keyring, error) {
	if st.MasterKey != "" {
		b, err := base64.StdEncoding.DecodeString(st.MasterKey)
		if err != nil {
			return nil, a.fail(exitUsage, "", "cli.admin.master_key_env")
		}
		return secret.NewKeyring(b)
	}
	keys, err := secret.LoadMasterKey(st.MasterKeyFile)
	if err != nil {
		return nil, a.fail(exitUsage, "", "cli.admin.master_key", a.fileText(err))
	}
	return keys, nil
}
