package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/kit/track"
)

const adminToken = "test-admin-token"

// testService is bookshelf-commands running in-process on free ports, wired exactly as main
// does, against the embedded Kafka broker.
type testService struct {
	t        *testing.T
	grpc     bookshelfv1.BookshelfCommandsClient
	grpcAddr string
	base     string // http://127.0.0.1:port
	dataDir  string
	stop     func()
}

func testConfig(t *testing.T, brokers []string, dataDir string) Config {
	cfg := defaultConfig()
	cfg.GRPC.Addr = "127.0.0.1:0"
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Data.Dir = dataDir
	cfg.Kafka.Brokers = brokers
	cfg.Admin.Token = adminToken
	cfg.Log.Format = "text"
	cfg.Log.Level = "warn"
	cfg.Outbox.PollInterval = 100 * time.Millisecond
	return cfg
}

func startService(t *testing.T, cfg Config) *testService {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := newService(ctx, cfg, t.Output())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	conn, err := grpc.NewClient(svc.GRPCAddr(), append(track.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testService{t: t, grpc: bookshelfv1.NewBookshelfCommandsClient(conn), grpcAddr: svc.GRPCAddr(),
		base: "http://" + svc.HTTPAddr(), dataDir: cfg.Data.Dir}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("service run: %v", err)
		}
	}
	t.Cleanup(ts.stop)
	return ts
}

func newKafka(t *testing.T) *kafkatest.Cluster {
	return kafkatest.New(t, kafkatest.WithSeedTopics(3, bookshelfv1.Topic))
}

// withRequestID is how a caller (the gateway) passes its request id over gRPC.
func withRequestID(id string) context.Context {
	return track.WithRequestID(context.Background(), id)
}

func (ts *testService) do(method, path, body string, hdr ...string) (int, map[string]any, http.Header) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.base+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			ts.t.Fatalf("%s %s: non-JSON answer %d %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func hdrs(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

// recordsOf returns the records about one book (key = book id), waiting until there are n.
func recordsOf(t *testing.T, kc *kafkatest.Cluster, id string, n int) []*kgo.Record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []*kgo.Record
		for _, r := range kc.Records(t, bookshelfv1.Topic) {
			if string(r.Key) == id {
				out = append(out, r)
			}
		}
		if len(out) >= n || time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkEvent asserts the CloudEvents envelope of r and decodes its data into msg.
func checkEvent(t *testing.T, r *kgo.Record, typ, id, requestID string, msg proto.Message) {
	t.Helper()
	h := hdrs(r)
	want := map[string]string{
		"ce_specversion": "1.0", "ce_type": typ, "ce_source": bookshelfv1.SourceCommands,
		"ce_subject": id, "content-type": "application/json", "ce_requestid": requestID,
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s event: header %s = %q, want %q (all: %v)", typ, k, h[k], v, h)
		}
	}
	if string(r.Key) != id || h["ce_id"] == "" {
		t.Errorf("%s event: key %q ce_id %q", typ, r.Key, h["ce_id"])
	}
	if _, err := time.Parse(time.RFC3339Nano, h["ce_time"]); err != nil {
		t.Errorf("%s event: ce_time %q: %v", typ, h["ce_time"], err)
	}
	if !strings.Contains(string(r.Value), `"id"`) {
		t.Errorf("%s event: data %s", typ, r.Value)
	}
	if err := protojson.Unmarshal(r.Value, msg); err != nil {
		t.Fatalf("%s event: data %s: %v", typ, r.Value, err)
	}
}

