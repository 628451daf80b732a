// Package docs serves the gateway's API documentation: GET /openapi.json, the services'
// generated OpenAPI documents merged into one, and GET /docs, Swagger UI on that document.
// The Swagger UI assets are embedded in the binary (see assets/README.md for their origin and
// license), so the page works offline and behind firewalls, with no CDN.
package docs

import (
	"bytes"
	"embed"
	"net/http"
	"time"

	"github.com/brook-dev/brook/kit/service"
)

//go:embed assets/index.html assets/init.js assets/swagger-ui-bundle.js assets/swagger-ui.css
var assets embed.FS

// contentSecurityPolicy lets the page load only its own scripts and the merged document.
// Swagger UI sets inline styles and uses data: URIs for icons.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; frame-ancestors 'none'"

// Handler serves the docs routes. Build it with New.
type Handler struct {
	spec    []byte
	modTime time.Time
}

// New merges sources once (they are embedded and do not change while the process runs).
func New(sources []Source) (*Handler, error) {
	spec, err := Merge(sources)
	if err != nil {
		return nil, err
	}
	return &Handler{spec: spec, modTime: time.Now()}, nil
}

// Routes lists the patterns to mount (http.ServeMux syntax) with their handlers.
func (h *Handler) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /openapi.json":    http.HandlerFunc(h.openAPI),
		"GET /docs":            http.HandlerFunc(h.page),
		"GET /docs/{$}":        http.RedirectHandler("/docs", http.StatusMovedPermanently),
		"GET /docs/{file}":     http.HandlerFunc(h.asset),
		"GET /docs/index.html": http.RedirectHandler("/docs", http.StatusMovedPermanently),
	}
}

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "openapi.json", h.modTime, bytes.NewReader(h.spec))
}

func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, "index.html")
}

func (h *Handler) asset(w http.ResponseWriter, r *http.Request) {
	switch name := r.PathValue("file"); name {
	case "init.js", "swagger-ui-bundle.js", "swagger-ui.css":
		h.serve(w, r, name)
	default:
		service.WriteError(w, http.StatusNotFound, service.ErrorBody{Code: "not_found", Message: "no docs asset " + name})
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name string) {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil { // the names served are embedded above
		service.WriteError(w, http.StatusInternalServerError, service.ErrorBody{Code: "internal", Message: "missing embedded asset " + name})
		return
	}
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, name, h.modTime, bytes.NewReader(b))
}
