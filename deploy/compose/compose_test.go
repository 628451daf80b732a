package compose

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// contractEnv is the environment every Brook service understands (ARCHITECTURE.md).
var contractEnv = []string{
	"BROOK_KAFKA_BROKERS", "BROOK_CONSUL_ADDR", "BROOK_GRPC_ADDR", "BROOK_HTTP_ADDR",
	"BROOK_DATA_DIR", "BROOK_LOG_LEVEL", "BROOK_LOG_FORMAT", "BROOK_ADMIN_TOKEN",
	"BROOK_AUTH_JWT_SECRET", "BROOK_AUTH_JWKS_URL",
}

// contractPorts are the default ports of ARCHITECTURE.md's ports table.
var contractPorts = map[string]struct{ grpc, http string }{
	"bookshelf-commands": {":9001", ":8001"},
	"bookshelf-lastread": {":9002", ":8002"},
	"gateway":            {"", ":8080"},
}

func load(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(nil),
		cli.WithProfiles(profiles),
		cli.WithName("brook"),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	return p
}

func TestComposeServicesMatchContract(t *testing.T) {
	p := load(t)
	for _, name := range []string{"kafka", "consul", "topics", "bookshelf-commands", "bookshelf-lastread", "gateway"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %q missing from compose.yaml", name)
		}
	}
	for name, ports := range contractPorts {
		svc, ok := p.Services[name]
		if !ok {
			continue
		}
		if svc.Build == nil || svc.Build.Args["SERVICE"] == nil || *svc.Build.Args["SERVICE"] != name {
			t.Errorf("%s: must be built from the Dockerfile with SERVICE=%s", name, name)
		}
		documented := serviceSettings(t, name)
		for key := range svc.Environment {
			if strings.HasPrefix(key, "BROOK_") && !slices.Contains(contractEnv, key) && !documented[key] {
				t.Errorf("%s: env %s is neither in the contract nor documented in services/%s/config.yaml", name, key, name)
			}
		}
		for _, key := range []string{"BROOK_KAFKA_BROKERS", "BROOK_CONSUL_ADDR", "BROOK_HTTP_ADDR", "BROOK_DATA_DIR"} {
			if v := svc.Environment[key]; v == nil || *v == "" {
				t.Errorf("%s: env %s must be set", name, key)
			}
		}
		if got := deref(svc.Environment["BROOK_HTTP_ADDR"]); got != ports.http {
			t.Errorf("%s: BROOK_HTTP_ADDR = %q, contract says %q", name, got, ports.http)
		}
		if got := deref(svc.Environment["BROOK_GRPC_ADDR"]); got != ports.grpc {
			t.Errorf("%s: BROOK_GRPC_ADDR = %q, contract says %q", name, got, ports.grpc)
		}
		if svc.HealthCheck == nil || len(svc.HealthCheck.Test) == 0 {
			t.Errorf("%s: needs a healthcheck", name)
		}
		if svc.Restart == "" || svc.Restart == "no" {
			t.Errorf("%s: needs a restart policy", name)
		}
		if _, ok := svc.DependsOn["consul"]; !ok {
			t.Errorf("%s: must depend on consul", name)
		}
		if name != "gateway" {
			if len(svc.Ports) != 0 {
				t.Errorf("%s: publishes host ports %v; it could not be scaled out", name, svc.Ports)
			}
			if dep, ok := svc.DependsOn["topics"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s: must wait for the topics job to complete", name)
			}
			if !hasNamedVolume(p, svc, "/data") {
				t.Errorf("%s: bbolt data (/data) must be on a named volume", name)
			}
		}
	}
	gw := p.Services["gateway"]
	if !publishes(gw, 8080) {
		t.Errorf("gateway must publish 8080, has %v", gw.Ports)
	}
	if !publishes(p.Services["kafka"], 9092) || !publishes(p.Services["consul"], 8500) {
		t.Error("kafka must publish 9092 and consul 8500 for host tools (kafkapush, UI)")
	}
	if p.Services["topics"].Restart != "no" {
		t.Error("topics is a one-shot job: restart must be \"no\"")
	}
}

func TestComposeKafkaClusterProfile(t *testing.T) {
	single := load(t)
	if _, ok := single.Services["kafka-2"]; ok {
		t.Error("kafka-2 must only start with the kafka-cluster profile")
	}
	cluster := load(t, "kafka-cluster")
	for _, name := range []string{"kafka", "kafka-2", "kafka-3"} {
		if _, ok := cluster.Services[name]; !ok {
			t.Errorf("profile kafka-cluster: %s missing", name)
		}
	}
}

func TestDockerfileIsMultiStageStaticNonRoot(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile does not parse: %v", err)
	}
	var froms, users []string
	var staticBuild bool
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			froms = append(froms, n.Original)
		case "user":
			users = append(users, n.Next.Value)
		case "env":
			staticBuild = staticBuild || strings.Contains(n.Original, "CGO_ENABLED=0")
		}
	}
	if len(froms) < 2 {
		t.Errorf("want a multi-stage build, got stages %v", froms)
	}
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "root") || strings.HasPrefix(users[len(users)-1], "0") {
		t.Errorf("final image must run as a non-root user, USER lines: %v", users)
	}
	if !staticBuild {
		t.Error("binary must be static (CGO_ENABLED=0)")
	}
}

// serviceSettings returns the BROOK_* variables a service documents in its config.yaml
// (each setting's comment names its variable), so compose can only use real settings.
func serviceSettings(t *testing.T, service string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../services/" + service + "/config.yaml")
	if err != nil {
		t.Logf("%s: no config.yaml (%v); only contract variables allowed", service, err)
		return nil
	}
	return toSet(envRef.FindAllString(string(b), -1))
}

var envRef = regexp.MustCompile(`BROOK_[A-Z0-9_]+`)

func toSet(keys []string) map[string]bool {
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	return set
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func publishes(svc types.ServiceConfig, port uint32) bool {
	for _, p := range svc.Ports {
		if p.Target == port && p.Published != "" {
			return true
		}
	}
	return false
}

func hasNamedVolume(p *types.Project, svc types.ServiceConfig, target string) bool {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target {
			_, declared := p.Volumes[v.Source]
			return declared
		}
	}
	return false
}
