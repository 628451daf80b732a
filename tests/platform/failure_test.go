package platform

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/brook-dev/brook/kit/events"
)

// CloudEvents types of the bookshelf topic (api/proto/brook/bookshelf/v1/events.proto).
const (
	typeAdded = "bookshelf.book.added.v1"
	typeRead  = "bookshelf.book.read.v1"
)

// fault is one failure injected while the write load runs. inject returns once the component
// is back (restarted and ready).
type fault struct {
	name   string
	inject func(ctx context.Context) error
	// consul: the fault makes the agent forget every registration; recovery includes every
	// service registering itself again and passing its checks.
	consul bool
}

// recovery is how long after a fault was injected each sign of recovery was first seen.
type recovery struct {
	fault   string
	at      int           // commands accepted when it was injected
	back    time.Duration // the component is restarted and ready
	write   time.Duration // the next command accepted through the gateway
	visible time.Duration // a book marked read after the component was back is in /v1/last-read
	passing time.Duration // every service passing in Consul again (Consul faults only)
}

// Load and pacing of TestFailures: a steady trickle of writes, so that the load still runs
// when the last fault has recovered (the view's limit of 100 bounds the books marked read).
const (
	failBooks    = 300 // at most; every third is marked read
	failRate     = 5   // first attempts per second, all clients together
	failWorkers  = 8
	failBetween  = 10               // commands accepted after one recovery before the next fault
	recoverLimit = 90 * time.Second // per sign of recovery
)

