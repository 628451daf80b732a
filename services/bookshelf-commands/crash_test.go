package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// mgmt calls the management API of a service at base.
func mgmt(t *testing.T, base, action string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/mgmt/streams/outbox-relay/"+action, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s outbox-relay: %d", action, resp.StatusCode)
	}
}

// ceIDs counts the records of the topic per ce_id.
func ceIDs(t *testing.T, kc *kafkatest.Cluster) map[string]int {
	ids := map[string]int{}
	for _, r := range kc.Records(t, bookshelfv1.Topic) {
		ids[hdrs(r)["ce_id"]]++
	}
	return ids
}

// The relay is stopped between commit and publish, the service goes away and comes back on the
// same data dir: every committed event is published, exactly once per outbox entry.
func TestEventsCommittedBeforeRestartArePublishedOnce(t *testing.T) {
	kc := newKafka(t)
	cfg := testConfig(t, kc.Brokers(), t.TempDir())
	ts := startService(t, cfg)
	mgmt(t, ts.base, "stop")
	var ids []string
	for i := range 5 {
		r, err := ts.grpc.AddBook(withRequestID(fmt.Sprintf("crash-%d", i)), &bookshelfv1.AddBookRequest{Title: fmt.Sprint("T", i), Author: "A"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetBook().GetId())
	}
	code, body, _ := ts.do("GET", "/mgmt/streams", "")
	st := body["streams"].([]any)[0].(map[string]any)
	if code != 200 || st["state"] != "stopped" || st["lag"] != float64(5) {
		t.Fatalf("mgmt streams: %d %v", code, body)
	}
	if code, body, _ := ts.do("GET", "/readyz", ""); code != 200 {
		t.Fatalf("a paused relay with Kafka up is ready: %d %v", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(kc.Records(t, bookshelfv1.Topic)); n != 0 {
		t.Fatalf("%d records published while the relay was stopped", n)
	}
	ts.stop()

	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	ts = startService(t, cfg)
	kc.WaitFor(t, bookshelfv1.Topic, 5, 30*time.Second)
	time.Sleep(500 * time.Millisecond) // several relay polls: a duplicate would show up now
	recs := kc.Records(t, bookshelfv1.Topic)
	if len(recs) != 5 {
		t.Fatalf("%d records after restart, want 5", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		seen[string(r.Key)] = true
		if !strings.HasPrefix(hdrs(r)["ce_requestid"], "crash-") {
			t.Errorf("request id lost across the restart: %v", hdrs(r))
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("book %s missing from Kafka", id)
		}
	}
	ts.stop()
}

// The real thing: the process is killed with SIGKILL, first with events waiting in the outbox,
// then in the middle of a stream of commands. After a restart every accepted command is on
// Kafka; an event is repeated only if Kafka acknowledged it just before the kill, and then with
// the same ce_id.
func TestSIGKILLedProcessLosesNoAcceptedCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "bookshelf-commands")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	kc := newKafka(t)
	dataDir := t.TempDir()

	// Phase 1: relay paused, 5 commands, kill -9, restart: exactly those 5 events, once each.
	p := startProcess(t, bin, kc.Brokers(), dataDir)
	mgmt(t, p.base, "stop")
	ts := &testService{t: t, base: p.base}
	for i := range 5 {
		if code, body, _ := ts.do("POST", "/v1/books", fmt.Sprintf(`{"title":"T%d","author":"A"}`, i)); code != 201 {
			t.Fatalf("add: %d %v", code, body)
		}
	}
	p.kill()
	if n := len(kc.Records(t, bookshelfv1.Topic)); n != 0 {
		t.Fatalf("%d records published while the relay was paused", n)
	}
	p = startProcess(t, bin, kc.Brokers(), dataDir)
	kc.WaitFor(t, bookshelfv1.Topic, 5, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if ids := ceIDs(t, kc); len(ids) != 5 || func() bool {
		for _, n := range ids {
			if n != 1 {
				return true
			}
		}
		return false
	}() {
		t.Fatalf("after restart: %v, want 5 events once each", ids)
	}

	// Phase 2: writers add books while the relay publishes; SIGKILL in the middle.
	ts.base = p.base
	var mu sync.Mutex
	accepted := map[string]bool{}
	var stopWriters atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stopWriters.Load(); i++ {
				req, _ := http.NewRequest("POST", p.base+"/v1/books", strings.NewReader(fmt.Sprintf(`{"title":"W%d-%d","author":"A"}`, w, i)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // killed
				}
				var body struct {
					Book struct {
						ID string `json:"id"`
					} `json:"book"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 201 {
					mu.Lock()
					accepted[body.Book.ID] = true
					mu.Unlock()
				}
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	stopWriters.Store(true)
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no command was accepted before the kill")
	}

	p = startProcess(t, bin, kc.Brokers(), dataDir)
	defer p.kill()
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		onKafka := map[string]bool{}
		for _, r := range kc.Records(t, bookshelfv1.Topic) {
			onKafka[string(r.Key)] = true
		}
		missing = missing[:0]
		for id := range accepted {
			if !onKafka[id] {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d accepted commands missing from Kafka after SIGKILL and restart, e.g. %s", len(missing), len(accepted), missing[0])
	}
	// Duplicates are allowed only as the same event again (same ce_id, same key).
	byID := map[string]string{}
	dups := 0
	for _, r := range kc.Records(t, bookshelfv1.Topic) {
		id := hdrs(r)["ce_id"]
		if k, ok := byID[id]; ok {
			dups++
			if k != string(r.Key) {
				t.Fatalf("ce_id %s reused for another book", id)
			}
		}
		byID[id] = string(r.Key)
	}
	t.Logf("%d commands accepted before SIGKILL; all on Kafka after restart (%d redelivered duplicates, same ce_id)", len(accepted), dups)
}

type process struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess runs the binary on free ports and waits until /readyz answers 200.
func startProcess(t *testing.T, bin string, brokers []string, dataDir string) *process {
	t.Helper()
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"BROOK_KAFKA_BROKERS="+strings.Join(brokers, ","), "BROOK_DATA_DIR="+dataDir,
		"BROOK_GRPC_ADDR="+freeAddr(t), "BROOK_HTTP_ADDR="+httpAddr, "BROOK_ADMIN_TOKEN="+adminToken,
		"BROOK_LOG_FORMAT=text", "BROOK_LOG_LEVEL=warn", "BROOK_OUTBOX_POLL_INTERVAL=100ms", "BROOK_CONSUL_ADDR=")
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{t: t, cmd: cmd, base: "http://" + httpAddr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("bookshelf-commands exited at start: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bookshelf-commands not ready after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown hook runs, the store is not closed.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("process %d did not die", p.cmd.Process.Pid)
	}
}

// Kafka is down: commands are still accepted (the outbox keeps their events), /readyz names
// "kafka" as failing, and once Kafka is reachable the waiting events are published.
func TestCommandsAcceptedWhileKafkaIsDown(t *testing.T) {
	addr := freeAddr(t) // nothing listens here yet
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	cfg := testConfig(t, []string{addr}, t.TempDir())
	ts := startService(t, cfg)

	code, body, _ := ts.do("POST", "/v1/books", `{"title":"Offline","author":"A"}`)
	if code != http.StatusCreated {
		t.Fatalf("add while Kafka is down: %d %v", code, body)
	}
	id := body["book"].(map[string]any)["id"].(string)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, _ = ts.do("GET", "/readyz", "")
		checks, _ := body["checks"].(map[string]any)
		if code == http.StatusServiceUnavailable && checks["kafka"] != "ok" && checks["store"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported kafka: %d %v", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	kc := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.Ports(port)))
	recs := recordsOf(t, kc, id, 1)
	if len(recs) != 1 || hdrs(recs[0])["ce_type"] != bookshelfv1.TypeBookAdded {
		t.Fatalf("event of the offline command: %v", recs)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _, _ := ts.do("GET", "/readyz", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover with Kafka back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The relay can be paused and resumed at runtime through /mgmt/streams.
func TestRelayStopStartThroughManagement(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))
	mgmt(t, ts.base, "stop")
	code, body, _ := ts.do("POST", "/v1/books", `{"title":"Paused","author":"A"}`)
	if code != http.StatusCreated {
		t.Fatalf("add: %d %v", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(kc.Records(t, bookshelfv1.Topic)); n != 0 {
		t.Fatalf("%d records while stopped", n)
	}
	mgmt(t, ts.base, "start")
	kc.WaitFor(t, bookshelfv1.Topic, 1, 30*time.Second)
	_, body, _ = ts.do("GET", "/mgmt/streams", "")
	st := body["streams"].([]any)[0].(map[string]any)
	if st["state"] != "running" || st["consumed"] != float64(1) {
		t.Fatalf("status after start: %v", st)
	}
}
