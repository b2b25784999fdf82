package server

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.0 description of /api/v1, /healthz and
// /readyz, written by hand; a test checks it against Routes and validates
// real answers against its schemas.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the embedded OpenAPI document.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// openAPI serves the document. It is public: it describes the API and
// holds no data, and tools fetch it before they have a token.
func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(openAPIDoc)
}