func TestGRPCCommandsPublishExactlyTheirEvents(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))

	added, err := ts.grpc.AddBook(withRequestID("req-add"), &bookshelfv1.AddBookRequest{
		Title: " The Go Programming Language ", Author: "Donovan, Kernighan", Isbn: "978-0134190440", Published: "2015"})
	if err != nil {
		t.Fatal(err)
	}
	b := added.GetBook()
	if b.GetId() == "" || b.GetTitle() != "The Go Programming Language" || b.GetVersion() != 1 || b.GetCreatedAt() == nil {
		t.Fatalf("AddBook answered %v", b)
	}
	read, err := ts.grpc.MarkBookRead(withRequestID("req-read"), &bookshelfv1.MarkBookReadRequest{Id: b.GetId(), ExpectedVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if read.GetBook().GetVersion() != 2 || read.GetBook().GetReadCount() != 1 || read.GetBook().GetLastReadAt() == nil {
		t.Fatalf("MarkBookRead answered %v", read.GetBook())
	}
	got, err := ts.grpc.GetBook(context.Background(), &bookshelfv1.GetBookRequest{Id: b.GetId()})
	if err != nil || !proto.Equal(got.GetBook(), read.GetBook()) {
		t.Fatalf("GetBook = %v, %v; want %v", got.GetBook(), err, read.GetBook())
	}
	removed, err := ts.grpc.RemoveBook(withRequestID("req-remove"), &bookshelfv1.RemoveBookRequest{Id: b.GetId()})
	if err != nil || removed.GetBook().GetVersion() != 2 {
		t.Fatalf("RemoveBook = %v, %v", removed, err)
	}
	if _, err := ts.grpc.GetBook(context.Background(), &bookshelfv1.GetBookRequest{Id: b.GetId()}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetBook after remove: %v", err)
	}

	recs := recordsOf(t, kc, b.GetId(), 3)
	if len(recs) != 3 {
		t.Fatalf("%d events for the book, want 3", len(recs))
	}
	var ea bookshelfv1.BookAdded
	checkEvent(t, recs[0], bookshelfv1.TypeBookAdded, b.GetId(), "req-add", &ea)
	if ea.GetTitle() != b.GetTitle() || ea.GetAuthor() != b.GetAuthor() || ea.GetIsbn() != "978-0134190440" || ea.GetPublished() != "2015" {
		t.Errorf("added data %v", &ea)
	}
	if !strings.Contains(string(recs[0].Value), `"isbn"`) {
		t.Errorf("event data must use proto names: %s", recs[0].Value)
	}
	var er bookshelfv1.BookRead
	checkEvent(t, recs[1], bookshelfv1.TypeBookRead, b.GetId(), "req-read", &er)
	if er.GetTitle() != b.GetTitle() || !er.GetReadAt().AsTime().Equal(read.GetBook().GetLastReadAt().AsTime()) ||
		!strings.Contains(string(recs[1].Value), `"read_at"`) {
		t.Errorf("read data %s", recs[1].Value)
	}
	var er2 bookshelfv1.BookRemoved
	checkEvent(t, recs[2], bookshelfv1.TypeBookRemoved, b.GetId(), "req-remove", &er2)
	if er2.GetId() != b.GetId() {
		t.Errorf("removed data %s", recs[2].Value)
	}
	ids := map[string]bool{}
	for _, r := range recs {
		ids[hdrs(r)["ce_id"]] = true
	}
	if len(ids) != 3 {
		t.Errorf("event ids not unique: %v", ids)
	}

	// Refused commands publish nothing.
	for _, c := range []struct {
		call func() error
		code codes.Code
	}{
		{func() error {
			_, err := ts.grpc.MarkBookRead(context.Background(), &bookshelfv1.MarkBookReadRequest{Id: b.GetId()})
			return err
		}, codes.NotFound},
		{func() error {
			_, err := ts.grpc.RemoveBook(context.Background(), &bookshelfv1.RemoveBookRequest{Id: b.GetId()})
			return err
		}, codes.NotFound},
		{func() error {
			_, err := ts.grpc.AddBook(context.Background(), &bookshelfv1.AddBookRequest{Title: "T"})
			return err
		}, codes.InvalidArgument},
		{func() error {
			_, err := ts.grpc.MarkBookRead(context.Background(), &bookshelfv1.MarkBookReadRequest{})
			return err
		}, codes.InvalidArgument},
	} {
		if err := c.call(); status.Code(err) != c.code {
			t.Errorf("want %s, got %v", c.code, err)
		}
	}
	time.Sleep(300 * time.Millisecond) // a relay poll or two: anything wrongly queued would show
	if n := len(kc.Records(t, bookshelfv1.Topic)); n != 3 {
		t.Fatalf("%d records on the topic, want only the 3 accepted events", n)
	}
}

func TestRESTCommandsOnTheServiceMux(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))

	code, body, h := ts.do("POST", "/v1/books", `{"title":"Dune","author":"Frank Herbert","isbn":"0-441-17271-7","published":"1965-08-01"}`,
		"X-Request-Id", "rest-add")
	if code != http.StatusCreated || h.Get("X-Request-Id") != "rest-add" {
		t.Fatalf("POST /v1/books: %d %v (X-Request-Id %q)", code, body, h.Get("X-Request-Id"))
	}
	b := body["book"].(map[string]any)
	id := b["id"].(string)
	if b["title"] != "Dune" || b["version"] == nil || b["created_at"] == nil {
		t.Fatalf("book JSON must use proto names: %v", b)
	}
	code, body, _ = ts.do("POST", "/v1/books/"+id+"/read", `{}`, "X-Request-Id", "rest-read")
	if code != http.StatusOK || body["book"].(map[string]any)["read_count"] == nil {
		t.Fatalf("POST read: %d %v", code, body)
	}
	code, body, _ = ts.do("GET", "/v1/books", "")
	if code != http.StatusOK || len(body["books"].([]any)) != 1 {
		t.Fatalf("GET /v1/books: %d %v", code, body)
	}
	code, _, _ = ts.do("GET", "/v1/books/"+id, "")
	if code != http.StatusOK {
		t.Fatalf("GET book: %d", code)
	}
	code, body, _ = ts.do("DELETE", "/v1/books/"+id+"?expected_version=1", "")
	if code != http.StatusConflict || body["code"] == nil || !strings.Contains(fmt.Sprint(body["message"]), "version 2") {
		t.Fatalf("DELETE with a stale expected_version: %d %v", code, body)
	}
	code, _, _ = ts.do("DELETE", "/v1/books/"+id+"?expected_version=2", "", "X-Request-Id", "rest-remove")
	if code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v1/books/" + id}, {"DELETE", "/v1/books/" + id}, {"POST", "/v1/books/" + id + "/read"}} {
		code, body, _ := ts.do(c.method, c.path, map[bool]string{true: "{}"}[c.method == "POST"])
		if code != http.StatusNotFound || body["code"] == nil || body["message"] == nil {
			t.Errorf("%s %s of a removed book: %d %v", c.method, c.path, code, body)
		}
	}

	recs := recordsOf(t, kc, id, 3)
	if len(recs) != 3 {
		t.Fatalf("%d events, want 3", len(recs))
	}
	checkEvent(t, recs[0], bookshelfv1.TypeBookAdded, id, "rest-add", &bookshelfv1.BookAdded{})
	checkEvent(t, recs[1], bookshelfv1.TypeBookRead, id, "rest-read", &bookshelfv1.BookRead{})
	checkEvent(t, recs[2], bookshelfv1.TypeBookRemoved, id, "rest-remove", &bookshelfv1.BookRemoved{})
}

