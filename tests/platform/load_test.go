package platform

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// loadClients is the number of concurrent clients in every row of the load benchmark.
const loadClients = 8

// loadResult is one row of the load table.
type loadResult struct {
	ops      int
	rate     float64       // operations per second while sending
	p50, p99 time.Duration // visibility latency (view, or consumer for raw Kafka)
	kafkaP50 time.Duration // commands: 2xx to the event on the topic (outbox relay)
	kafkaP99 time.Duration
	unseen   int // operations never seen by the reader within the wait
}

// BenchmarkPlatform measures the whole platform under a concurrent write load and compares it
// with baselines measured in the same run, on the same broker and processes:
//
//   - gateway: b.N mark-read commands through the gateway (JWT, Consul-discovered gRPC
//     backend), and the latency from each command's 2xx to its book appearing in
//     /v1/last-read on the gateway;
//   - direct: the same commands on bookshelf-commands' own REST port, read on
//     bookshelf-lastread's own REST port (no gateway hop, no auth);
//   - kafka-raw: b.N records produced with franz-go (acks=all) and read back by a consumer on
//     the same broker: the floor under any event-driven path.
//
// The books are added before the timer starts; each row uses loadClients concurrent clients.
// Run with a fixed count, e.g. -benchtime 300x (scripts/load.sh); a table is printed at the end.
func BenchmarkPlatform(b *testing.B) {
	s := startStack(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := s.waitPassing(ctx); err != nil {
		b.Fatal(err)
	}
	results := map[string]loadResult{}
	b.Run("kafka-raw", func(b *testing.B) {
		results["kafka-raw"] = benchRawKafka(ctx, b, s.kafka.addr())
	})
	b.Run("direct", func(b *testing.B) {
		results["direct"] = benchReads(ctx, b, s.kafka.addr(),
			newAPIClient(s.commands.httpAddr, ""), newAPIClient(s.lastread.httpAddr, ""))
	})
	b.Run("gateway", func(b *testing.B) {
		r := benchReads(ctx, b, s.kafka.addr(), newAPIClient(s.gateway.httpAddr, s.token), newAPIClient(s.gateway.httpAddr, ""))
		results["gateway"] = r
		if d, ok := results["direct"]; ok && d.rate > 0 {
			b.ReportMetric(r.rate/d.rate, "x-direct-cmds/s")
		}
		if k, ok := results["kafka-raw"]; ok && k.p50 > 0 {
			b.ReportMetric(float64(r.p50)/float64(k.p50), "x-raw-kafka-p50")
		}
	})
	printTable(results)
}

// benchReads adds b.N books (untimed), then marks them read with loadClients concurrent clients
// through cmd, while a reader polls /v1/last-read?limit=100 on view and notes when each book
// first appears. It reports commands/s and the 2xx-to-visible latency.
func benchReads(ctx context.Context, b *testing.B, brokerAddr string, cmd, view *apiClient) loadResult {
	ids := make([]string, b.N)
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	for i := range ids {
		body, _ := json.Marshal(map[string]string{"title": fmt.Sprintf("Load Book %d", i), "author": "Load Test"})
		a, _, err := cmd.command(ctx, http.MethodPost, "/v1/books", body, fmt.Sprintf("%s-add-%d", prefix, i))
		if err != nil {
			b.Fatal(err)
		}
		bk, err := decodeBook(a)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = bk.ID
	}

	accepted := make([]time.Time, b.N)
	index := make(map[string]int, b.N)
	for i, id := range ids {
		index[id] = i
	}
	octx, stopObservers := context.WithCancel(ctx)
	defer stopObservers()
	onKafka, inView := newFirstSeen(index), newFirstSeen(index)
	if err := watchTopic(octx, brokerAddr, onKafka); err != nil {
		b.Fatal(err)
	}
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		pollView(octx, view, inView)
	}()

	b.ResetTimer()
	start := time.Now()
	jobs := make(chan int)
	errs := make(chan error, loadClients)
	var wg sync.WaitGroup
	for range loadClients {
		wg.Go(func() {
			for i := range jobs {
				_, _, err := cmd.command(ctx, http.MethodPost, "/v1/books/"+ids[i]+"/read", nil, fmt.Sprintf("%s-read-%d", prefix, i))
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				accepted[i] = time.Now()
			}
		})
	}
	for i := range ids {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}

	// Every book must show up; allow generous time to catch up (not measured).
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	kafkaAt, viewAt := onKafka.wait(wctx), inView.wait(wctx)
	stopObservers()
	<-viewDone

	r := loadResult{ops: b.N, rate: float64(b.N) / elapsed.Seconds()}
	var lat, relay []time.Duration
	for i := range accepted {
		if !viewAt[i].IsZero() {
			lat = append(lat, max(viewAt[i].Sub(accepted[i]), 0))
		}
		if !kafkaAt[i].IsZero() {
			relay = append(relay, max(kafkaAt[i].Sub(accepted[i]), 0))
		}
	}
	r.unseen = b.N - len(lat)
	r.p50, r.p99 = percentile(lat, 0.50), percentile(lat, 0.99)
	r.kafkaP50, r.kafkaP99 = percentile(relay, 0.50), percentile(relay, 0.99)
	if r.unseen > 0 {
		b.Errorf("%d of %d books read never appeared in /v1/last-read", r.unseen, b.N)
	}
	if len(relay) < b.N {
		b.Errorf("%d of %d read events never appeared on %s", b.N-len(relay), b.N, topic)
	}
	b.ReportMetric(r.rate, "cmds/s")
	b.ReportMetric(ms(r.p50), "p50-visible-ms")
	b.ReportMetric(ms(r.p99), "p99-visible-ms")
	b.ReportMetric(ms(r.kafkaP50), "p50-on-kafka-ms")
	return r
}

