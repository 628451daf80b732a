package stack

import (
	"fmt"
	"slices"
	"strings"
)

// printReady prints the one line scripts and people wait for. It starts with
// "ready" and lists key=value pairs, URLs with "localhost" as a user types them:
//
//	ready gateway=http://localhost:8080 docs=http://localhost:8080/docs consul-ui=http://localhost:8500/ui kafka=localhost:9092 ...
func (s *stack) printReady() {
	s.log.Println(fmt.Sprintf("dev credentials: BROOK_ADMIN_TOKEN=%s BROOK_AUTH_JWT_SECRET=%s (mint a JWT: go run ./services/gateway token)",
		s.cfg.AdminToken, s.cfg.JWTSecret))
	s.cfg.Out.Println(ReadyLine(s.cfg, s.startedNames()))
}

func (s *stack) startedNames() []string {
	var names []string
	for _, v := range s.services {
		names = append(names, v.def.Name)
	}
	return names
}

// ReadyLine formats the ready line for cfg with the given services running.
func ReadyLine(cfg Config, running []string) string {
	parts := []string{"ready"}
	byName := map[string]int{}
	for _, def := range cfg.Services {
		byName[def.Name] = def.HTTPPort
	}
	if port, ok := byName["gateway"]; ok && slices.Contains(running, "gateway") {
		parts = append(parts,
			fmt.Sprintf("gateway=http://localhost:%d", port),
			fmt.Sprintf("docs=http://localhost:%d/docs", port))
	}
	if cfg.Consul {
		parts = append(parts,
			fmt.Sprintf("consul-ui=http://localhost:%d/ui", cfg.ConsulHTTPPort),
			fmt.Sprintf("consul=localhost:%d", cfg.ConsulHTTPPort),
			fmt.Sprintf("consul-dns=localhost:%d", cfg.ConsulDNSPort))
	}
	if cfg.Kafka {
		parts = append(parts, fmt.Sprintf("kafka=localhost:%d", cfg.KafkaPort))
	}
	for _, name := range running {
		parts = append(parts, fmt.Sprintf("%s.metrics=http://localhost:%d/metrics", name, byName[name]))
	}
	return strings.Join(parts, " ")
}