// TestFailures runs a load of authenticated writes through the gateway while, one after the
// other, the commands service, the gateway and the read view are killed with SIGKILL and
// restarted, the Kafka broker process (devstack) is killed with SIGKILL and restarted on the
// same port and data dir, and the Consul agent is killed with SIGKILL and restarted, then
// restarted cleanly (a dev agent forgets every registration either way; the services must
// register themselves again). Clients retry each command with the same Idempotency-Key until
// it is accepted; for one book in ten the client also throws the first answer away and
// retries, as after a connection lost once the server had acted. After each fault the test
// measures how long the component took to come back, until writes were accepted again, until
// a book marked read afterwards showed in the view, and (Consul) until every service passed
// its checks again. Afterwards:
//
//   - the write side lists exactly the books added, each once (retries created no duplicates);
//   - the topic holds, for every accepted command, events with exactly one distinct ce_id
//     (the outbox may publish an entry more than once after a crash: at-least-once, counted as
//     "duplicates delivered"; a second distinct event would be a command applied twice), and
//     no event for any other book;
//   - the read view shows exactly the books marked read, each once, with the read time of its
//     command (the consumer side is exactly-once), and nothing was dead-lettered;
//   - every service is registered and passing in Consul again.
func TestFailures(t *testing.T) {
	s := startStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := s.waitPassing(ctx); err != nil {
		t.Fatal(err)
	}

	load := newLoad(newAPIClient(s.gateway.httpAddr, s.token), failBooks, failWorkers, failRate,
		10, // one book in ten: both commands are retried after an answer was lost
		fmt.Sprintf("failure-%d", time.Now().UnixNano()))
	if load.maxReads() > 100 {
		t.Fatalf("the load marks up to %d books read; /v1/last-read shows at most 100", load.maxReads())
	}
	faults := []fault{
		{name: "kill -9 bookshelf-commands", inject: func(ctx context.Context) error {
			return crashAndRestart(ctx, s.commands)
		}},
		{name: "kill -9 gateway", inject: func(ctx context.Context) error {
			return crashAndRestart(ctx, s.gateway)
		}},
		{name: "kill -9 bookshelf-lastread", inject: func(ctx context.Context) error {
			return crashAndRestart(ctx, s.lastread)
		}},
		{name: "kill -9 Kafka broker", inject: func(ctx context.Context) error {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return s.kafka.crash(rctx, time.Second)
		}},
		{name: "kill -9 Consul agent", consul: true, inject: func(context.Context) error {
			s.consul.Kill()
			time.Sleep(time.Second)
			s.consul.Start(t)
			return nil
		}},
		{name: "restart Consul agent", consul: true, inject: func(context.Context) error {
			s.consul.Restart(t)
			return nil
		}},
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, 3*time.Minute)
	defer stopLoad()
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.run(loadCtx)
	}()
	defer func() { stopLoad(); <-done }() // the load never outlives the test

	var recs []recovery
	next := failBetween
	for _, f := range faults {
		if !load.waitAccepted(ctx, next, done) {
			t.Fatalf("fault %q: the load ended or timed out before %d commands were accepted (%d were); first failure: %v",
				f.name, next, load.accepted.Load(), load.firstFailure())
		}
		r, err := injectAndMeasure(ctx, s, load, f, done)
		if err != nil {
			t.Fatalf("fault %q: %v", f.name, err)
		}
		recs = append(recs, r)
		next = int(load.accepted.Load()) + failBetween
	}
	if !load.waitAccepted(ctx, next, done) {
		t.Fatalf("the load ended or timed out before %d commands were accepted after the last fault (%d were); first failure: %v",
			next, load.accepted.Load(), load.firstFailure())
	}
	load.finish()
	<-done
	if len(load.failures) > 0 {
		t.Fatalf("%d commands were not accepted, first: %v", len(load.failures), load.failures[0])
	}
	total := load.total()
	if got := int(load.accepted.Load()); got != total {
		t.Fatalf("accepted %d commands, want %d", got, total)
	}

	vctx, vcancel := context.WithTimeout(ctx, 90*time.Second)
	defer vcancel()
	ev := checkEventLog(vctx, t, s, load)
	view := checkView(vctx, t, s, load)
	listed := checkBooks(vctx, t, s, load)
	dlq, err := s.kafka.records(vctx, lastreadDLQ)
	if err != nil {
		t.Errorf("read %s: %v", lastreadDLQ, err)
	}
	if len(dlq) > 0 {
		t.Errorf("%s holds %d records; the view dead-lettered events of the platform's own services", lastreadDLQ, len(dlq))
	}
	if err := s.waitPassing(vctx); err != nil {
		t.Errorf("at the end: %v", err)
	}

	summary := []string{
		fmt.Sprintf("commands accepted: %d (%d books added, %d marked read)", total, len(load.added), len(load.read)),
		fmt.Sprintf("attempts: %d (%d retries with the same Idempotency-Key, %d of them after a deliberately lost answer)",
			load.attempts, load.attempts-total, load.lostAnswers),
		fmt.Sprintf("events on %q: %d records, %d distinct ce_id, %d duplicates delivered (outbox at-least-once), %d missing, %d unexpected",
			topic, ev.records, ev.distinct, ev.records-ev.distinct, ev.missing, ev.unexpected),
		fmt.Sprintf("view /v1/last-read?limit=100: %d entries (%d expected); books listed: %d (%d expected); %s: %d records",
			view, len(load.read), listed, len(load.added), lastreadDLQ, len(dlq)),
	}
	t.Log("counts:\n  " + strings.Join(summary, "\n  "))
	t.Log("recovery, measured from the fault (\"-\": not measured; the load had ended):\n" + recoveryTable(recs))
}

