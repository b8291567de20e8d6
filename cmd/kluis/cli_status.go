package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/client"
)

const statusUsage = `Usage: kluis status [TRANSFER] [--api-key KEY] [--json] [--server URL] [--insecure-http]

Without TRANSFER: lists your transfers. With TRANSFER (the id printed by
kluis send): shows per recipient whether the e-mail went out, whether and
when the link was opened, and what was downloaded when.
`

const revokeUsage = `Usage: kluis revoke TRANSFER [--recipient ADDRESS] [--api-key KEY] [--server URL] [--insecure-http]

Revokes a transfer at once, for everyone (its files are deleted), or only
for one recipient with --recipient. It does not ask for confirmation.
`

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis status", statusUsage, stderr)
	server := serverFlag(fs, getenv)
	apiKey := fs.String("api-key", "", "API `KEY` instead of the login (default KLUIS_API_KEY)")
	asJSON := fs.Bool("json", false, "print the server's answer as JSON")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 1 {
		fs.Usage()
		return usageError{errors.New("give at most one transfer id")}
	}
	c, err := newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := senderToken(getenv, c.Base(), *apiKey)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		ts, err := c.Transfers(ctx, token)
		if err != nil {
			return explain(err, "sender")
		}
		if *asJSON {
			return writeJSONOut(stdout, map[string]any{"transfers": ts})
		}
		if len(ts) == 0 {
			fmt.Fprintln(stdout, "You have no transfers.")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TRANSFER\tSTATE\tCREATED\tEXPIRES\tOPENED\tRECIPIENTS")
		for _, t := range ts {
			opened, names := 0, []string{}
			for _, r := range t.Recipients {
				if r.OpenedAt != nil {
					opened++
				}
				names = append(names, r.Address)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", t.ID, t.State, fmtTime(&t.CreatedAt), fmtTime(&t.ExpiresAt), opened, len(t.Recipients), strings.Join(names, ", "))
		}
		return tw.Flush()
	}
	t, err := c.Transfer(ctx, token, pos[0])
	if err != nil {
		return explain(err, "sender")
	}
	if *asJSON {
		return writeJSONOut(stdout, t)
	}
	printTransfer(stdout, t)
	return nil
}

func printTransfer(w io.Writer, t *client.Transfer) {
	fmt.Fprintf(w, "Transfer %s: %s\n", t.ID, t.State)
	fmt.Fprintf(w, "  created  %s\n", fmtTime(&t.CreatedAt))
	if t.FinishedAt != nil {
		fmt.Fprintf(w, "  sent     %s\n", fmtTime(t.FinishedAt))
	}
	fmt.Fprintf(w, "  expires  %s\n", fmtTime(&t.ExpiresAt))
	if t.RevokedAt != nil {
		fmt.Fprintf(w, "  revoked  %s\n", fmtTime(t.RevokedAt))
	}
	fmt.Fprintf(w, "  password %s\n", t.PasswordMode)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tKIND\tSTATUS\tNOTIFIED\tOPENED\tDOWNLOADED")
	for _, r := range t.Recipients {
		var dl []string
		for _, d := range r.Downloads {
			what := d.Name
			if what != "" {
				what = kluis.CleanFileName(what) // the server may be older, or not Kluis
			} else {
				what = fmt.Sprintf("file %d", d.FileIndex+1)
			}
			dl = append(dl, what+" "+fmtTime(&d.At))
		}
		downloads := "-"
		if len(dl) > 0 {
			downloads = strings.Join(dl, "; ")
		}
		status := r.Status
		if r.RevokedAt != nil {
			status += " " + fmtTime(r.RevokedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Address, r.Kind, status, fmtTime(r.NotifiedAt), fmtTime(r.OpenedAt), downloads)
	}
	tw.Flush()
}

func runRevoke(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis revoke", revokeUsage, stderr)
	server := serverFlag(fs, getenv)
	apiKey := fs.String("api-key", "", "API `KEY` instead of the login (default KLUIS_API_KEY)")
	recipient := fs.String("recipient", "", "revoke only for this `ADDRESS`")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{errors.New("give the transfer id (see kluis status)")}
	}
	c, err := newClient(*server.url, server)
	if err != nil {
		return err
	}
	token, err := senderToken(getenv, c.Base(), *apiKey)
	if err != nil {
		return err
	}
	t, err := c.Revoke(ctx, token, pos[0], *recipient)
	if err != nil {
		return explain(err, "sender")
	}
	if *recipient != "" {
		fmt.Fprintf(stdout, "Revoked transfer %s for %s.\n", t.ID, *recipient)
	} else {
		fmt.Fprintf(stdout, "Revoked transfer %s for everyone; its files are being deleted.\n", t.ID)
	}
	return nil
}
