package web

import "net/http"

// Mux is where Register adds the routes: an *http.ServeMux, or a wrapper
// of one (the server's records patterns and adds rate limits).
type Mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Register adds the pages to mux.
func (h *Web) Register(mux Mux) {
	mux.HandleFunc("GET /{$}", h.home)
	mux.HandleFunc("GET /send", h.send)
	mux.HandleFunc("GET /help", h.help)
	mux.HandleFunc("GET /accessibility", h.accessibility)
	mux.HandleFunc("GET /privacy", h.privacy)
	mux.HandleFunc("GET /lang", h.setLang)

	mux.HandleFunc("GET /receive", h.receiveForm)
	mux.HandleFunc("POST /receive", h.receiveCode)
	mux.HandleFunc("GET /r/{access}", h.link)
	mux.HandleFunc("POST /r/{access}/unlock", h.unlock)
	mux.HandleFunc("GET /r/{access}/open", h.open)
	mux.HandleFunc("GET /r/{access}/files/{fid}", h.downloadFile)
	mux.HandleFunc("GET /r/{access}/zip", h.downloadZip)

	mux.HandleFunc("GET /static/{sum}/{name...}", h.serveStatic)
}
