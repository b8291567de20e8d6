package api

import "net/http"

// Mux is where Register adds the routes: an *http.ServeMux, or a wrapper
// that records the patterns (the server's route table test fails for any
// registered route without a row) or wraps some routes (rate limits).
type Mux interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}
