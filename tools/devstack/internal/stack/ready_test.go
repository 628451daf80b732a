package stack

import (
	"testing"

	"github.com/brook-dev/brook/tools/devstack/internal/catalog"
)

func TestReadyLineListsWhatRuns(t *testing.T) {
	cfg := Config{Kafka: true, KafkaPort: 9092, Consul: true, ConsulHTTPPort: 8500, ConsulDNSPort: 8600,
		Services: catalog.Default()}
	all := []string{"bookshelf-commands", "bookshelf-lastread", "gateway"}
	want := "ready gateway=http://localhost:8080 docs=http://localhost:8080/docs" +
		" consul-ui=http://localhost:8500/ui consul=localhost:8500 consul-dns=localhost:8600 kafka=localhost:9092" +
		" bookshelf-commands.metrics=http://localhost:8001/metrics" +
		" bookshelf-lastread.metrics=http://localhost:8002/metrics" +
		" gateway.metrics=http://localhost:8080/metrics"
	if got := ReadyLine(cfg, all); got != want {
		t.Errorf("full stack:\n got %q\nwant %q", got, want)
	}

	cfg.Services = nil
	cfg.Kafka = false
	if got, want := ReadyLine(cfg, nil), "ready consul-ui=http://localhost:8500/ui consul=localhost:8500 consul-dns=localhost:8600"; got != want {
		t.Errorf("consul only:\n got %q\nwant %q", got, want)
	}
}
