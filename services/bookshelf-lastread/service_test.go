package main

// Integration tests: the real service (build + Run, as main wires it) against the embedded
// Kafka-protocol broker (kit/kafkatest), talking REST and gRPC like a user would.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
)

const adminToken = "test-admin-token"

var base = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// instance is one running bookshelf-lastread.
type instance struct {
	cfg  Config
	http string // "http://127.0.0.1:port"
	grpc string
	stop func() // graceful stop; also run at cleanup
}

func testLogger() *slog.Logger {
	if os.Getenv("LASTREAD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testConfig(cl *kafkatest.Cluster, dir string) Config {
	cfg := defaultConfig()
	cfg.Kafka.Brokers = cl.Brokers()
	cfg.GRPC.Addr, cfg.HTTP.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Data.Dir = dir
	cfg.Admin.Token = adminToken
	return cfg
}

func start(t *testing.T, cfg Config) *instance {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := build(ctx, cfg, testLogger())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	in := &instance{cfg: cfg, http: "http://" + svc.HTTPAddr(), grpc: svc.GRPCAddr()}
	in.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("service stopped with: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("service did not stop within 60s")
		}
	})
	t.Cleanup(in.stop)
	eventually(t, "ready", func() error {
		code, body := get(t, in.http+"/readyz")
		if code != http.StatusOK {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		return nil
	})
	return in
}

// eventually retries fn for up to 30s (a generous bound for a shared machine, not a
// performance assertion).
func eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 30s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type book struct {
	ID     string    `json:"id"`
	Title  string    `json:"title"`
	Author string    `json:"author"`
	ReadAt time.Time `json:"read_at"`
}

func lastRead(t *testing.T, in *instance, query string) []book {
	t.Helper()
	code, body := get(t, in.http+"/v1/last-read"+query)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/last-read%s: %d %s", query, code, body)
	}
	var out struct {
		Books []book `json:"books"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET /v1/last-read%s: %v in %s", query, err, body)
	}
	return out.Books
}

func bookIDs(bs []book) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.ID
	}
	return out
}

// waitIDs waits until GET /v1/last-read<query> lists exactly want (in order).
func waitIDs(t *testing.T, in *instance, query string, want ...string) []book {
	t.Helper()
	var got []book
	eventually(t, "last-read"+query, func() error {
		got = lastRead(t, in, query)
		if ids := bookIDs(got); !reflect.DeepEqual(ids, want) && !(len(ids) == 0 && len(want) == 0) {
			return fmt.Errorf("ids = %v, want %v", ids, want)
		}
		return nil
	})
	return got
}

// publishRead publishes a book.read event in binary mode (as the services do) or as a plain
// structured CloudEvents JSON line without headers (as kcat would).
func publishRead(t *testing.T, cl *kafkatest.Cluster, id string, minute int, structured bool) {
	t.Helper()
	data := fmt.Sprintf(`{"id":%q,"title":"Title %s","author":"Author %s","read_at":%q}`,
		id, id, id, base.Add(time.Duration(minute)*time.Minute).Format(time.RFC3339))
	publishEvent(t, cl, bookshelfv1.TypeBookRead, id, data, structured)
}

func publishEvent(t *testing.T, cl *kafkatest.Cluster, typ, id, data string, structured bool) {
	t.Helper()
	if structured {
		line := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%s-%d","source":"kcat","type":%q,"subject":%q,"data":%s}`,
			id, time.Now().UnixNano(), typ, id, data)
		cl.Publish(t, bookshelfv1.Topic, []byte(id), []byte(line))
		return
	}
	ev := events.New("/test", typ, id, []byte(data))
	key, hs, value := events.EncodeBinary(ev)
	kh := make([]kafkatest.Header, len(hs))
	for i, h := range hs {
		kh[i] = kafkatest.Header{Key: h.Key, Value: h.Value}
	}
	cl.Publish(t, bookshelfv1.Topic, key, value, kh...)
}

