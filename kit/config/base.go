package config

import (
	"strings"

	kitlog "github.com/brook-dev/brook/kit/log"
)

// DefaultMaxBodyBytes is the default limit on an HTTP request body (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Base holds the settings every Brook service shares, with the environment variable names of
// the contract (ARCHITECTURE.md, "Environment"). Embed it with `mapstructure:",squash"`:
//
//	type Config struct {
//		config.Base `mapstructure:",squash"`
//		Topic string `mapstructure:"topic"` // BROOK_TOPIC
//	}
//
// Base implements Validator; a service that defines its own Validate should call
// c.Base.Validate() first.
type Base struct {
	Service string       `mapstructure:"service"` // BROOK_SERVICE: Consul name and log field
	GRPC    GRPCConfig   `mapstructure:"grpc"`
	HTTP    HTTPConfig   `mapstructure:"http"`
	Data    DataConfig   `mapstructure:"data"`
	Log     LogConfig    `mapstructure:"log"`
	Kafka   KafkaConfig  `mapstructure:"kafka"`
	Consul  ConsulConfig `mapstructure:"consul"`
	Admin   AdminConfig  `mapstructure:"admin"`
}

// GRPCConfig: the gRPC listener.
type GRPCConfig struct {
	Addr string `mapstructure:"addr"` // BROOK_GRPC_ADDR, e.g. ":9001"; "" = no gRPC server
}

// HTTPConfig: the HTTP listener (REST, health, metrics, management).
type HTTPConfig struct {
	Addr         string `mapstructure:"addr"`           // BROOK_HTTP_ADDR, e.g. ":8001"
	MaxBodyBytes int64  `mapstructure:"max_body_bytes"` // BROOK_HTTP_MAX_BODY_BYTES; 0 = 1 MiB
}

// DataConfig: where a service keeps its files (bbolt stores).
type DataConfig struct {
	Dir string `mapstructure:"dir"` // BROOK_DATA_DIR
}

// LogConfig: kit/log settings.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // BROOK_LOG_LEVEL: debug|info|warn|error
	Format string `mapstructure:"format"` // BROOK_LOG_FORMAT: json|text
}

// KafkaConfig: the brokers to bootstrap from.
type KafkaConfig struct {
	Brokers []string `mapstructure:"brokers"` // BROOK_KAFKA_BROKERS, comma list
}

// ConsulConfig: service registration.
type ConsulConfig struct {
	Addr string `mapstructure:"addr"` // BROOK_CONSUL_ADDR, "" = no registration
	// Advertise is the host other processes (and Consul's checks) use to reach this one
	// (BROOK_CONSUL_ADVERTISE). Empty = the listener's host when it is a specific one, else
	// kit/registry's default (the local address facing the Consul agent).
	Advertise string `mapstructure:"advertise"`
}

// AdminConfig: the management endpoints.
type AdminConfig struct {
	Token string `mapstructure:"token"` // BROOK_ADMIN_TOKEN, "" = management writes disabled (403)
}

// DefaultBase returns the defaults a service starts from: its name and listen addresses,
// info-level JSON logs, data under ./data/<service>, a 1 MiB body limit.
func DefaultBase(service, grpcAddr, httpAddr string) Base {
	return Base{
		Service: service,
		GRPC:    GRPCConfig{Addr: grpcAddr},
		HTTP:    HTTPConfig{Addr: httpAddr, MaxBodyBytes: DefaultMaxBodyBytes},
		Data:    DataConfig{Dir: "data/" + service},
		Log:     LogConfig{Level: "info", Format: "json"},
	}
}

// Validate checks the shared settings.
func (b Base) Validate() error {
	switch {
	case strings.TrimSpace(b.Service) == "":
		return Invalid("service", "must not be empty")
	case b.HTTP.Addr == "":
		return Invalid("http.addr", "must not be empty")
	case b.HTTP.MaxBodyBytes < 0:
		return Invalid("http.max_body_bytes", "must not be negative, got %d", b.HTTP.MaxBodyBytes)
	}
	if _, err := kitlog.ParseLevel(b.Log.Level); err != nil {
		return Invalid("log.level", "must be debug, info, warn or error, got %q", b.Log.Level)
	}
	switch strings.ToLower(b.Log.Format) {
	case "", "json", "text":
	default:
		return Invalid("log.format", "must be json or text, got %q", b.Log.Format)
	}
	for i, br := range b.Kafka.Brokers {
		if !strings.Contains(br, ":") {
			return Invalid("kafka.brokers", "item %d %q is not host:port", i, br)
		}
	}
	return nil
}

// RequireBrokers is for services that need Kafka: it fails when kafka.brokers is empty.
func (b Base) RequireBrokers() error {
	if len(b.Kafka.Brokers) == 0 {
		return Invalid("kafka.brokers", "must not be empty")
	}
	return nil
}
