package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/consultest"
)

// Names from the public contract (ARCHITECTURE.md, "Contracts").
const (
	topic       = "bookshelf"
	lastreadDLQ = "bookshelf-lastread.dlq"
	commandsSvc = "bookshelf-commands"
	lastreadSvc = "bookshelf-lastread"
	gatewaySvc  = "gateway"
)

var services = []string{commandsSvc, lastreadSvc, gatewaySvc}

// The service binaries are built once per test binary, from this checkout.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// devstackBin is the name of tools/devstack's binary in the build directory: it runs the
// embedded Kafka broker as its own process (`devstack up --only kafka`).
const devstackBin = "devstack"

// buildServices runs `go build -o DIR/ ./services/... ./tools/devstack` once and returns DIR.
// A service that does not build fails the test naming it, with the compiler output.
func buildServices(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "brook-platform-bin-"); err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", binDir + string(filepath.Separator)}
		for _, s := range services {
			args = append(args, "./services/"+s)
		}
		args = append(args, "./tools/"+devstackBin)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("the platform tests need every service and devstack to build; go %s failed: %w\n%s",
				strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// repoRoot is the directory holding go.work, from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.work above the working directory; run from the Brook repository")
		}
	}
}

// stack is the platform under test: the Kafka broker (devstack) and every service child
// processes, the Consul agent run by kit/consultest. Everything is stopped at the end of the
// test.
type stack struct {
	t        testing.TB
	kafka    *broker
	consul   *consultest.Agent
	commands *proc
	lastread *proc
	gateway  *proc
	token    string // a JWT the gateway accepts
}

func (s *stack) procs() []*proc { return []*proc{s.commands, s.lastread, s.gateway} }

