package api

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the OpenAPI 3.1 description of every route under
// /api/v1 (and /healthz, /readyz). openapi_test.go keeps it true: it
// validates the requests and responses of the API test suite against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// openapi serves the document at GET /api/v1/openapi.json.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDocument)
}
