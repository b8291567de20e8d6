package cli

// The words of the API's states, statuses, kinds and password modes in the
// person's language. A value this client does not know is shown as the
// server sent it (made visible).
var (
	stateKeys = map[string]string{
		"draft": "cli.state.draft", "uploading": "cli.state.uploading", "ready": "cli.state.ready",
		"expired": "cli.state.expired", "revoked": "cli.state.revoked", "purged": "cli.state.purged",
		"scanning": "cli.state.scanning", "failed": "cli.state.failed",
	}
	recipientStatusKeys = map[string]string{
		"pending": "cli.rstatus.pending", "notified": "cli.rstatus.notified", "opened": "cli.rstatus.opened",
		"downloaded": "cli.rstatus.downloaded", "revoked": "cli.rstatus.revoked",
	}
	kindKeys = map[string]string{
		"to": "cli.kind.to", "cc": "cli.kind.cc", "bcc": "cli.kind.bcc",
	}
	passwordModeKeys = map[string]string{
		"generate": "cli.pwmode.generate", "manual": "cli.pwmode.manual", "none": "cli.pwmode.none",
	}
)

func (a *app) word(keys map[string]string, v string) string {
	if k, ok := keys[v]; ok {
		return a.p.T(k)
	}
	return visible(v)
}

func (a *app) stateText(v string) string        { return a.word(stateKeys, v) }
func (a *app) recipientStatus(v string) string  { return a.word(recipientStatusKeys, v) }
func (a *app) kindText(v string) string         { return a.word(kindKeys, v) }
func (a *app) passwordModeText(v string) string { return a.word(passwordModeKeys, v) }