// startStack starts Kafka, Consul and the three services (backends first, the gateway last, as
// devstack does) and waits until each answers 200 on /readyz.
func startStack(t testing.TB) *stack {
	t.Helper()
	bins := buildServices(t)
	dir := t.TempDir()
	secret := "platform-test-secret-0123456789abcdef" // >= 32 bytes
	s := &stack{t: t}
	s.kafka = startBroker(t, bins, filepath.Join(dir, "kafka"))
	s.consul = consultest.New(t)

	base := []string{
		"BROOK_KAFKA_BROKERS=" + s.kafka.addr(),
		"BROOK_CONSUL_ADDR=" + s.consul.Addr(),
		"BROOK_LOG_FORMAT=text",
		"BROOK_ADMIN_TOKEN=platform-test-admin",
		"BROOK_AUTH_JWT_SECRET=" + secret,
	}
	newProc := func(name string, grpc bool, extra ...string) *proc {
		httpAddr := freeAddr(t)
		env := append(cleanEnv(), base...)
		env = append(env, "BROOK_HTTP_ADDR="+httpAddr, "BROOK_DATA_DIR="+filepath.Join(dir, name))
		if grpc {
			env = append(env, "BROOK_GRPC_ADDR="+freeAddr(t))
		}
		return &proc{
			name: name, bin: filepath.Join(bins, name), env: append(env, extra...),
			httpAddr: httpAddr, logPath: filepath.Join(dir, name+".log"),
		}
	}
	s.commands = newProc(commandsSvc, true)
	s.lastread = newProc(lastreadSvc, true)
	// The load comes from one address; the per-client rate limit is not under test here.
	s.gateway = newProc(gatewaySvc, false, "BROOK_RATE_LIMIT_RPS=0")

	t.Cleanup(func() {
		for i := len(s.procs()) - 1; i >= 0; i-- {
			if err := s.procs()[i].stop(15 * time.Second); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range append(s.procs(), s.kafka.p) {
				t.Logf("---- last lines of %s (%s) ----\n%s", p.name, p.logPath, p.logTail(30))
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, p := range s.procs() {
		if err := p.restart(ctx); err != nil {
			t.Fatalf("start %v", err)
		}
	}

	mint := exec.Command(filepath.Join(bins, gatewaySvc), "token", "--sub", "platform-test", "--ttl", "1h")
	mint.Env = append(cleanEnv(), "BROOK_AUTH_JWT_SECRET="+secret)
	tok, err := mint.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("mint a token with `gateway token --sub platform-test`: %v %s", err, stderr)
	}
	s.token = strings.TrimSpace(string(tok))
	return s
}

// cleanEnv is the test's environment without BROOK_* variables, so a developer's settings
// cannot change what the services under test do.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BROOK_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitPassing waits until Consul reports a passing instance of every service.
func (s *stack) waitPassing(ctx context.Context) error {
	for {
		var missing []string
		for _, name := range services {
			entries, _, err := s.consul.Client().Health().Service(name, "", true, nil)
			if err != nil || len(entries) == 0 {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no passing instance in Consul of %s: %w", strings.Join(missing, ", "), ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// broker is the embedded Kafka-protocol broker (kfake) in its own process, `devstack up --only
// kafka`, persistent in dir and always on the same port, so that a SIGKILL is a real crash of
// the broker and clients reconnect to the restarted one as they would to a restarted Kafka.
//
// kfake appends every produced batch and every offset commit to its files in the data dir
// before it answers (without fsync unless --kafka-sync): the page cache survives the death of
// the process, so a SIGKILLed broker keeps every acknowledged record and committed offset.
// fsync (--kafka-sync) matters only for a crash of the whole machine, which is not tested here.
// What kfake keeps only in memory until a clean close is the idempotent producers' sequence
// windows: after a crash, a producer's retry of a batch the broker had written can be
// appended twice. The test tolerates that (duplicates of one ce_id are counted, not failed).
type broker struct {
	dir  string
	port int
	p    *proc
}

// startBroker starts devstack's broker on a free port with its data in dir, waits until it
// serves the bookshelf topic, and stops it (SIGTERM, a clean close) at the end of the test,
// after the services.
func startBroker(t testing.TB, bins, dir string) *broker {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{dir: dir, port: freePort(t)}
	b.p = &proc{
		name: "kafka",
		bin:  filepath.Join(bins, devstackBin),
		args: []string{"up", "--only", "kafka", "--root", root, "--data-dir", dir,
			"--kafka-port", strconv.Itoa(b.port), "--kafka-partitions", "3"},
		env:     cleanEnv(),
		logPath: filepath.Join(filepath.Dir(dir), "kafka.log"),
		probe:   b.serves,
	}
	t.Cleanup(func() {
		if err := b.p.stop(15 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.p.restart(ctx); err != nil {
		t.Fatalf("start the Kafka broker: %v", err)
	}
	return b
}

func (b *broker) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)) }

// serves is the broker's readiness probe: it answers metadata for the bookshelf topic.
func (b *broker) serves(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
	if err != nil {
		return err
	}
	defer cl.Close()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("metadata from %s: %w", b.addr(), err)
	}
	if td, ok := topics[topic]; !ok || td.Err != nil || len(td.Partitions) == 0 {
		return fmt.Errorf("%s does not serve topic %s yet", b.addr(), topic)
	}
	return nil
}

// crash kills the broker with SIGKILL (no clean close: whatever it had not written is lost),
// leaves it down for downtime, and restarts it on the same port and data dir until it serves
// the topic again.
func (b *broker) crash(ctx context.Context, downtime time.Duration) error {
	if err := b.p.kill(); err != nil {
		return err
	}
	time.Sleep(downtime)
	return b.p.restart(ctx)
}

// records reads every record of topic, from the start of each partition to its current end.
// A topic that does not exist has no records.
func (b *broker) records(ctx context.Context, topic string) ([]*kgo.Record, error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(b.addr()))
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{} // partition -> end offset
	starts := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
			starts[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return recs, fmt.Errorf("read %s: %d partitions not read to their end: %w", topic, len(want), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				recs = append(recs, r)
				if r.Offset == end-1 {
					delete(want, r.Partition)
				}
			}
		})
	}
	return recs, nil
}