func publishRemoved(t *testing.T, cl *kafkatest.Cluster, id string) {
	t.Helper()
	publishEvent(t, cl, bookshelfv1.TypeBookRemoved, id, fmt.Sprintf(`{"id":%q}`, id), false)
}

func newCluster(t *testing.T) *kafkatest.Cluster {
	cl := kafkatest.New(t)
	cl.CreateTopic(t, bookshelfv1.Topic, 3)
	return cl
}

func TestLastReadOverRESTAndGRPC(t *testing.T) {
	cl := newCluster(t)
	in := start(t, testConfig(cl, t.TempDir()))

	// b1..b6 read at minutes 1..6, alternating binary and structured; b2 read again last.
	for i := 1; i <= 6; i++ {
		publishRead(t, cl, "b"+strconv.Itoa(i), i, i%2 == 0)
	}
	publishRead(t, cl, "b2", 10, true)
	publishEvent(t, cl, bookshelfv1.TypeBookAdded, "b9", `{"id":"b9","title":"ignored"}`, false)

	got := waitIDs(t, in, "?limit=100", "b2", "b6", "b5", "b4", "b3", "b1")
	if got[0].Title != "Title b2" || got[0].Author != "Author b2" || !got[0].ReadAt.Equal(base.Add(10*time.Minute)) {
		t.Fatalf("front entry = %+v", got[0])
	}
	if ids := bookIDs(lastRead(t, in, "")); !reflect.DeepEqual(ids, []string{"b2", "b6", "b5", "b4", "b3"}) {
		t.Fatalf("default limit: %v, want the 5 newest", ids)
	}
	if ids := bookIDs(lastRead(t, in, "?limit=2")); !reflect.DeepEqual(ids, []string{"b2", "b6"}) {
		t.Fatalf("limit=2: %v", ids)
	}
	code, body := get(t, in.http+"/v1/last-read?limit=2")
	if code != 200 || !strings.Contains(body, `"read_at"`) {
		t.Fatalf("REST JSON must use proto names (read_at): %s", body)
	}

	for _, q := range []string{"?limit=101", "?limit=-1", "?limit=abc"} {
		code, body := get(t, in.http+"/v1/last-read"+q)
		if code != http.StatusBadRequest || !strings.Contains(body, "limit") || !strings.Contains(body, `"code"`) {
			t.Errorf("GET /v1/last-read%s = %d %s; want 400 JSON naming limit", q, code, body)
		}
	}

	conn, err := grpc.NewClient(in.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := bookshelfv1.NewBookshelfLastReadClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	var grpcIDs []string
	for _, b := range resp.GetBooks() {
		grpcIDs = append(grpcIDs, b.GetId())
	}
	if !reflect.DeepEqual(grpcIDs, []string{"b2", "b6", "b5"}) {
		t.Fatalf("gRPC ListLastRead(3) = %v", grpcIDs)
	}
	if _, err := client.ListLastRead(ctx, &bookshelfv1.ListLastReadRequest{Limit: 500}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC limit 500: err = %v, want InvalidArgument", err)
	}

	// Removal drops the book; a later read of another book still lands in front.
	publishRemoved(t, cl, "b6")
	publishRead(t, cl, "b7", 11, false)
	waitIDs(t, in, "?limit=100", "b7", "b2", "b5", "b4", "b3", "b1")
}

func TestPoisonEventsGoToDLQAndViewKeepsRunning(t *testing.T) {
	cl := kafkatest.New(t)
	cl.CreateTopic(t, bookshelfv1.Topic, 1) // one partition: the good event comes after the poison
	in := start(t, testConfig(cl, t.TempDir()))

	cl.Publish(t, bookshelfv1.Topic, []byte("x"), []byte("this is not json"))
	cl.Publish(t, bookshelfv1.Topic, []byte("x"), []byte(`{"hello":"no envelope"}`))
	publishEvent(t, cl, bookshelfv1.TypeBookRead, "x", `{"title":"no id"}`, true)
	publishEvent(t, cl, bookshelfv1.TypeBookRemoved, "x", `[1,2]`, false)
	publishRead(t, cl, "good", 1, true)

	waitIDs(t, in, "", "good")
	dead := cl.WaitFor(t, in.cfg.View.DLQ, 4, 30*time.Second)
	wantReason := []string{"not a JSON CloudEvent", "specversion", "id is missing", "BookRemoved"}
	for i, r := range dead {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h["dlq_topic"] != bookshelfv1.Topic || h["dlq_offset"] != strconv.Itoa(i) || h["dlq_error"] == "" {
			t.Errorf("dead letter %d headers = %v", i, h)
		}
		if !strings.Contains(h["dlq_error"], wantReason[i]) {
			t.Errorf("dead letter %d reason %q does not mention %q", i, h["dlq_error"], wantReason[i])
		}
	}
	if got := metric(t, in, `brook_lastread_events_total{result="bad"}`); got < 2 {
		t.Errorf("bad events metric = %v, want >= 2", got)
	}
}

// Events already on the topic when the service starts arrive in batches: a poison record and a
// bad event inside a batch are dead-lettered, and every good neighbour is applied exactly once.
func TestPoisonInsideABatch(t *testing.T) {
	cl := kafkatest.New(t)
	cl.CreateTopic(t, bookshelfv1.Topic, 1)
	for i := 1; i <= 3; i++ {
		publishRead(t, cl, "g"+strconv.Itoa(i), i, i%2 == 0)
	}
	cl.Publish(t, bookshelfv1.Topic, []byte("x"), []byte("this is not json"))
	publishEvent(t, cl, bookshelfv1.TypeBookRead, "x", `{"title":"no id"}`, false)
	for i := 4; i <= 6; i++ {
		publishRead(t, cl, "g"+strconv.Itoa(i), i, false)
	}
	applied0, dup0 := counter(t, "applied"), counter(t, "duplicate")
	cfg := testConfig(cl, t.TempDir())
	cfg.View.CatchUp = false // the consumer, not the catch-up, must meet the records
	in := start(t, cfg)

	waitIDs(t, in, "?limit=100", "g6", "g5", "g4", "g3", "g2", "g1")
	dead := cl.WaitFor(t, cfg.View.DLQ, 2, 30*time.Second)
	for i, want := range []struct{ offset, reason string }{{"3", "not a JSON CloudEvent"}, {"4", "id is missing"}} {
		h := map[string]string{}
		for _, kv := range dead[i].Headers {
			h[kv.Key] = string(kv.Value)
		}
		if h["dlq_offset"] != want.offset || !strings.Contains(h["dlq_error"], want.reason) {
			t.Errorf("dead letter %d: offset %q, reason %q; want %s, %q", i, h["dlq_offset"], h["dlq_error"], want.offset, want.reason)
		}
	}
	eventually(t, "all offsets committed", func() error {
		if n := committed(t, cl, cfg.View.Group); n != 8 {
			return fmt.Errorf("committed offsets sum to %d, want 8", n)
		}
		return nil
	})
	if a, d := counter(t, "applied")-applied0, counter(t, "duplicate")-dup0; a != 6 || d != 0 {
		t.Errorf("applied %v, duplicates %v; want 6 and 0", a, d)
	}
}

// commitBlocker makes the broker refuse every offset commit while on (a retriable
// "coordinator loading" error), so a consumer can apply events that Kafka never sees committed.
func commitBlocker(cl *kafkatest.Cluster) (on func(bool)) {
	var mu sync.Mutex
	blocked := false
	kf := cl.Kfake()
	kf.ControlKey(kmsg.OffsetCommit.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		if !blocked {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return func(b bool) { mu.Lock(); blocked = b; mu.Unlock() }
}

// committed returns the group's committed offsets of the topic, summed over partitions
// (-1 partitions without a commit count as 0).
func committed(t *testing.T, cl *kafkatest.Cluster, group string) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	resp, err := req.RequestWith(context.Background(), cl.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.Offset > 0 {
				sum += p.Offset
			}
		}
	}
	return sum
}

// Exactly-once effect: the first run applies every event but the broker never records a commit
// (the process "dies" before Kafka knows). The restarted service gets everything again from
// Kafka and must not apply any of it twice, nor skip what comes next.
func TestCrashBeforeKafkaCommitAppliesOnce(t *testing.T) {
	for _, catchUp := range []bool{false, true} {
		t.Run("catch_up="+strconv.FormatBool(catchUp), func(t *testing.T) {
			cl := newCluster(t)
			block := commitBlocker(cl)
			dir := t.TempDir()
			cfg := testConfig(cl, dir)

			block(true)
			first := start(t, cfg)
			publishRead(t, cl, "a", 1, false)
			publishRead(t, cl, "b", 2, true)
			publishRead(t, cl, "a", 3, false)
			publishRead(t, cl, "c", 4, false)
			publishRemoved(t, cl, "c")
			waitIDs(t, first, "?limit=100", "a", "b")
			// Two books read at the same time: the one applied last goes first. Applied again
			// on redelivery (in whatever order the partitions come back), the order could flip.
			publishRead(t, cl, "t1", 7, false)
			waitIDs(t, first, "?limit=100", "t1", "a", "b")
			publishRead(t, cl, "t2", 7, false)
			waitIDs(t, first, "?limit=100", "t2", "t1", "a", "b")
			time.Sleep(1500 * time.Millisecond) // let the 1s auto-commit try (and fail)
			first.stop()
			if n := committed(t, cl, cfg.View.Group); n != 0 {
				t.Fatalf("the broker recorded commits (%d) although they were blocked", n)
			}

			block(false)
			applied0, dup0 := counter(t, "applied"), counter(t, "duplicate")
			cfg.View.CatchUp = catchUp
			second := start(t, cfg)
			publishRead(t, cl, "d", 8, true) // new after the restart: must not be skipped
			got := waitIDs(t, second, "?limit=100", "d", "t2", "t1", "a", "b")
			if !got[3].ReadAt.Equal(base.Add(3 * time.Minute)) {
				t.Fatalf("a read_at = %v, want its latest read", got[3].ReadAt)
			}
			// Kafka redelivered all 7 old records (nothing was committed) and the group now
			// commits all 8; the view applied only the new one.
			eventually(t, "all offsets committed", func() error {
				if n := committed(t, cl, cfg.View.Group); n != 8 {
					return fmt.Errorf("committed offsets sum to %d, want 8", n)
				}
				return nil
			})
			if d, a := counter(t, "duplicate")-dup0, counter(t, "applied")-applied0; d != 7 || a != 1 {
				t.Fatalf("after restart: %v duplicates skipped, %v applied; want 7 and 1", d, a)
			}
			if got := lastRead(t, second, "?limit=100"); !reflect.DeepEqual(bookIDs(got), []string{"d", "t2", "t1", "a", "b"}) {
				t.Fatalf("view changed after the redeliveries: %v", bookIDs(got))
			}
		})
	}
}

// counter reads brook_lastread_events_total{result} from the default registry (the service
// runs in this process).
func counter(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "brook_lastread_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A rebuild (endpoint on a running instance, command on a stopped one) gives the view live
// consumption built, including removals, re-reads and skipped poison.
func TestRebuildGivesTheLiveView(t *testing.T) {
	cl := newCluster(t)
	cfg := testConfig(cl, t.TempDir())
	in := start(t, cfg)
	for i := 1; i <= 8; i++ {
		publishRead(t, cl, "r"+strconv.Itoa(i), i, i%3 == 0)
	}
	publishRead(t, cl, "r1", 20, false)
	publishRemoved(t, cl, "r4")
	cl.Publish(t, bookshelfv1.Topic, []byte("r5"), []byte("poison"))
	want := []string{"r1", "r8", "r7", "r6", "r5", "r3", "r2"}
	live := waitIDs(t, in, "?limit=100", want...)

	// Without the admin token: refused.
	resp, err := http.Post(in.http+"/mgmt/rebuild", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("rebuild without token: %d, want 401", resp.StatusCode)
	}

	req, _ := http.NewRequest(http.MethodPost, in.http+"/mgmt/rebuild", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var stats map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || stats["applied"] != float64(10) || stats["bad"] != float64(1) {
		t.Fatalf("rebuild: %d %v; want 200 with 10 applied, 1 bad", resp.StatusCode, stats)
	}
	if got := lastRead(t, in, "?limit=100"); !reflect.DeepEqual(got, live) {
		t.Fatalf("after rebuild endpoint:\n got %+v\nwant %+v", got, live)
	}
	// The consumer resumed: new events still arrive.
	publishRead(t, cl, "r9", 30, false)
	want = append([]string{"r9"}, want...)
	live = waitIDs(t, in, "?limit=100", want...)

	// Offline: stop, rebuild with the command, start again.
	in.stop()
	var summary strings.Builder
	if err := rebuild(context.Background(), cfg, testLogger(), &summary); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary.String(), "11 applied") {
		t.Errorf("rebuild summary = %q, want 11 applied", summary.String())
	}
	cfg.View.CatchUp = false // the rebuilt file alone must hold the view
	again := start(t, cfg)
	if got := lastRead(t, again, "?limit=100"); !reflect.DeepEqual(got, live) {
		t.Fatalf("after rebuild command:\n got %+v\nwant %+v", got, live)
	}
}

// A lost data dir is refilled from the topic at start, even though the group committed
// everything already.
func TestFreshDataDirCatchesUp(t *testing.T) {
	cl := newCluster(t)
	cfg := testConfig(cl, t.TempDir())
	in := start(t, cfg)
	publishRead(t, cl, "x", 1, false)
	publishRead(t, cl, "y", 2, false)
	waitIDs(t, in, "", "y", "x")
	in.stop()

	cfg.Data.Dir = t.TempDir()
	again := start(t, cfg)
	waitIDs(t, again, "", "y", "x")
}

func TestReadinessAndMgmt(t *testing.T) {
	cl := newCluster(t)
	in := start(t, testConfig(cl, t.TempDir()))
	code, body := get(t, in.http+"/readyz")
	for _, check := range []string{"kafka", "store", "view"} {
		if code != 200 || !strings.Contains(body, check) {
			t.Errorf("readyz %d %s: want 200 naming %s", code, body, check)
		}
	}
	code, body = get(t, in.http+"/mgmt/streams")
	if code != 200 || !strings.Contains(body, `"bookshelf-lastread"`) || !strings.Contains(body, cfgGroup) {
		t.Errorf("mgmt/streams %d %s", code, body)
	}
}

const cfgGroup = "bookshelf-lastread"

// metric reads one sample from /metrics (0 when absent).
func metric(t *testing.T, in *instance, series string) float64 {
	t.Helper()
	resp, err := http.Get(in.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// With Kafka gone, /readyz answers 503 naming kafka while reads keep being served.
func TestReadinessNamesKafkaWhenItIsDown(t *testing.T) {
	cl := newCluster(t)
	in := start(t, testConfig(cl, t.TempDir()))
	publishRead(t, cl, "k", 1, false)
	waitIDs(t, in, "", "k")
	cl.Close()
	eventually(t, "readyz reports kafka", func() error {
		code, body := get(t, in.http+"/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka") {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		return nil
	})
	waitIDs(t, in, "", "k")
}
