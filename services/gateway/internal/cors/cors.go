// Package cors lets browser apps on other origins call the gateway.
//
// Only the configured origins are allowed ("*" allows any). Preflight requests (OPTIONS with
// Access-Control-Request-Method) are answered here with 204 and never reach the backends; a
// preflight from an origin that is not allowed gets 204 without CORS headers, so the browser
// blocks the real request. Credentials (cookies) are not allowed: the API uses bearer tokens.
package cors

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults of Options.
var (
	DefaultMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	DefaultHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "Traceparent"}
	DefaultExpose  = []string{"X-Request-Id", "Retry-After", "Location"}
)

// Options configure the middleware.
type Options struct {
	AllowedOrigins []string      // exact origins ("https://app.example.com") or "*"; empty disables CORS
	AllowedMethods []string      // DefaultMethods when empty
	AllowedHeaders []string      // request headers allowed; DefaultHeaders when empty
	ExposedHeaders []string      // response headers scripts may read; DefaultExpose when empty
	MaxAge         time.Duration // how long browsers cache a preflight; 10 minutes when 0
}

// Policy is a configured CORS middleware.
type Policy struct {
	any     bool
	origins map[string]bool
	methods string
	allowed map[string]bool // lower-case header names
	headers string
	expose  string
	maxAge  string
}

// New builds a Policy from o.
func New(o Options) *Policy {
	p := &Policy{origins: map[string]bool{}, allowed: map[string]bool{}}
	for _, origin := range o.AllowedOrigins {
		origin = strings.TrimRight(strings.TrimSpace(origin), "/")
		if origin == "*" {
			p.any = true
		} else if origin != "" {
			p.origins[strings.ToLower(origin)] = true
		}
	}
	if len(o.AllowedMethods) == 0 {
		o.AllowedMethods = DefaultMethods
	}
	if len(o.AllowedHeaders) == 0 {
		o.AllowedHeaders = DefaultHeaders
	}
	if len(o.ExposedHeaders) == 0 {
		o.ExposedHeaders = DefaultExpose
	}
	if o.MaxAge == 0 {
		o.MaxAge = 10 * time.Minute
	}
	for _, h := range o.AllowedHeaders {
		p.allowed[strings.ToLower(h)] = true
	}
	p.methods = strings.Join(o.AllowedMethods, ", ")
	p.headers = strings.Join(o.AllowedHeaders, ", ")
	p.expose = strings.Join(o.ExposedHeaders, ", ")
	p.maxAge = strconv.Itoa(int(o.MaxAge.Seconds()))
	return p
}

// Enabled reports whether any origin is allowed.
func (p *Policy) Enabled() bool { return p.any || len(p.origins) > 0 }

func (p *Policy) allowOrigin(origin string) bool {
	return p.any || p.origins[strings.ToLower(origin)]
}

// Middleware adds CORS headers and answers preflights.
func (p *Policy) Middleware(next http.Handler) http.Handler {
	if !p.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		h := w.Header()
		if preflight {
			h.Add("Vary", "Origin")
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if origin != "" && p.allowOrigin(origin) && p.headersAllowed(r.Header.Get("Access-Control-Request-Headers")) {
				h.Set("Access-Control-Allow-Origin", p.originValue(origin))
				h.Set("Access-Control-Allow-Methods", p.methods)
				h.Set("Access-Control-Allow-Headers", p.headers)
				h.Set("Access-Control-Max-Age", p.maxAge)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Add("Vary", "Origin")
		if origin != "" && p.allowOrigin(origin) {
			h.Set("Access-Control-Allow-Origin", p.originValue(origin))
			h.Set("Access-Control-Expose-Headers", p.expose)
		}
		next.ServeHTTP(w, r)
	})
}

func (p *Policy) originValue(origin string) string {
	if p.any {
		return "*"
	}
	return origin
}

// headersAllowed checks the comma list of a preflight's Access-Control-Request-Headers.
func (p *Policy) headersAllowed(list string) bool {
	for _, h := range strings.Split(list, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && !p.allowed[h] {
			return false
		}
	}
	return true
}
