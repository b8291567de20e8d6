package api

import (
	"net/http"

	"github.com/kluis-nl/kluis"
)

// configResponse is GET /api/v1/config: what the web UI and the CLI show
// before a sender starts: whether this is a demo installation, and the
// default limits (a rule of the organisation's policy may set other limits
// for particular senders or recipients; creating a transfer tells).
type configResponse struct {
	Demo                bool         `json:"demo"`
	OrganisationDomains []string     `json:"organisation_domains,omitempty"`
	Limits              configLimits `json:"limits"`
}

type configLimits struct {
	MaxTransferSize    int64                `json:"max_transfer_size"`
	DefaultExpiryDays  int                  `json:"default_expiry_days"`
	MaxExpiryDays      int                  `json:"max_expiry_days"`
	PasswordModes      []kluis.PasswordMode `json:"password_modes"`
	AllowMessage       bool                 `json:"allow_message"`
	AllowCustomText    bool                 `json:"allow_custom_text"`
	AllowShowFilenames bool                 `json:"allow_show_filenames"`
	MaxRecipients      int                  `json:"max_recipients"`
}

// config needs no authentication: it says nothing about any transfer.
func (a *API) config(w http.ResponseWriter, r *http.Request) {
	p := a.svc.Policy()
	l := a.svc.DefaultLimits()
	out := configResponse{
		Demo: p.Demo(),
		Limits: configLimits{
			MaxTransferSize:    l.MaxTransferSize,
			DefaultExpiryDays:  int(l.DefaultExpiry.Hours() / 24),
			MaxExpiryDays:      int(l.MaxExpiry.Hours() / 24),
			PasswordModes:      append([]kluis.PasswordMode{}, l.PasswordModes...),
			AllowMessage:       l.AllowMessage,
			AllowCustomText:    l.AllowCustomText,
			AllowShowFilenames: l.AllowShowFilenames,
			MaxRecipients:      l.MaxRecipients,
		},
	}
	if !out.Demo {
		out.OrganisationDomains = p.Domains()
	}
	writeJSON(w, http.StatusOK, out)
}
