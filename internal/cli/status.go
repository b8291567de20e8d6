package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
)

// status is kluis status: the sender's transfers, or one transfer per
// recipient.
func (a *app) status(ctx context.Context, args []string) error {
	f := a.flags("status", "cli.status.usage")
	server := f.serverFlags()
	apiKey := f.apiKeyFlag()
	asJSON := f.Bool("json", "cli.flag.status_json")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return f.usageError("cli.status.one_id")
	}
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := a.senderToken(c.Base(), *apiKey)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		t, err := c.Transfer(ctx, token, pos[0])
		if err != nil {
			return a.explain(err, "sender")
		}
		if *asJSON {
			return writeJSON(a.io.Out, t)
		}
		a.printTransfer(a.io.Out, t)
		return nil
	}
	ts, err := c.Transfers(ctx, token)
	if err != nil {
		return a.explain(err, "sender")
	}
	if *asJSON {
		return writeJSON(a.io.Out, map[string]any{"transfers": ts})
	}
	if len(ts) == 0 {
		fmt.Fprintln(a.io.Out, a.p.T("cli.status.none"))
		return nil
	}
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.status.list_header"))
	for _, t := range ts {
		opened, names := 0, []string{}
		for _, r := range t.Recipients {
			if r.OpenedAt != nil {
				opened++
			}
			names = append(names, visible(r.Address))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", t.ID, a.stateText(t.State), a.date(&t.CreatedAt), a.date(&t.ExpiresAt),
			opened, len(t.Recipients), strings.Join(names, ", "))
	}
	return tw.Flush()
}

// date is a date for a table: "-" when there is none.
func (a *app) date(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return a.p.Date(*t)
}

func (a *app) printTransfer(w io.Writer, t *client.Transfer) {
	fmt.Fprintln(w, a.p.T("cli.status.transfer", t.ID, a.stateText(t.State)))
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	if t.Reference != "" {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.reference"), visible(t.Reference))
	}
	fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.created"), a.date(&t.CreatedAt))
	if t.FinishedAt != nil {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.sent"), a.date(t.FinishedAt))
	}
	fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.expires"), a.date(&t.ExpiresAt))
	if t.RevokedAt != nil {
		fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.revoked"), a.date(t.RevokedAt))
	}
	fmt.Fprintf(tw, "  %s\t%s\n", a.p.T("cli.status.password"), a.passwordModeText(t.PasswordMode))
	tw.Flush()
	if x := t.ScanRefusal; x != nil {
		fmt.Fprintln(w, "  "+a.refusalText(x))
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.status.recipient_header"))
	for _, r := range t.Recipients {
		var dl []string
		for _, d := range r.Downloads {
			what := a.p.T("cli.status.file_n", d.FileIndex+1)
			if d.Name != "" {
				what = kluis.CleanFileName(d.Name) // the server may be older, or not Kluis
			}
			dl = append(dl, what+" "+a.date(&d.At))
		}
		downloads := "-"
		if len(dl) > 0 {
			downloads = strings.Join(dl, "; ")
		}
		status := a.recipientStatus(r.Status)
		if r.RevokedAt != nil {
			status += " " + a.date(r.RevokedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", visible(r.Address), a.kindText(r.Kind), status,
			a.authText(t, r), a.date(r.NotifiedAt), a.date(r.OpenedAt), downloads)
	}
	tw.Flush()
}

// authText is how a recipient verifies: the SMS code (masked number) or
// the login, with when it was passed; the password only as the lower
// level; "-" without a password or from a server that does not say.
func (a *app) authText(t *client.Transfer, r client.Recipient) string {
	switch r.AuthMethod {
	case "password+sms":
		if r.VerifiedAt != nil {
			return a.p.T("cli.status.auth_sms_at", visible(r.Phone), a.date(r.VerifiedAt))
		}
		return a.p.T("cli.status.auth_sms", visible(r.Phone))
	case "password+login":
		name := ""
		if r.Login != nil {
			name = visible(r.Login.Provider)
		}
		if r.VerifiedAt != nil {
			return a.p.T("cli.status.auth_login_at", name, a.date(r.VerifiedAt))
		}
		return a.p.T("cli.status.auth_login", name)
	case "password":
		if t.PasswordMode != "none" {
			return a.p.T("cli.status.auth_password")
		}
	}
	return "-"
}

// revoke is kluis revoke: revoke a transfer for everyone or one recipient.
func (a *app) revoke(ctx context.Context, args []string) error {
	f := a.flags("revoke", "cli.revoke.usage")
	server := f.serverFlags()
	apiKey := f.apiKeyFlag()
	recipient := f.String("recipient", "cli.ph.address", "cli.flag.recipient")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usageError("cli.revoke.no_id")
	}
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := a.senderToken(c.Base(), *apiKey)
	if err != nil {
		return err
	}
	t, err := c.Revoke(ctx, token, pos[0], *recipient)
	if err != nil {
		return a.explain(err, "sender")
	}
	if *recipient != "" {
		fmt.Fprintln(a.io.Out, a.p.T("cli.revoke.one", t.ID, *recipient))
	} else {
		fmt.Fprintln(a.io.Out, a.p.T("cli.revoke.all", t.ID))
	}
	return nil
}

// refusalText says why the server's malware scan stopped a transfer.
func (a *app) refusalText(x *client.ScanRefusal) string {
	file := a.p.T("cli.status.file_n", x.File)
	if x.Files > 0 {
		file = a.p.T("cli.scan.file_of", x.File, x.Files)
	}
	if x.Name != "" {
		file += " (" + kluis.CleanFileName(x.Name) + ")"
	}
	switch x.Reason {
	case "infected":
		if x.Finding != "" {
			return a.p.T("cli.scan.refused_infected_finding", file, visible(x.Finding))
		}
		return a.p.T("cli.scan.refused_infected", file)
	case "too_large":
		return a.p.T("cli.scan.refused_too_large", file)
	}
	return a.p.T("cli.scan.refused_timeout")
}