// injectAndMeasure injects f and measures its recovery: the component back (inject returned),
// then, watched at the same time, the next command accepted, a book marked read after that
// visible in the view, and (Consul faults) every service passing again. A sign not seen
// within recoverLimit is an error; one that cannot be seen because the load ended is left 0.
func injectAndMeasure(ctx context.Context, s *stack, load *writeLoad, f fault, done <-chan struct{}) (recovery, error) {
	r := recovery{fault: f.name, at: int(load.accepted.Load())}
	start := time.Now()
	if err := f.inject(ctx); err != nil {
		return r, err
	}
	r.back = time.Since(start)
	accepted := int(load.accepted.Load())
	reads, _ := load.readsAccepted(0)

	mctx, cancel := context.WithTimeout(ctx, recoverLimit)
	defer cancel()
	var (
		wg                   sync.WaitGroup
		errWrite, errV, errP error
	)
	wg.Go(func() {
		if load.waitAccepted(mctx, accepted+1, done) {
			r.write = time.Since(start)
		} else if mctx.Err() != nil {
			errWrite = fmt.Errorf("no command accepted within %s of the fault (%d accepted)", recoverLimit, accepted)
		}
	})
	wg.Go(func() {
		var seen bool
		if seen, errV = waitVisible(mctx, s, load, reads, done); seen {
			r.visible = time.Since(start)
		}
	})
	if f.consul {
		wg.Go(func() {
			if errP = s.waitPassing(mctx); errP == nil {
				r.passing = time.Since(start)
			}
		})
	}
	wg.Wait()
	return r, errors.Join(errWrite, errV, errP)
}