// Bad input answers 400 JSON naming the field; nothing is published.
func TestRESTValidationErrorsNameTheField(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))
	for _, c := range []struct{ body, field string }{
		{`{"title":"  ","author":"A"}`, "title"},
		{`{"title":"T"}`, "author"},
		{`{"title":"T","author":"A","isbn":"978-0134190441"}`, "isbn"},
		{`{"title":"T","author":"A","published":"someday"}`, "published"},
		{`{"title":"T","author":"A","pages":3}`, "pages"},
	} {
		code, body, _ := ts.do("POST", "/v1/books", c.body)
		if code != http.StatusBadRequest || body["field"] != c.field || body["code"] == nil || body["message"] == "" {
			t.Errorf("POST %s: %d %v, want 400 naming %q", c.body, code, body, c.field)
		}
	}
	code, body, _ := ts.do("POST", "/v1/books", `{"title":"T","author":"A"}`, "Idempotency-Key", strings.Repeat("k", 300))
	if code != http.StatusBadRequest || body["field"] != "Idempotency-Key" {
		t.Errorf("oversized idempotency key: %d %v", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(kc.Records(t, bookshelfv1.Topic)); n != 0 {
		t.Fatalf("%d records published for refused commands", n)
	}
}

// A retried command (same Idempotency-Key) answers the first response and appends nothing; the
// key reused for another request is refused.
func TestIdempotentRetry(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))
	const req = `{"title":"Dune","author":"Frank Herbert"}`
	code1, first, _ := ts.do("POST", "/v1/books", req, "Idempotency-Key", "add-dune-1")
	code2, again, _ := ts.do("POST", "/v1/books", req, "Idempotency-Key", "add-dune-1")
	if code1 != http.StatusCreated || code2 != http.StatusCreated || fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("retry answered differently:\n%d %v\n%d %v", code1, first, code2, again)
	}
	id := first["book"].(map[string]any)["id"].(string)
	code, body, _ := ts.do("POST", "/v1/books", `{"title":"Other","author":"X"}`, "Idempotency-Key", "add-dune-1")
	if code != http.StatusConflict || !strings.Contains(fmt.Sprint(body["message"]), "idempotency") {
		t.Fatalf("key reused for another request: %d %v", code, body)
	}

	// The same over gRPC metadata, for MarkBookRead; run the retries concurrently too.
	ctx := metadata.AppendToOutgoingContext(context.Background(), bookshelfv1.MetadataIdempotencyKey, "read-dune-1")
	answers := make(chan *bookshelfv1.BookResponse, 8)
	for range 8 {
		go func() {
			r, err := ts.grpc.MarkBookRead(ctx, &bookshelfv1.MarkBookReadRequest{Id: id})
			if err != nil {
				t.Error(err)
			}
			answers <- r
		}()
	}
	var firstRead *bookshelfv1.BookResponse
	for range 8 {
		r := <-answers
		if firstRead == nil {
			firstRead = r
		} else if !proto.Equal(r, firstRead) {
			t.Fatalf("concurrent retries answered differently: %v vs %v", r, firstRead)
		}
	}
	if firstRead.GetBook().GetReadCount() != 1 || firstRead.GetBook().GetVersion() != 2 {
		t.Fatalf("MarkBookRead applied more than once: %v", firstRead.GetBook())
	}
	time.Sleep(300 * time.Millisecond)
	if recs := recordsOf(t, kc, id, 2); len(recs) != 2 {
		t.Fatalf("%d events for the book, want 2 (one add, one read)", len(recs))
	}
}

