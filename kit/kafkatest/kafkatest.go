// Package kafkatest starts an in-process Kafka-protocol cluster (franz-go's kfake) for tests,
// and offers small helpers to create topics, publish records and wait for records.
//
// The cluster listens on random free ports on 127.0.0.1 and is closed by t.Cleanup, so tests
// can run in parallel without coordinating ports. The helpers use franz-go's kgo client, which
// is a different Kafka client implementation from the IBM/sarama client used by kit/events:
// a test that publishes with one and reads with the other checks wire interoperability.
//
// Sarama clients talking to the cluster must set Config.Version to a version kfake speaks;
// use events.KafkaVersion (sarama.V3_6_0_0 at the time of writing).
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster is a running in-process Kafka-protocol cluster.
type Cluster struct {
	c       *kfake.Cluster
	brokers []string

	// One kgo client, created on first use and closed with the cluster, serves Publish,
	// CreateTopic and Records (the latter two through kadm).
	clientOnce sync.Once
	cl         *kgo.Client
	clErr      error
	closing    sync.Once
}

type options struct {
	brokers    int
	dataDir    string
	seedParts  int32
	seedTopics []string
	logTo      io.Writer
	extra      []kfake.Opt
}

// Option configures New.
type Option func(*options)

// WithBrokers sets the number of brokers (default 1).
func WithBrokers(n int) Option { return func(o *options) { o.brokers = n } }

// WithDataDir persists the cluster's state in dir, so a second New with the same dir (after the
// first cluster was closed) sees the topics, records and committed offsets of the first.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithSeedTopics creates the topics, each with the given number of partitions, at start.
func WithSeedTopics(partitions int32, topics ...string) Option {
	return func(o *options) { o.seedParts = partitions; o.seedTopics = append(o.seedTopics, topics...) }
}

// WithLogs writes the broker's own log (info level) to w; useful when debugging a test.
func WithLogs(w io.Writer) Option { return func(o *options) { o.logTo = w } }

// WithKfakeOptions passes raw kfake options through, for what this package does not wrap.
func WithKfakeOptions(opts ...kfake.Opt) Option {
	return func(o *options) { o.extra = append(o.extra, opts...) }
}

// New starts a cluster and registers its shutdown with t.Cleanup. It fails the test if the
// cluster cannot start. Group session timeouts down to 100ms are allowed so consumer tests can
// detect a dead member quickly.
//
// Setting KAFKATEST_LOG=1 in the environment prints the broker's log to stderr.
func New(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{brokers: 1}
	for _, opt := range opts {
		opt(&o)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(o.brokers),
		kfake.ClusterID("kafkatest"),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
		kfake.DefaultNumPartitions(1),
	}
	if o.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(o.dataDir))
	}
	if len(o.seedTopics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(o.seedParts, o.seedTopics...))
	}
	if o.logTo == nil && os.Getenv("KAFKATEST_LOG") != "" {
		o.logTo = os.Stderr
	}
	if o.logTo != nil {
		kopts = append(kopts, kfake.WithLogger(kfake.BasicLogger(o.logTo, kfake.LogLevelInfo)))
	}
	kopts = append(kopts, o.extra...)
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		t.Fatalf("kafkatest: start cluster: %v", err)
	}
	cl := &Cluster{c: c, brokers: c.ListenAddrs()}
	t.Cleanup(cl.Close)
	return cl
}

// Brokers returns the bootstrap addresses ("127.0.0.1:port").
func (c *Cluster) Brokers() []string { return append([]string(nil), c.brokers...) }

// Kfake returns the underlying kfake cluster, for fault injection.
func (c *Cluster) Kfake() *kfake.Cluster { return c.c }

// Close stops the cluster now (it is also closed at cleanup; closing twice is safe).
func (c *Cluster) Close() {
	c.closing.Do(func() {
		c.clientOnce.Do(func() { c.clErr = errors.New("cluster closed") })
		if c.cl != nil {
			c.cl.Close()
		}
		c.c.Close()
	})
}

// Client returns a kgo client connected to the cluster, closed at cleanup.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopic creates a topic with the given partition count (replication 1). A topic that
// already exists is not an error.
func (c *Cluster) CreateTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	adm := c.admin(t, "create topic "+name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err != nil && resp.Err == nil {
		t.Fatalf("kafkatest: create topic %q: %v", name, err)
	}
	if resp.Err != nil && !isExists(resp.Err) {
		t.Fatalf("kafkatest: create topic %q: %v", name, resp.Err)
	}
}

func isExists(err error) bool { return errors.Is(err, kerr.TopicAlreadyExists) }

// shared returns the cluster's own client, creating it on first use; what fails the test
// says what was being done.
func (c *Cluster) shared(t testing.TB, what string) *kgo.Client {
	t.Helper()
	c.clientOnce.Do(func() {
		c.cl, c.clErr = kgo.NewClient(kgo.SeedBrokers(c.brokers...), kgo.AllowAutoTopicCreation())
	})
	if c.clErr != nil {
		t.Fatalf("kafkatest: %s: %v", what, c.clErr)
	}
	return c.cl
}

// admin wraps the shared client in kadm (which holds no connections of its own).
func (c *Cluster) admin(t testing.TB, what string) *kadm.Client {
	t.Helper()
	return kadm.NewClient(c.shared(t, what))
}

// Header is a record header for Publish.
type Header = kgo.RecordHeader

// H builds a Header from strings.
func H(key, value string) Header { return kgo.RecordHeader{Key: key, Value: []byte(value)} }

// Publish produces one record synchronously with kgo and fails the test on error. A nil key
// publishes a record without a key.
func (c *Cluster) Publish(t testing.TB, topic string, key, value []byte, headers ...Header) {
	t.Helper()
	cl := c.shared(t, fmt.Sprintf("publish to %q", topic))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: topic, Key: key, Value: value, Headers: headers}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatalf("kafkatest: publish to %q: %v", topic, err)
	}
}

// WaitFor reads topic from the beginning of every partition until it has seen n records, and
// returns the first n it saw (in per-partition order). It fails the test if fewer than n
// arrive within timeout. It does not join a consumer group and commits nothing.
func (c *Cluster) WaitFor(t testing.TB, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	recs, err := c.read(topic, n, timeout)
	if err != nil {
		t.Fatalf("kafkatest: wait for %d records on %q: %v (got %d)", n, topic, err, len(recs))
	}
	return recs
}

// Records returns every record currently in topic (reading from the log start until the
// high watermark of each partition). It fails the test on error.
func (c *Cluster) Records(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	adm := c.admin(t, fmt.Sprintf("records of %q", topic))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: start offsets of %q: %v", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: end offsets of %q: %v", topic, err)
	}
	total := 0
	ends.Each(func(end kadm.ListedOffset) {
		start, ok := starts.Lookup(end.Topic, end.Partition)
		if end.Err == nil && ok && start.Err == nil {
			total += int(end.Offset - start.Offset)
		}
	})
	if total == 0 {
		return nil
	}
	return c.WaitFor(t, topic, total, 30*time.Second)
}

func (c *Cluster) read(topic string, n int, timeout time.Duration) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return recs, fmt.Errorf("timed out after %s", timeout)
		}
		// Fetch errors (e.g. an unknown topic not created yet) are transient here: keep
		// polling until the deadline.
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs[:n], nil
}
