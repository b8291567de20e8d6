package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kluis-nl/kluis/internal/ratelimit"
)

// tooManyPage is the data of the page a rate-limited request gets.
type tooManyPage struct {
	WaitKey string // catalog key: seconds or minutes
	Wait    int
	Retry   string // the page again (GET only), or ""
}

// TooManyRequests answers a page request the rate limiter refused: 429
// with Retry-After and a page in the visitor's language (the API answers
// JSON instead). It fits ratelimit.GuardOptions.Refuse.
func (h *Web) TooManyRequests(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	secs := ratelimit.RetryAfter(wait)
	p := tooManyPage{WaitKey: "toomany.wait_seconds", Wait: secs}
	if secs > 90 {
		p.WaitKey, p.Wait = "toomany.wait_minutes", (secs+59)/60
	}
	if r.Method == http.MethodGet {
		p.Retry = r.URL.Path
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	// Whoever is refused gets no database work: the page's language comes
	// from the cookie and the browser only.
	h.render(w, r, http.StatusTooManyRequests, "toomany", h.viewFor(r, p, false))
}

// HoldsSession reports whether r carries a valid download session cookie
// for exactly the link in its path ({access}). Such a request is the
// recipient at work (reading, downloading) and is not counted against the
// rate limit. It looks up only the session (by the hash of a 48-byte
// random token) and compares the link's hash with the session's own, so it
// tells a caller nothing about links it does not hold.
func (h *Web) HoldsSession(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	s, err := h.svc.OpenSession(r.Context(), c.Value)
	return err == nil && s.ForAccess(r.PathValue("access"))
}
