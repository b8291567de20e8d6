package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDropoffs(t *testing.T) {
	p := mustParse(t, `{"defaults": {"max_expiry": "30d"}, "dropoffs": [
	  {"slug": "inkomen", "team": "team-inkomen", "name": {"nl": "Team Inkomen", "en": "Income team"},
	   "description": {"nl": "Stuur uw loonstroken."}, "limits": {"max_transfer_size": "500MB", "max_files": 5, "expiry": "14d"}},
	  {"slug": "wmo", "team": "wmo", "name": {"fy": "Wmo-loket"}}
	]}`)
	ds := p.Dropoffs()
	if len(ds) != 2 {
		t.Fatalf("got %d drop-off points, want 2", len(ds))
	}
	d, ok := p.Dropoff("inkomen")
	if !ok || d.Team != "team-inkomen" || d.MaxSize != 500_000_000 || d.MaxFiles != 5 || d.Expiry != 14*24*time.Hour {
		t.Fatalf("inkomen = %+v", d)
	}
	for lang, want := range map[string]string{"nl": "Team Inkomen", "en": "Income team", "de": "Income team"} {
		if got := d.Name(lang); got != want {
			t.Errorf("Name(%s) = %q, want %q", lang, got, want)
		}
	}
	if got := d.Description("en"); got != "Stuur uw loonstroken." {
		t.Errorf("Description(en) = %q, want the Dutch one", got)
	}
	w, _ := p.Dropoff("wmo")
	if w.Name("nl") != "Wmo-loket" || w.MaxFiles != DefaultDropoffFiles || w.MaxSize != 0 || w.Expiry != 0 {
		t.Errorf("wmo = %+v", w)
	}
	if _, ok := p.Dropoff("nope"); ok {
		t.Error("an unknown slug was found")
	}
	if Default().Dropoffs() != nil {
		t.Error("the default policy has drop-off points")
	}
}

func TestDropoffErrors(t *testing.T) {
	ok := `"slug": "a", "team": "t", "name": {"nl": "A"}`
	tests := []struct {
		name, dropoffs, path, want string
	}{
		{"not a list", `{}`, "dropoffs", "must be a list"},
		{"no slug", `[{"team": "t", "name": {"nl": "A"}}]`, "dropoffs[0].slug", "missing"},
		{"bad slug", `[{"slug": "Team Inkomen", "team": "t", "name": {"nl": "A"}}]`, "dropoffs[0].slug", "lower-case"},
		{"no team", `[{"slug": "a", "name": {"nl": "A"}}]`, "dropoffs[0].team", "missing"},
		{"bad team", `[{"slug": "a", "team": "-x", "name": {"nl": "A"}}]`, "dropoffs[0].team", "lower-case"},
		{"no name", `[{"slug": "a", "team": "t"}]`, "dropoffs[0].name", "missing"},
		{"empty name", `[{"slug": "a", "team": "t", "name": {}}]`, "dropoffs[0].name", "at least one language"},
		{"unknown language", `[{"slug": "a", "team": "t", "name": {"xx": "A"}}]`, "dropoffs[0].name.xx", "not a language"},
		{"blank text", `[{"slug": "a", "team": "t", "name": {"nl": " "}}]`, "dropoffs[0].name.nl", "is empty"},
		{"name on two lines", `[{"slug": "a", "team": "t", "name": {"nl": "A\nB"}}]`, "dropoffs[0].name.nl", "line breaks"},
		{"twice", `[{` + ok + `}, {` + ok + `}]`, "dropoffs[1].slug", "already the slug"},
		{"unknown setting", `[{` + ok + `, "members": ["a@b.nl"]}]`, "dropoffs[0].members", "unknown setting"},
		{"bad size", `[{` + ok + `, "limits": {"max_transfer_size": "lots"}}]`, "dropoffs[0].limits.max_transfer_size", ""},
		{"bad files", `[{` + ok + `, "limits": {"max_files": 0}}]`, "dropoffs[0].limits.max_files", "from 1 to 1000"},
		{"short expiry", `[{` + ok + `, "limits": {"expiry": "10m"}}]`, "dropoffs[0].limits.expiry", "too short"},
		{"unknown limit", `[{` + ok + `, "limits": {"max_expiry": "1d"}}]`, "dropoffs[0].limits.max_expiry", "unknown setting"},
		{"past max expiry", `[{` + ok + `, "limits": {"expiry": "60d"}}]`, "dropoffs[0].limits.expiry", "longer than the default max_expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"defaults": {"max_expiry": "30d"}, "dropoffs": ` + tt.dropoffs + `}`))
			if err == nil {
				t.Fatal("accepted")
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Path != tt.path || !strings.Contains(pe.Message, tt.want) {
				t.Errorf("got %v, want %s: ...%s...", err, tt.path, tt.want)
			}
		})
	}
}
