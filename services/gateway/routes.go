package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"

	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
	"github.com/brook-dev/brook/services/gateway/internal/proxy"
)

// RouteConfig exposes a service's own REST API under a path prefix, by configuration (see
// internal/proxy). In YAML a route is a mapping:
//
//	routes:
//	  - prefix: /v1/authors
//	    service: bookshelf-authors
//	    auth: writes          # writes | all | none; default: writes (all when auth.reads_open=false)
//	    strip_prefix: false   # true: /v1/authors/x reaches the service as /x
//	    timeout: 10s          # default: backends.timeout
//
// In BROOK_ROUTES and --routes (comma-separated, like every list) a route is compact:
// PREFIX=SERVICE, optionally followed by ;key=value options:
//
//	BROOK_ROUTES='/v1/authors=bookshelf-authors,/v1/stats=stats;auth=all;strip_prefix=true;timeout=5s'
type RouteConfig struct {
	Prefix      string        `mapstructure:"prefix"`
	Service     string        `mapstructure:"service"`
	Auth        string        `mapstructure:"auth"`
	StripPrefix bool          `mapstructure:"strip_prefix"`
	Timeout     time.Duration `mapstructure:"timeout"`

	// err is a syntax error found while decoding, reported by Config.Validate so that the
	// message names the key and its variable like every other configuration error.
	err error
}

// routeFields is RouteConfig without its decoding method (no recursion).
type routeFields RouteConfig

// UnmarshalMapstructure decodes one route from a YAML mapping or a compact string.
func (r *RouteConfig) UnmarshalMapstructure(input any) error {
	if s, ok := input.(string); ok {
		*r = parseCompactRoute(s)
		return nil
	}
	var f routeFields
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &f,
		WeaklyTypedInput: true,
		ErrorUnused:      true, // a misspelt key must not be ignored
		DecodeHook:       mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		return err
	}
	if err := dec.Decode(input); err != nil {
		*r = RouteConfig{err: err}
		return nil
	}
	*r = RouteConfig(f)
	return nil
}

// parseCompactRoute reads PREFIX=SERVICE[;auth=...][;strip_prefix=...][;timeout=...].
func parseCompactRoute(s string) RouteConfig {
	parts := strings.Split(s, ";")
	prefix, svc, ok := strings.Cut(parts[0], "=")
	r := RouteConfig{Prefix: strings.TrimSpace(prefix), Service: strings.TrimSpace(svc)}
	if !ok {
		r.err = fmt.Errorf("%q is not PREFIX=SERVICE[;auth=writes|all|none][;strip_prefix=true][;timeout=10s]", s)
		return r
	}
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "auth":
			r.Auth = v
		case "strip_prefix":
			switch strings.ToLower(v) {
			case "true", "1", "yes", "":
				r.StripPrefix = true
			case "false", "0", "no":
			default:
				r.err = fmt.Errorf("%q: strip_prefix must be true or false, got %q", s, v)
			}
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				r.err = fmt.Errorf("%q: timeout %q is not a duration like 5s", s, v)
			}
			r.Timeout = d
		default:
			r.err = fmt.Errorf("%q: unknown option %q (want auth, strip_prefix or timeout)", s, k)
		}
		if r.err != nil {
			return r
		}
	}
	return r
}

// builtinPrefixes are the grpc-gateway routes of the bookshelf services (ARCHITECTURE.md); a
// configured route may neither shadow them nor sit below them.
var builtinPrefixes = []string{"/v1/books", "/v1/last-read"}

var (
	// prefixRe: "/v1/" and one or more plain path segments (no ServeMux wildcards, no escapes).
	prefixRe = regexp.MustCompile(`^/v1(/[A-Za-z0-9._~-]+)+$`)
	// serviceRe: a DNS label, so the service is also reachable over Consul DNS.
	serviceRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// validateRoutes checks every route and that no two claim the same prefix.
func (c Config) validateRoutes() error {
	seen := map[string]int{}
	for i, r := range c.Routes {
		item := fmt.Sprintf("item %d", i+1)
		if r.err != nil {
			return config.Invalid("routes", "%s: %v", item, r.err)
		}
		p := strings.TrimSuffix(r.Prefix, "/")
		if !prefixRe.MatchString(p) || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
			strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
			return config.Invalid("routes", "%s: prefix must be /v1/ followed by path segments of letters, digits and ._~- (e.g. /v1/authors), got %q", item, r.Prefix)
		}
		for _, b := range builtinPrefixes {
			if p == b || strings.HasPrefix(p, b+"/") || strings.HasPrefix(b, p+"/") {
				return config.Invalid("routes", "%s: prefix %q collides with the built-in %s routes", item, r.Prefix, b)
			}
		}
		if j, dup := seen[p]; dup {
			return config.Invalid("routes", "%s: prefix %q is already routed by item %d", item, r.Prefix, j)
		}
		seen[p] = i + 1
		if !serviceRe.MatchString(r.Service) {
			return config.Invalid("routes", "%s (%s): service must be a Consul service name (letters, digits, '-'; at most 63), got %q", item, p, r.Service)
		}
		if r.Auth != "" {
			if _, err := auth.ParseMode(r.Auth); err != nil {
				return config.Invalid("routes", "%s (%s): auth %v", item, p, err)
			}
		}
		if r.Timeout < 0 {
			return config.Invalid("routes", "%s (%s): timeout must not be negative, got %s", item, p, r.Timeout)
		}
	}
	if len(c.Routes) > 0 && c.Consul.Addr == "" {
		return config.Invalid("consul.addr", "must be set: routes find their services through Consul")
	}
	return nil
}

// proxyRoute is r with the defaults applied: the auth mode follows auth.reads_open, the timeout
// backends.timeout.
func (c Config) proxyRoute(r RouteConfig) (proxy.Route, auth.Mode) {
	mode := auth.ModeWrites
	if !c.Auth.ReadsOpen {
		mode = auth.ModeAll
	}
	if r.Auth != "" {
		mode, _ = auth.ParseMode(r.Auth) // validated
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = c.Backends.Timeout
	}
	return proxy.Route{
		Prefix:      strings.TrimSuffix(r.Prefix, "/"),
		Service:     r.Service,
		StripPrefix: r.StripPrefix,
		Timeout:     timeout,
	}, mode
}
