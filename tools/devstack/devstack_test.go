package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// These tests run the real devstack binary, as `make run` does, against the
// real Consul agent (bin/consul) and the embedded broker, on free ports.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// devstackBin builds devstack once per test run.
func devstackBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "devstack-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "devstack")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// consulBin finds bin/consul the way devstack does, failing with the fix.
func consulBin(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("BROOK_CONSUL_BIN"), "../../bin/consul"} {
		if p == "" {
			continue
		}
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p
	}
	t.Fatal("consul binary not found: run `make consul` at the repository root (builds bin/consul)")
	return ""
}

// run is one devstack process under test, its output collected line by line.
type run struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // signalled on every new line
	done  chan struct{} // closed when the process has exited
	err   error
}

func start(t *testing.T, env []string, args ...string) *run {
	t.Helper()
	cmd := exec.Command(devstackBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // both into the pipe
	r := &run{t: t, cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // no-op when it already exited; children die by Pdeathsig
		<-r.done
		if t.Failed() {
			t.Logf("devstack output:\n%s", r.output())
		}
	})
	return r
}

func (r *run) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// waitLine waits for a line matching re and returns its submatches.
func (r *run) waitLine(re string, timeout time.Duration) []string {
	r.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		for _, l := range r.lines {
			if m := rx.FindStringSubmatch(l); m != nil {
				r.mu.Unlock()
				return m
			}
		}
		r.mu.Unlock()
		select {
		case <-r.more:
		case <-r.done:
			// drain: the scanner may have added lines just before exit
			r.mu.Lock()
			for _, l := range r.lines {
				if m := rx.FindStringSubmatch(l); m != nil {
					r.mu.Unlock()
					return m
				}
			}
			r.mu.Unlock()
			r.t.Fatalf("devstack exited (%v) without a line matching %q", r.err, re)
		case <-deadline:
			r.t.Fatalf("no line matching %q after %s", re, timeout)
		}
	}
}

// stop sends sig and returns the exit code.
func (r *run) stop(sig syscall.Signal) int {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
	return r.wait()
}

