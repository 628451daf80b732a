package main

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/brook-dev/brook/kit/config"
)

func noEnv(string) (string, bool) { return "", false }

// config.yaml documents the defaults: loading it must give exactly defaultConfig().
func TestConfigYAMLIsTheDefaults(t *testing.T) {
	var cfg Config
	if err := config.Load(&cfg, config.WithDefaults(defaultConfig()), config.WithFile("config.yaml"), config.WithEnv(noEnv)); err != nil {
		t.Fatal(err)
	}
	if want := defaultConfig(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("config.yaml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigEnvAndValidation(t *testing.T) {
	env := map[string]string{"BROOK_VIEW_GROUP": "lastread-2", "BROOK_VIEW_CATCH_UP": "false", "BROOK_KAFKA_BROKERS": "a:1,b:2"}
	var cfg Config
	err := config.Load(&cfg, config.WithDefaults(defaultConfig()), config.WithEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.View.Group != "lastread-2" || cfg.View.CatchUp || len(cfg.Kafka.Brokers) != 2 || cfg.View.DLQ != "bookshelf-lastread.dlq" {
		t.Fatalf("cfg = %+v", cfg)
	}

	for key, val := range map[string]string{
		"view.topic": "BROOK_VIEW_TOPIC= ", "view.dlq": "BROOK_VIEW_DLQ=bookshelf", "kafka.brokers": "BROOK_KAFKA_BROKERS= ",
		"data.dir": "BROOK_DATA_DIR= ",
	} {
		k, v, _ := strings.Cut(val, "=")
		var cfg Config
		err := config.Load(&cfg, config.WithDefaults(defaultConfig()), config.WithEnv(func(name string) (string, bool) {
			if name == k {
				return v, true
			}
			return "", false
		}))
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != key {
			t.Errorf("%s: err = %v, want a FieldError naming %s", val, err, key)
		}
	}
}

func TestConfigHostnamePlaceholder(t *testing.T) {
	cfg := defaultConfig()
	cfg.View.Group = "bookshelf-lastread-{hostname}"
	cfg.Data.Dir = "/data/{hostname}"
	cfg.expand("c0ffee")
	if cfg.View.Group != "bookshelf-lastread-c0ffee" || cfg.viewPath() != "/data/c0ffee/view.db" {
		t.Fatalf("expanded: group %q, view %q", cfg.View.Group, cfg.viewPath())
	}
	def := defaultConfig()
	def.expand("c0ffee")
	if !reflect.DeepEqual(def, defaultConfig()) {
		t.Fatal("expand changed a config without placeholders")
	}
}

// view.event_log_level picks the level of the consumer's per-event DONE line; anything but
// debug|info|warn stops the start naming the key.
func TestConfigEventLogLevel(t *testing.T) {
	load := func(val string, set bool) (Config, error) {
		var cfg Config
		err := config.Load(&cfg, config.WithDefaults(defaultConfig()), config.WithEnv(func(name string) (string, bool) {
			if set && name == "BROOK_VIEW_EVENT_LOG_LEVEL" {
				return val, true
			}
			return "", false
		}))
		return cfg, err
	}
	cfg, err := load("", false)
	if err != nil {
		t.Fatal(err)
	}
	if lvl, err := cfg.View.eventLogLevel(); err != nil || lvl != slog.LevelDebug {
		t.Fatalf("default: level %v (%v), want debug", lvl, err)
	}
	for val, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		cfg, err := load(val, true)
		if err != nil {
			t.Fatalf("%q: %v", val, err)
		}
		if lvl, err := cfg.View.eventLogLevel(); err != nil || lvl != want {
			t.Errorf("%q: level %v (%v), want %v", val, lvl, err, want)
		}
	}
	for _, val := range []string{"verbose", "1"} {
		_, err := load(val, true)
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Key != "view.event_log_level" || !strings.Contains(err.Error(), "BROOK_VIEW_EVENT_LOG_LEVEL") {
			t.Errorf("%q: err = %v, want a FieldError naming view.event_log_level", val, err)
		}
	}
}
