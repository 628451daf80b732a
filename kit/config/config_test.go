package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/brook-dev/brook/kit/config"
)

// testConfig is shaped like a service config: Base squashed, plus keys containing "_".
type testConfig struct {
	config.Base `mapstructure:",squash"`
	Auth        struct {
		JWTSecret string `mapstructure:"jwt_secret"`
		JWKSURL   string `mapstructure:"jwks_url"`
	} `mapstructure:"auth"`
	Topic    string `mapstructure:"topic"`
	MaxItems int    `mapstructure:"max_items"`
}

func (c testConfig) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if c.MaxItems > 100 {
		return config.Invalid("max_items", "must be at most 100, got %d", c.MaxItems)
	}
	return nil
}

func defaults() testConfig {
	c := testConfig{Base: config.DefaultBase("svc", ":9001", ":8001"), Topic: "from-default", MaxItems: 5}
	c.Kafka.Brokers = []string{"default:9092", "default2:9092"}
	return c
}

func env(m map[string]string) config.Option {
	return config.WithEnv(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "brook.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	if err := config.AddFlags(fs, defaults()); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestPrecedence checks each layer overrides the one below it, key by key.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
topic: from-file
grpc:
  addr: ":7001"
http:
  addr: ":7002"
kafka:
  brokers: [file:9092]
auth:
  jwt_secret: file-secret
max_items: 7
`)
	e := env(map[string]string{
		"BROOK_HTTP_ADDR":           ":6002",
		"BROOK_KAFKA_BROKERS":       "env1:9092, env2:9092",
		"BROOK_AUTH_JWT_SECRET":     "env-secret",
		"BROOK_AUTH_JWKS_URL":       "http://jwks",
		"BROOK_MAX_ITEMS":           "8",
		"BROOK_CONSUL_ADDR":         "127.0.0.1:8500",
		"BROOK_HTTP_MAX_BODY_BYTES": "2048",
	})
	fs := flags(t, "--http.addr=:5002", "--max_items=9")

	var got testConfig
	if err := config.Load(&got, config.WithDefaults(defaults()), config.WithFile(file), e, config.WithFlags(fs)); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"service: default only", got.Service, "svc"},
		{"log.format: default only", got.Log.Format, "json"},
		{"topic: file beats default", got.Topic, "from-file"},
		{"grpc.addr: file beats default", got.GRPC.Addr, ":7001"},
		{"kafka.brokers: env beats file, comma list trimmed", got.Kafka.Brokers, []string{"env1:9092", "env2:9092"}},
		{"auth.jwt_secret: env beats file (key with _)", got.Auth.JWTSecret, "env-secret"},
		{"auth.jwks_url: env only", got.Auth.JWKSURL, "http://jwks"},
		{"consul.addr: env only", got.Consul.Addr, "127.0.0.1:8500"},
		{"http.max_body_bytes: env, typed", got.HTTP.MaxBodyBytes, int64(2048)},
		{"http.addr: flag beats env and file", got.HTTP.Addr, ":5002"},
		{"max_items: flag beats env, file, default", got.MaxItems, 9},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestDefaultsFromDestinationAndListReplacement(t *testing.T) {
	got := defaults()
	if err := config.Load(&got, env(map[string]string{"BROOK_KAFKA_BROKERS": "only:9092"})); err != nil {
		t.Fatal(err)
	}
	// A shorter list from the environment replaces the default, it is not merged into it.
	if want := []string{"only:9092"}; !reflect.DeepEqual(got.Kafka.Brokers, want) {
		t.Fatalf("brokers = %v, want %v", got.Kafka.Brokers, want)
	}
	if got.Topic != "from-default" || got.GRPC.Addr != ":9001" {
		t.Fatalf("defaults lost: %+v", got)
	}
}

func TestRealEnvironment(t *testing.T) {
	t.Setenv("BROOK_GRPC_ADDR", ":4001")
	t.Setenv("BROOK_CONSUL_ADDR", "") // set but empty: explicitly disables
	d := defaults()
	d.Consul.Addr = "consul:8500"
	var got testConfig
	if err := config.Load(&got, config.WithDefaults(d)); err != nil {
		t.Fatal(err)
	}
	if got.GRPC.Addr != ":4001" || got.Consul.Addr != "" {
		t.Fatalf("grpc.addr=%q consul.addr=%q", got.GRPC.Addr, got.Consul.Addr)
	}
}

func TestErrorsNameKeyAndEnv(t *testing.T) {
	tests := []struct {
		name string
		opts []config.Option
		want string
	}{
		{"validation", []config.Option{env(map[string]string{"BROOK_MAX_ITEMS": "500"})},
			"config: max_items: must be at most 100, got 500 (env BROOK_MAX_ITEMS)"},
		{"base validation", []config.Option{env(map[string]string{"BROOK_LOG_FORMAT": "xml"})},
			`config: log.format: must be json or text, got "xml" (env BROOK_LOG_FORMAT)`},
		{"type error", []config.Option{env(map[string]string{"BROOK_HTTP_MAX_BODY_BYTES": "lots"})},
			"config: http.max_body_bytes: "},
		{"bad broker", []config.Option{env(map[string]string{"BROOK_KAFKA_BROKERS": "nohost"})},
			`config: kafka.brokers: item 0 "nohost" is not host:port (env BROOK_KAFKA_BROKERS)`},
		{"unknown file key", []config.Option{config.WithFile(writeFile(t, "kafka:\n  broker: [x:1]\n"))},
			`unknown key "kafka.broker"`},
		{"missing file", []config.Option{config.WithFile("/nonexistent/brook.yaml")},
			"config: read /nonexistent/brook.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := defaults()
			before := got.Topic
			// The empty environment first, so the real one cannot interfere; a test's own WithEnv wins.
			err := config.Load(&got, append([]config.Option{env(nil)}, tt.opts...)...)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
			if got.Topic != before {
				t.Fatal("destination changed on error")
			}
		})
	}
	var fe *config.FieldError
	got := defaults()
	err := config.Load(&got, env(map[string]string{"BROOK_HTTP_MAX_BODY_BYTES": "lots"}))
	if !errors.As(err, &fe) || fe.Key != "http.max_body_bytes" || fe.Env != "BROOK_HTTP_MAX_BODY_BYTES" {
		t.Fatalf("want a FieldError naming http.max_body_bytes, got %#v", err)
	}
	t.Log(err)
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"kafka.brokers":   "BROOK_KAFKA_BROKERS",
		"grpc.addr":       "BROOK_GRPC_ADDR",
		"auth.jwt_secret": "BROOK_AUTH_JWT_SECRET",
	} {
		if got := config.EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestAmbiguousKeysRejected(t *testing.T) {
	var c struct {
		A struct {
			BC string `mapstructure:"b_c"`
		} `mapstructure:"a"`
		AB struct {
			C string `mapstructure:"c"`
		} `mapstructure:"a_b"`
	}
	if err := config.Load(&c, env(nil)); err == nil || !strings.Contains(err.Error(), "BROOK_A_B_C") {
		t.Fatalf("want an ambiguity error, got %v", err)
	}
}