func (r *run) wait() int {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(90 * time.Second):
		r.t.Fatal("devstack did not exit within 90s")
	}
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		return ee.ExitCode()
	}
	if r.err != nil {
		r.t.Fatal(r.err)
	}
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func portIsFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func waitPortFree(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !portIsFree(port) {
		if time.Now().After(deadline) {
			t.Fatalf("port %d still in use after devstack stopped", port)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitGone waits until pid has exited (gone, or a zombie awaiting its reaper).
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 && s[i+2] == 'Z' {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still running after devstack stopped", what, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func kafkaClient(t *testing.T, broker string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(broker)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// consumeN reads n records of topic with a consumer group, committing them.
func consumeN(t *testing.T, broker, group string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkaClient(t, broker, kgo.ConsumerGroup(group), kgo.ConsumeTopics("bookshelf"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return got
}

func TestUpInfraOnlyServesKafkaAndConsulAndStopsClean(t *testing.T) {
	kafkaPort, httpPort, dnsPort := freePort(t), freePort(t), freePort(t)
	r := start(t, nil, "up", "--only", "kafka,consul", "--consul-bin", consulBin(t),
		"--kafka-port", strconv.Itoa(kafkaPort), "--consul-http-port", strconv.Itoa(httpPort),
		"--consul-dns-port", strconv.Itoa(dnsPort), "--data-dir", t.TempDir())

	ready := r.waitLine(`^ready .*`, 90*time.Second)[0]
	for _, want := range []string{
		fmt.Sprintf("kafka=localhost:%d", kafkaPort),
		fmt.Sprintf("consul-ui=http://localhost:%d/ui", httpPort),
	} {
		if !strings.Contains(ready, want) {
			t.Errorf("ready line %q lacks %q", ready, want)
		}
	}
	if strings.Contains(ready, "gateway") {
		t.Errorf("ready line %q names the gateway, which --only excludes", ready)
	}
	consulPid, _ := strconv.Atoi(r.waitLine(`consul: leader elected, agent pid (\d+)`, time.Second)[1])

	// Kafka: the bookshelf topic exists with 3 partitions; produce, consume in a group.
	broker := fmt.Sprintf("localhost:%d", kafkaPort)
	adm := kadm.NewClient(kafkaClient(t, broker))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topics, err := adm.ListTopics(ctx, "bookshelf")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topics["bookshelf"].Partitions); n != 3 {
		t.Errorf("bookshelf has %d partitions, want 3", n)
	}
	if err := kafkaClient(t, broker).ProduceSync(ctx, &kgo.Record{Topic: "bookshelf", Key: []byte("b1"), Value: []byte("hello")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if got := consumeN(t, broker, "devstack-test", 1); string(got[0].Value) != "hello" {
		t.Errorf("consumed %q, want hello", got[0].Value)
	}

	// Consul: a leader, and the agent answers the catalog.
	cc, err := api.NewClient(&api.Config{Address: fmt.Sprintf("127.0.0.1:%d", httpPort)})
	if err != nil {
		t.Fatal(err)
	}
	if leader, err := cc.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("consul leader = %q, %v", leader, err)
	}

	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	r.waitLine(`^\[devstack\] stopped$`, time.Second)
	waitGone(t, consulPid, "consul")
	for _, p := range []int{kafkaPort, httpPort, dnsPort} {
		waitPortFree(t, p)
	}
}

func TestKafkaKeepsTopicsRecordsAndOffsetsAcrossRestarts(t *testing.T) {
	// SIGTERM: a clean stop. SIGKILL: devstack dies without saving; kfake
	// writes its log and offset commits as they happen, so nothing is lost.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { testKafkaRestart(t, sig) })
	}
}

func testKafkaRestart(t *testing.T, sig syscall.Signal) {
	dataDir := t.TempDir()
	kafkaPort := freePort(t)
	args := []string{"up", "--only", "kafka", "--kafka-port", strconv.Itoa(kafkaPort), "--data-dir", dataDir}
	broker := fmt.Sprintf("127.0.0.1:%d", kafkaPort)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first := start(t, nil, args...)
	first.waitLine(`^ready `, 60*time.Second)
	prod := kafkaClient(t, broker)
	for i := range 3 {
		rec := &kgo.Record{Topic: "bookshelf", Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i))}
		if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	consumeN(t, broker, "persist-test", 3) // commits offsets for the group
	prod.Close()
	if code := first.stop(sig); sig == syscall.SIGTERM && code != 0 {
		t.Fatalf("first run exit code %d", code)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "kafka")); err != nil {
		t.Fatalf("no kafka data dir: %v", err)
	}

	second := start(t, nil, args...)
	second.waitLine(`^ready `, 60*time.Second)
	got := consumeN(t, broker, "a-new-group", 3)
	values := map[string]bool{}
	for _, r := range got {
		values[string(r.Value)] = true
	}
	for i := range 3 {
		if !values[fmt.Sprint("v", i)] {
			t.Errorf("record v%d lost across restart; got %v", i, values)
		}
	}
	adm := kadm.NewClient(kafkaClient(t, broker))
	offs, err := adm.FetchOffsets(ctx, "persist-test")
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	offs.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed != 3 {
		t.Errorf("group persist-test has committed offsets summing to %d after restart, want 3", committed)
	}
	if code := second.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("second run exit code %d", code)
	}
}

func TestConsulDiesWithADevstackKilledHard(t *testing.T) {
	httpPort, dnsPort := freePort(t), freePort(t)
	r := start(t, nil, "up", "--only", "consul", "--consul-bin", consulBin(t),
		"--consul-http-port", strconv.Itoa(httpPort), "--consul-dns-port", strconv.Itoa(dnsPort),
		"--data-dir", t.TempDir())
	r.waitLine(`^ready `, 90*time.Second)
	pid, _ := strconv.Atoi(r.waitLine(`agent pid (\d+)`, time.Second)[1])
	r.stop(syscall.SIGKILL)
	waitGone(t, pid, "consul after SIGKILL of devstack")
	waitPortFree(t, httpPort)
}

func TestMissingConsulBinaryFailsClearly(t *testing.T) {
	r := start(t, []string{"BROOK_CONSUL_BIN="}, "up", "--only", "consul",
		"--consul-bin", filepath.Join(t.TempDir(), "nope"), "--data-dir", t.TempDir())
	if code := r.wait(); code == 0 {
		t.Fatal("devstack succeeded without a consul binary")
	}
	r.waitLine(`consul: binary .*nope not found`, time.Second)
}

// fakeService is a stand-in main package: it prints its BROOK_* environment,
// serves /readyz (503 when FAKE_NEVER_READY is set), exits 3 once when the
// file FAKE_CRASH_FILE appears (removing it), and says when it gets SIGTERM.
const fakeService = `package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BROOK_") {
			env = append(env, kv)
		}
	}
	sort.Strings(env)
	for _, kv := range env {
		fmt.Println("env", kv)
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if os.Getenv("FAKE_NEVER_READY") != "" {
			http.Error(w, "kafka: not connected", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	go func() { fmt.Println(http.ListenAndServe(os.Getenv("BROOK_HTTP_ADDR"), nil)); os.Exit(1) }()
	if f := os.Getenv("FAKE_CRASH_FILE"); f != "" {
		go func() {
			for {
				if os.Remove(f) == nil {
					fmt.Println("crashing")
					os.Exit(3)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("got SIGTERM")
}
`

// fakeRoot makes a repository with a gateway main package and a
// bookshelf-commands folder that is still only a library.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                             "module fake\n\ngo 1.26\n",
		"services/gateway/main.go":           fakeService,
		"services/bookshelf-commands/doc.go": "// Package commands is not written yet.\npackage commands\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// freeOffset returns a --port-offset under which the gateway's port is free.
func freeOffset(t *testing.T) int {
	t.Helper()
	for range 100 {
		off := 20000 + rand.IntN(20000)
		if portIsFree(8080+off) && portIsFree(8001+off) {
			return off
		}
	}
	t.Fatal("no free port offset found")
	return 0
}

func TestServicesAreBuiltStartedWithContractEnvAndStopped(t *testing.T) {
	root := fakeRoot(t)
	off := freeOffset(t)
	data := t.TempDir()
	r := start(t, []string{"BROOK_AUTH_JWT_SECRET=", "BROOK_ADMIN_TOKEN=", "GOWORK=off"},
		"up", "--root", root, "--only", "bookshelf-commands,gateway", "--port-offset", strconv.Itoa(off), "--data-dir", data)

	ready := r.waitLine(`^ready .*`, 3*time.Minute)[0]
	want := fmt.Sprintf("ready gateway=http://localhost:%d docs=http://localhost:%d/docs gateway.metrics=http://localhost:%d/metrics",
		8080+off, 8080+off, 8080+off)
	if ready != want {
		t.Errorf("ready line:\n %q\nwant\n %q", ready, want)
	}
	r.waitLine(`^\[devstack\] warning: skipping bookshelf-commands: no main package`, time.Second)
	for _, kv := range []string{
		fmt.Sprintf("BROOK_HTTP_ADDR=127.0.0.1:%d", 8080+off),
		fmt.Sprintf("BROOK_KAFKA_BROKERS=127.0.0.1:%d", 9092+off),
		fmt.Sprintf("BROOK_CONSUL_ADDR=127.0.0.1:%d", 8500+off),
		"BROOK_DATA_DIR=" + filepath.Join(data, "gateway"),
		"BROOK_LOG_FORMAT=text",
		"BROOK_ADMIN_TOKEN=" + devAdminToken,
		"BROOK_AUTH_JWT_SECRET=" + devJWTSecret,
	} {
		r.waitLine(`^\[gateway\] env `+regexp.QuoteMeta(kv)+`$`, time.Second)
	}
	if strings.Contains(r.output(), "BROOK_GRPC_ADDR") {
		t.Error("gateway got BROOK_GRPC_ADDR; it has no gRPC port")
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "gateway")); err != nil {
		t.Errorf("gateway not built into <root>/bin: %v", err)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
	r.waitLine(`^\[gateway\] got SIGTERM$`, time.Second)
	waitPortFree(t, 8080+off)
}

func TestServiceNeverReadyFailsNamingIt(t *testing.T) {
	r := start(t, []string{"FAKE_NEVER_READY=1", "GOWORK=off"}, "up", "--root", fakeRoot(t), "--only", "gateway",
		"--port-offset", strconv.Itoa(freeOffset(t)), "--data-dir", t.TempDir(), "--ready-timeout", "2s")
	if code := r.wait(); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	r.waitLine(`devstack: gateway not ready after 2s: GET http://127.0.0.1:\d+/readyz: 503 kafka: not connected`, time.Second)
	r.waitLine(`^\[gateway\] got SIGTERM$`, time.Second)
}

func TestCrashedServiceIsLoggedAndRestartedWithFlag(t *testing.T) {
	crash := filepath.Join(t.TempDir(), "crash-now")
	r := start(t, []string{"FAKE_CRASH_FILE=" + crash, "GOWORK=off"}, "up", "--root", fakeRoot(t), "--only", "gateway",
		"--port-offset", strconv.Itoa(freeOffset(t)), "--data-dir", t.TempDir(), "--restart")
	r.waitLine(`^ready `, 3*time.Minute)
	if err := os.WriteFile(crash, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitLine(`^\[devstack\] gateway exited unexpectedly: exit status 3$`, 30*time.Second)
	r.waitLine(`^\[devstack\] restarting gateway$`, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(r.output(), "[devstack] gateway: started pid") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("gateway was not started a second time")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

func TestBrokenServiceStopsStartupUnlessSkipped(t *testing.T) {
	root := fakeRoot(t)
	broken := filepath.Join(root, "services/bookshelf-lastread/main.go")
	if err := os.MkdirAll(filepath.Dir(broken), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"up", "--root", root, "--only", "bookshelf-lastread,gateway",
		"--port-offset", strconv.Itoa(freeOffset(t)), "--data-dir", t.TempDir()}

	r := start(t, []string{"GOWORK=off"}, args...)
	if code := r.wait(); code != 1 {
		t.Fatalf("exit code %d with a broken service, want 1", code)
	}
	r.waitLine(`^\[build\] .*undefinedThing`, time.Second)
	r.waitLine(`^devstack: build of bookshelf-lastread, gateway failed`, time.Second)

	r = start(t, []string{"GOWORK=off"}, append(args, "--skip-broken")...)
	ready := r.waitLine(`^ready .*`, 3*time.Minute)[0]
	r.waitLine(`^\[devstack\] warning: skipping bookshelf-lastread: build of bookshelf-lastread failed`, time.Second)
	if !strings.Contains(ready, "gateway=") || strings.Contains(ready, "bookshelf-lastread") {
		t.Errorf("ready line %q: want the gateway and not the broken service", ready)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
}
