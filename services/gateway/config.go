package main

import (
	"net/url"
	"strings"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/services/gateway/internal/ratelimit"
)

// Config is the gateway's configuration: defaults < config.yaml (--config) < BROOK_* env <
// flags. config.yaml next to this file documents every key.
type Config struct {
	config.Base `mapstructure:",squash"`
	Auth        AuthConfig      `mapstructure:"auth"`
	RateLimit   RateLimitConfig `mapstructure:"rate_limit"`
	CORS        CORSConfig      `mapstructure:"cors"`
	Backends    BackendsConfig  `mapstructure:"backends"`
	// Routes expose services' own REST APIs by configuration (routes.go, internal/proxy).
	Routes []RouteConfig `mapstructure:"routes"` // BROOK_ROUTES: PREFIX=SERVICE[;opt=v],...
}

// AuthConfig: exactly one of JWTSecret and JWKSURL.
type AuthConfig struct {
	JWTSecret string `mapstructure:"jwt_secret"` // BROOK_AUTH_JWT_SECRET: HS256 (development)
	JWKSURL   string `mapstructure:"jwks_url"`   // BROOK_AUTH_JWKS_URL: RS256/ES256 keys (production)
	Issuer    string `mapstructure:"issuer"`     // BROOK_AUTH_ISSUER: required "iss" when set
	Audience  string `mapstructure:"audience"`   // BROOK_AUTH_AUDIENCE: required in "aud" when set
	ReadsOpen bool   `mapstructure:"reads_open"` // BROOK_AUTH_READS_OPEN: GET without a token
}

// RateLimitConfig: a token bucket per client.
type RateLimitConfig struct {
	RPS            float64  `mapstructure:"rps"`             // BROOK_RATE_LIMIT_RPS; 0 = off
	Burst          int      `mapstructure:"burst"`           // BROOK_RATE_LIMIT_BURST
	MaxClients     int      `mapstructure:"max_clients"`     // BROOK_RATE_LIMIT_MAX_CLIENTS
	TrustedProxies []string `mapstructure:"trusted_proxies"` // BROOK_RATE_LIMIT_TRUSTED_PROXIES
}

// CORSConfig: browser access from other origins.
type CORSConfig struct {
	AllowedOrigins []string `mapstructure:"allowed_origins"` // BROOK_CORS_ALLOWED_ORIGINS; empty = off
}

// BackendsConfig: where the bookshelf services are and how long to wait for them.
type BackendsConfig struct {
	Commands string        `mapstructure:"commands"` // BROOK_BACKENDS_COMMANDS: gRPC target
	LastRead string        `mapstructure:"lastread"` // BROOK_BACKENDS_LASTREAD: gRPC target
	Timeout  time.Duration `mapstructure:"timeout"`  // BROOK_BACKENDS_TIMEOUT: per call
}

// defaultConfig: HTTP on :8080, no gRPC port, backends discovered through Consul.
func defaultConfig() Config {
	return Config{
		Base:      config.DefaultBase(bookshelfv1.ServiceGateway, "", ":8080"),
		Auth:      AuthConfig{ReadsOpen: true},
		RateLimit: RateLimitConfig{RPS: 100, Burst: 200, MaxClients: 10000},
		Backends: BackendsConfig{
			Commands: "consul:///" + bookshelfv1.ServiceCommands,
			LastRead: "consul:///" + bookshelfv1.ServiceLastRead,
			Timeout:  10 * time.Second,
		},
	}
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	switch secret, jwks := c.Auth.JWTSecret != "", c.Auth.JWKSURL != ""; {
	case !secret && !jwks:
		return config.Invalid("auth.jwt_secret", "must be set (HS256 secret), or set auth.jwks_url (%s) instead", config.EnvName("auth.jwks_url"))
	case secret && jwks:
		return config.Invalid("auth.jwks_url", "set only one of auth.jwt_secret (%s) and auth.jwks_url", config.EnvName("auth.jwt_secret"))
	case jwks:
		u, err := url.Parse(c.Auth.JWKSURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return config.Invalid("auth.jwks_url", "must be an http(s) URL, got %q", c.Auth.JWKSURL)
		}
	}
	if c.RateLimit.RPS < 0 {
		return config.Invalid("rate_limit.rps", "must not be negative, got %g", c.RateLimit.RPS)
	}
	if c.RateLimit.RPS > 0 && c.RateLimit.Burst < 1 {
		return config.Invalid("rate_limit.burst", "must be at least 1 when rate_limit.rps is set, got %d", c.RateLimit.Burst)
	}
	if c.RateLimit.MaxClients < 1 {
		return config.Invalid("rate_limit.max_clients", "must be at least 1, got %d", c.RateLimit.MaxClients)
	}
	for _, p := range c.RateLimit.TrustedProxies {
		if _, err := ratelimit.ParsePrefix(p); err != nil {
			return config.Invalid("rate_limit.trusted_proxies", "%q is not an IP or CIDR", p)
		}
	}
	for _, o := range c.CORS.AllowedOrigins {
		if o == "*" {
			continue
		}
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return config.Invalid("cors.allowed_origins", "%q is not an origin like https://app.example.com or *", o)
		}
	}
	for _, b := range [][2]string{{"backends.commands", c.Backends.Commands}, {"backends.lastread", c.Backends.LastRead}} {
		key, target := b[0], b[1]
		if strings.TrimSpace(target) == "" {
			return config.Invalid(key, "must not be empty (e.g. consul:///name or host:port)")
		}
		if strings.HasPrefix(target, "consul:") && c.Consul.Addr == "" {
			return config.Invalid("consul.addr", "must be set: %s is %s, discovered through Consul", key, target)
		}
	}
	if c.Backends.Timeout <= 0 {
		return config.Invalid("backends.timeout", "must be positive, got %s", c.Backends.Timeout)
	}
	return c.validateRoutes()
}