// firstSeen records when each watched book was first observed by one observer (the view
// reader or the topic watcher).
type firstSeen struct {
	index map[string]int // book id -> operation index

	mu    sync.Mutex
	seen  []time.Time
	count int
	more  chan struct{} // signalled after new marks
}

func newFirstSeen(index map[string]int) *firstSeen {
	return &firstSeen{index: index, seen: make([]time.Time, len(index)), more: make(chan struct{}, 1)}
}

// mark notes that the books were observed at `at` (only the first time counts).
func (f *firstSeen) mark(at time.Time, ids ...string) {
	f.mu.Lock()
	for _, id := range ids {
		if i, ok := f.index[id]; ok && f.seen[i].IsZero() {
			f.seen[i] = at
			f.count++
		}
	}
	f.mu.Unlock()
	select {
	case f.more <- struct{}{}:
	default:
	}
}

// wait blocks until every watched book was seen or ctx ends, and returns when each was first
// seen (zero for never).
func (f *firstSeen) wait(ctx context.Context) []time.Time {
	for {
		f.mu.Lock()
		done := f.count >= len(f.index)
		f.mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			return f.snapshot()
		case <-f.more:
		}
	}
	return f.snapshot()
}

func (f *firstSeen) snapshot() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// pollView polls /v1/last-read?limit=100 every 5 ms until ctx ends. The view keeps the newest
// 100 reads; at the rates of a shared machine a book stays in that window far longer than one
// polling interval.
func pollView(ctx context.Context, view *apiClient, f *firstSeen) {
	for ctx.Err() == nil {
		list, err := view.lastRead(ctx, 100)
		now := time.Now()
		if err == nil {
			ids := make([]string, len(list))
			for i, bk := range list {
				ids[i] = bk.ID
			}
			f.mark(now, ids...)
		}
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// watchTopic consumes the bookshelf topic from its current end until ctx ends and marks the
// subject of every book.read event: when the outbox relay got the event to Kafka.
func watchTopic(ctx context.Context, broker string, f *firstSeen) error {
	adm, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { from[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	go func() { // owned by watchTopic's caller through ctx
		defer cl.Close()
		close(ready)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now()
			var ids []string
			fs.EachRecord(func(r *kgo.Record) {
				hs := make([]events.Header, len(r.Headers))
				for i, h := range r.Headers {
					hs[i] = events.Header{Key: h.Key, Value: h.Value}
				}
				if ev, err := events.Decode(r.Key, hs, r.Value); err == nil && ev.Type == typeRead {
					ids = append(ids, ev.Subject)
				}
			})
			f.mark(now, ids...)
		}
	}()
	<-ready
	return nil
}

// benchRawKafka produces b.N records with loadClients concurrent synchronous producers
// (acks=all) to a new three-partition topic and consumes them on the same broker, measuring
// records/s while producing and the latency from the start of each produce to its consumption.
func benchRawKafka(ctx context.Context, b *testing.B, broker string) loadResult {
	topicName := fmt.Sprintf("bench-raw-%d", time.Now().UnixNano())
	prod, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic(topicName))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 3, 1, nil, topicName); err != nil {
		b.Fatalf("create %s: %v", topicName, err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topicName),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()

	sent := make([]time.Time, b.N)
	var mu sync.Mutex // guards sent against the consumer reading it
	consumed := make([]time.Duration, 0, b.N)
	cctx, stopConsumer := context.WithTimeout(ctx, 2*time.Minute)
	defer stopConsumer()
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for len(consumed) < b.N && cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				i := binary.BigEndian.Uint64(r.Value)
				consumed = append(consumed, max(now.Sub(sent[i]), 0))
			})
			mu.Unlock()
		}
	}()

	b.ResetTimer()
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var produceErr error
	var once sync.Once
	for range loadClients {
		wg.Go(func() {
			for i := range jobs {
				v := binary.BigEndian.AppendUint64(nil, uint64(i))
				mu.Lock()
				sent[i] = time.Now()
				mu.Unlock()
				if err := prod.ProduceSync(ctx, &kgo.Record{Key: v, Value: v}).FirstErr(); err != nil {
					once.Do(func() { produceErr = err })
				}
			}
		})
	}
	for i := range b.N {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if produceErr != nil {
		b.Fatalf("produce: %v", produceErr)
	}
	<-consumerDone
	r := loadResult{ops: b.N, rate: float64(b.N) / elapsed.Seconds(), unseen: b.N - len(consumed)}
	r.p50, r.p99 = percentile(consumed, 0.50), percentile(consumed, 0.99)
	if r.unseen > 0 {
		b.Errorf("%d of %d produced records were not consumed", r.unseen, b.N)
	}
	b.ReportMetric(r.rate, "records/s")
	b.ReportMetric(ms(r.p50), "p50-consumed-ms")
	b.ReportMetric(ms(r.p99), "p99-consumed-ms")
	return r
}