// Many parallel MarkBookRead with the same expected_version: exactly one wins each round, the
// others get ABORTED; without expected_version none is lost.
func TestConcurrentWritersNeverLoseAnUpdate(t *testing.T) {
	kc := newKafka(t)
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))
	added, err := ts.grpc.AddBook(context.Background(), &bookshelfv1.AddBookRequest{Title: "T", Author: "A"})
	if err != nil {
		t.Fatal(err)
	}
	id := added.GetBook().GetId()
	const writers, rounds = 16, 5
	var ok, aborted int
	for range rounds {
		cur, err := ts.grpc.GetBook(context.Background(), &bookshelfv1.GetBookRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		v := cur.GetBook().GetVersion()
		start := make(chan struct{})
		codesc := make(chan codes.Code, writers)
		for range writers {
			go func() {
				<-start
				_, err := ts.grpc.MarkBookRead(context.Background(), &bookshelfv1.MarkBookReadRequest{Id: id, ExpectedVersion: v})
				codesc <- status.Code(err)
			}()
		}
		close(start)
		won := 0
		for range writers {
			switch c := <-codesc; c {
			case codes.OK:
				won++
			case codes.Aborted:
				aborted++
			default:
				t.Fatalf("unexpected %s", c)
			}
		}
		if won != 1 {
			t.Fatalf("%d writers won with expected_version %d, want exactly 1", won, v)
		}
		ok += won
	}
	// Unconditional writers: every one is applied.
	done := make(chan error, writers)
	for range writers {
		go func() {
			_, err := ts.grpc.MarkBookRead(context.Background(), &bookshelfv1.MarkBookReadRequest{Id: id})
			done <- err
		}()
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ok += writers
	final, err := ts.grpc.GetBook(context.Background(), &bookshelfv1.GetBookRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	if final.GetBook().GetVersion() != int64(ok)+1 || final.GetBook().GetReadCount() != int64(ok) {
		t.Fatalf("lost update: version %d read_count %d after %d successful reads", final.GetBook().GetVersion(), final.GetBook().GetReadCount(), ok)
	}
	if aborted != rounds*(writers-1) {
		t.Fatalf("%d conflicts reported, want %d", aborted, rounds*(writers-1))
	}
	if recs := recordsOf(t, kc, id, ok+1); len(recs) != ok+1 {
		t.Fatalf("%d events on Kafka, want %d", len(recs), ok+1)
	}
}