// waitVisible waits for the n-th mark-read command of the load (0-based: the first one accepted
// after the fault when n was the count then) and then until /v1/last-read lists its book. It
// reports false, with no error, when the load ended before that command.
func waitVisible(ctx context.Context, s *stack, load *writeLoad, n int, done <-chan struct{}) (bool, error) {
	var id string
	for id == "" {
		if _, id = load.readsAccepted(n); id != "" {
			break
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("no book marked read within %s of the fault", recoverLimit)
		case <-done:
			if _, id = load.readsAccepted(n); id == "" {
				return false, nil
			}
		case <-time.After(20 * time.Millisecond):
		}
	}
	c := newAPIClient(s.gateway.httpAddr, "")
	last := "not polled yet"
	for {
		list, err := c.lastRead(ctx, 100)
		if err == nil {
			for _, b := range list {
				if b.ID == id {
					return true, nil
				}
			}
			last = fmt.Sprintf("%d entries, not the book", len(list))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("book %s, marked read after the fault, not in /v1/last-read within %s; last: %s",
				id, recoverLimit, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// recoveryTable formats the recoveries as an aligned table.
func recoveryTable(recs []recovery) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  fault\tat command\tcomponent back\tnext write accepted\tread visible in view\tall passing in Consul\t")
	d := func(v time.Duration) string {
		if v == 0 {
			return "-"
		}
		return v.Round(10 * time.Millisecond).String()
	}
	for _, r := range recs {
		passing := d(r.passing)
		if r.passing == 0 {
			passing = "" // not a Consul fault
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t\n", r.fault, r.at, d(r.back), d(r.write), d(r.visible), passing)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// crashAndRestart kills p with SIGKILL, leaves it down a moment, and restarts it until ready.
func crashAndRestart(ctx context.Context, p *proc) error {
	if err := p.kill(); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return p.restart(rctx)
}

// eventCounts summarises the topic after the run.
type eventCounts struct{ records, distinct, missing, unexpected int }

// checkEventLog waits until every accepted command has an event on the topic, then checks that
// each has exactly one distinct event (by ce_id) and that no other event exists.
func checkEventLog(ctx context.Context, t *testing.T, s *stack, load *writeLoad) eventCounts {
	t.Helper()
	type key struct{ typ, book string }
	want := map[key]bool{}
	for id := range load.added {
		want[key{typeAdded, id}] = true
	}
	for id := range load.read {
		want[key{typeRead, id}] = true
	}
	var (
		counts eventCounts
		ids    map[key]map[string]bool // (type, book) -> distinct ce_ids
	)
	for {
		recs, err := s.kafka.records(ctx, topic)
		if err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		counts = eventCounts{records: len(recs)}
		ids = map[key]map[string]bool{}
		seen := map[string]bool{}
		for _, r := range recs {
			hs := make([]events.Header, len(r.Headers))
			for i, h := range r.Headers {
				hs[i] = events.Header{Key: h.Key, Value: h.Value}
			}
			ev, err := events.Decode(r.Key, hs, r.Value)
			if err != nil {
				t.Errorf("%s partition %d offset %d is not a CloudEvent: %v", topic, r.Partition, r.Offset, err)
				continue
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				counts.distinct++
			}
			book := ev.Subject
			if book == "" {
				book = string(r.Key)
			}
			k := key{ev.Type, book}
			if ids[k] == nil {
				ids[k] = map[string]bool{}
			}
			ids[k][ev.ID] = true
		}
		counts.missing = 0
		for k := range want {
			if len(ids[k]) == 0 {
				counts.missing++
			}
		}
		if counts.missing == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d accepted commands have no event on %s (the outbox did not publish them): %v",
				counts.missing, topic, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	for k, set := range ids {
		switch {
		case !want[k]:
			counts.unexpected += len(set)
			t.Errorf("unexpected event %s for book %s (%d distinct): no accepted command asked for it", k.typ, k.book, len(set))
		case len(set) != 1:
			counts.unexpected += len(set) - 1
			t.Errorf("%s for book %s: %d distinct events (ce_id %v), want exactly 1: a command was applied more than once",
				k.typ, k.book, len(set), slices.Sorted(maps.Keys(set)))
		}
	}
	return counts
}

// checkView waits until /v1/last-read?limit=100 (through the gateway) lists exactly the books
// marked read, then checks each is listed once with the read time its command answered.
func checkView(ctx context.Context, t *testing.T, s *stack, load *writeLoad) int {
	t.Helper()
	c := newAPIClient(s.gateway.httpAddr, "")
	var (
		list []bookJSON
		last string
	)
	for {
		var err error
		list, err = c.lastRead(ctx, 100)
		if err == nil {
			got := map[string]bool{}
			for _, b := range list {
				got[b.ID] = true
			}
			var missing, extra []string
			for id := range load.read {
				if !got[id] {
					missing = append(missing, id)
				}
			}
			for id := range got {
				if _, ok := load.read[id]; !ok {
					extra = append(extra, id)
				}
			}
			if len(missing) == 0 && len(extra) == 0 {
				break
			}
			last = fmt.Sprintf("%d entries, %d missing, %d not marked read (%v)", len(list), len(missing), len(extra), extra)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Errorf("the view never showed exactly the %d books marked read; last: %s", len(load.read), last)
			return len(list)
		case <-time.After(250 * time.Millisecond):
		}
	}
	if len(list) != len(load.read) {
		t.Errorf("view lists %d entries for %d books: some book is listed more than once", len(list), len(load.read))
	}
	for _, b := range list {
		cmd := load.read[b.ID]
		if !b.ReadAt.Equal(cmd.LastReadAt) {
			t.Errorf("view: book %s read_at %s, its mark-read command answered last_read_at %s",
				b.ID, b.ReadAt, cmd.LastReadAt)
		}
	}
	return len(list)
}

// checkBooks checks that GET /v1/books (write-side state) lists exactly the books added, once each.
func checkBooks(ctx context.Context, t *testing.T, s *stack, load *writeLoad) int {
	t.Helper()
	a, err := newAPIClient(s.gateway.httpAddr, "").do(ctx, http.MethodGet, "/v1/books", nil, "")
	if err != nil || a.status != http.StatusOK {
		t.Errorf("GET /v1/books: %v %s", err, a)
		return 0
	}
	books, err := decodeBooks(a)
	if err != nil {
		t.Error(err)
		return 0
	}
	seen := map[string]int{}
	for _, b := range books {
		seen[b.ID]++
		if _, ok := load.added[b.ID]; !ok {
			t.Errorf("GET /v1/books lists %s (%q), which no accepted command added", b.ID, b.Title)
		}
	}
	for id, i := range load.added {
		if seen[id] != 1 {
			t.Errorf("GET /v1/books lists book %d (%s) %d times, want once", i, id, seen[id])
		}
	}
	return len(books)
}
