package main

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
)

func load(t *testing.T, env map[string]string, opts ...config.Option) (Config, error) {
	t.Helper()
	cfg := defaultConfig()
	opts = append(opts, config.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	err := config.Load(&cfg, opts...)
	return cfg, err
}

func TestConfigDefaultsAndEnv(t *testing.T) {
	cfg, err := load(t, map[string]string{
		"BROOK_AUTH_JWT_SECRET":            "s3cret",
		"BROOK_CONSUL_ADDR":                "127.0.0.1:8500",
		"BROOK_AUTH_READS_OPEN":            "false",
		"BROOK_RATE_LIMIT_RPS":             "2.5",
		"BROOK_CORS_ALLOWED_ORIGINS":       "https://a.example, https://b.example",
		"BROOK_RATE_LIMIT_TRUSTED_PROXIES": "10.0.0.0/8",
		"BROOK_BACKENDS_TIMEOUT":           "3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.GRPC.Addr != "" || cfg.Service != "gateway" {
		t.Errorf("defaults: http %q grpc %q service %q", cfg.HTTP.Addr, cfg.GRPC.Addr, cfg.Service)
	}
	if cfg.Auth.ReadsOpen || cfg.RateLimit.RPS != 2.5 || cfg.RateLimit.Burst != 200 ||
		!reflect.DeepEqual(cfg.CORS.AllowedOrigins, []string{"https://a.example", "https://b.example"}) ||
		cfg.Backends.Timeout.String() != "3s" || cfg.Backends.LastRead != "consul:///bookshelf-lastread" {
		t.Errorf("loaded %+v", cfg)
	}
	cfg, err = load(t, map[string]string{"BROOK_AUTH_JWT_SECRET": "s", "BROOK_CONSUL_ADDR": "c:8500"})
	if err != nil || !cfg.Auth.ReadsOpen {
		t.Errorf("reads_open default: %v %v", cfg.Auth.ReadsOpen, err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	base := map[string]string{"BROOK_CONSUL_ADDR": "127.0.0.1:8500", "BROOK_AUTH_JWT_SECRET": "s"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		env  map[string]string
		want string
	}{
		{with("BROOK_AUTH_JWT_SECRET", ""), "auth.jwt_secret: must be set"},
		{with("BROOK_AUTH_JWKS_URL", "https://idp.example/jwks.json"), "auth.jwks_url: set only one"},
		{with("BROOK_AUTH_JWT_SECRET", "", "BROOK_AUTH_JWKS_URL", "idp.example/jwks"), "auth.jwks_url: must be an http(s) URL"},
		{with("BROOK_CONSUL_ADDR", ""), "consul.addr: must be set"},
		{with("BROOK_RATE_LIMIT_RPS", "-1"), "rate_limit.rps"},
		{with("BROOK_RATE_LIMIT_BURST", "0"), "rate_limit.burst"},
		{with("BROOK_RATE_LIMIT_TRUSTED_PROXIES", "10.0.0.0/33"), "rate_limit.trusted_proxies"},
		{with("BROOK_CORS_ALLOWED_ORIGINS", "app.example.com"), "cors.allowed_origins"},
		{with("BROOK_BACKENDS_TIMEOUT", "0s"), "backends.timeout"},
		{with("BROOK_BACKENDS_LASTREAD", " "), "backends.lastread"},
	}
	for _, tc := range cases {
		_, err := load(t, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
	// The JWKS alone is fine, and so are static backends without Consul.
	if _, err := load(t, with("BROOK_AUTH_JWT_SECRET", "", "BROOK_AUTH_JWKS_URL", "https://idp.example/jwks.json")); err != nil {
		t.Error(err)
	}
	if _, err := load(t, map[string]string{"BROOK_AUTH_JWT_SECRET": "s", "BROOK_BACKENDS_COMMANDS": "127.0.0.1:9001", "BROOK_BACKENDS_LASTREAD": "dns:///lastread:9002"}); err != nil {
		t.Error(err)
	}
}

// TestConfigFileDocumentsEveryKey: config.yaml loads as it is, and names every setting.
func TestConfigFileDocumentsEveryKey(t *testing.T) {
	if _, err := load(t, map[string]string{"BROOK_AUTH_JWT_SECRET": "s", "BROOK_CONSUL_ADDR": "c:8500"}, config.WithFile("config.yaml")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if opts == "squash" {
				walk(f.Type, prefix)
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Duration" {
				walk(f.Type, prefix+name+".")
				continue
			}
			section := strings.TrimSuffix(prefix, ".")
			if !strings.Contains(text, name+":") || (section != "" && !strings.Contains(text, section+":")) {
				t.Errorf("config.yaml does not mention %s%s", prefix, name)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

func TestTokenCommand(t *testing.T) {
	t.Setenv("BROOK_AUTH_JWT_SECRET", testSecret)
	t.Setenv("BROOK_AUTH_AUDIENCE", "brook-api")
	var out bytes.Buffer
	cmd := rootCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"token", "--sub", "alice", "--ttl", "5m"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewHMAC([]byte(testSecret), auth.Options{Audience: "brook-api"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(context.Background(), strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token %q does not verify: %v", out.String(), err)
	}
	if c.Subject != "alice" || c.ExpiresAt.Sub(c.IssuedAt.Time).String() != "5m0s" {
		t.Errorf("claims %+v", c)
	}

	t.Setenv("BROOK_AUTH_JWT_SECRET", "")
	cmd = rootCommand()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"token", "--sub", "alice"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "auth.jwt_secret") {
		t.Errorf("without a secret: %v", err)
	}
}