// percentile returns the q-quantile (nearest rank) of ds, 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(q*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// printTable writes the load table to stdout (go test shows it after the benchmark lines).
func printTable(rs map[string]loadResult) {
	rows := []struct{ key, what, unit string }{
		{"gateway", "gateway REST -> commands -> Kafka -> lastread view", "cmds/s"},
		{"direct", "commands REST (direct) -> Kafka -> lastread REST", "cmds/s"},
		{"kafka-raw", "raw Kafka: produce (acks=all) -> consume, franz-go", "records/s"},
	}
	fmt.Printf("\nplatform load: %d concurrent clients; latency from each command's 2xx (raw Kafka: from produce)\n", loadClients)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\tops\tthroughput\ton Kafka p50/p99\tvisible p50/p99\tunseen")
	for _, row := range rows {
		r, ok := rs[row.key]
		if !ok {
			continue
		}
		onKafka := "-"
		if row.key != "kafka-raw" {
			onKafka = fmt.Sprintf("%.1f / %.1f ms", ms(r.kafkaP50), ms(r.kafkaP99))
		}
		fmt.Fprintf(w, "%s\t%d\t%.0f %s\t%s\t%.1f / %.1f ms\t%d\n",
			row.what, r.ops, r.rate, row.unit, onKafka, ms(r.p50), ms(r.p99), r.unseen)
	}
	w.Flush()
	g, d, k := rs["gateway"], rs["direct"], rs["kafka-raw"]
	if d.rate > 0 && d.p50 > 0 && k.p50 > 0 {
		fmt.Printf("gateway vs direct: throughput %.2fx, p50 visible %.2fx; gateway p50 visible vs raw Kafka p50: %.0fx\n\n",
			g.rate/d.rate, float64(g.p50)/float64(d.p50), float64(g.p50)/float64(k.p50))
	}
}
