package main

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// config.yaml documents the defaults: loading it must give exactly defaultConfig() (plus the
// brokers, which have no default).
func TestConfigYAMLMatchesDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"--config", "config.yaml"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.Kafka.Brokers = []string{"localhost:9092"}
	if cfg.Service != want.Service || cfg.GRPC != want.GRPC || cfg.HTTP != want.HTTP || cfg.Data != want.Data ||
		cfg.Log != want.Log || strings.Join(cfg.Kafka.Brokers, ",") != "localhost:9092" ||
		cfg.Consul != want.Consul || cfg.Admin != want.Admin || cfg.Outbox != want.Outbox || cfg.Idempotency != want.Idempotency {
		t.Fatalf("config.yaml differs from the defaults:\n got %+v\nwant %+v", cfg, want)
	}
}

func TestConfigPrecedenceAndErrors(t *testing.T) {
	cfg, err := loadConfig([]string{"--outbox.batch_size", "7"}, env(map[string]string{
		"BROOK_KAFKA_BROKERS": "k1:9092, k2:9092", "BROOK_OUTBOX_POLL_INTERVAL": "250ms", "BROOK_OUTBOX_BATCH_SIZE": "9",
		"BROOK_IDEMPOTENCY_RETENTION": "72h",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Kafka.Brokers) != 2 || cfg.Outbox.PollInterval != 250*time.Millisecond || cfg.Outbox.BatchSize != 7 ||
		cfg.Idempotency.Retention != 72*time.Hour || cfg.Idempotency.SweepInterval != time.Minute {
		t.Fatalf("got %+v", cfg)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "kafka.brokers"},
		{map[string]string{"BROOK_KAFKA_BROKERS": "k:9092", "BROOK_OUTBOX_POLL_INTERVAL": "0s"}, "outbox.poll_interval"},
		{map[string]string{"BROOK_KAFKA_BROKERS": "k:9092", "BROOK_OUTBOX_PARTITIONS": "0"}, "BROOK_OUTBOX_PARTITIONS"},
		{map[string]string{"BROOK_KAFKA_BROKERS": "k:9092", "BROOK_OUTBOX_TOPIC": " "}, "outbox.topic"},
		{map[string]string{"BROOK_KAFKA_BROKERS": "k:9092", "BROOK_IDEMPOTENCY_RETENTION": "0s"}, "BROOK_IDEMPOTENCY_RETENTION"},
		{map[string]string{"BROOK_KAFKA_BROKERS": "k:9092", "BROOK_IDEMPOTENCY_SWEEP_INTERVAL": "-1m"}, "idempotency.sweep_interval"},
	} {
		if _, err := loadConfig(nil, env(c.env)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %v: want an error naming %s, got %v", c.env, c.want, err)
		}
	}
}
