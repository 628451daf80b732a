package push

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/events"
)

// Timeouts that bound how long kafkapush waits for an unreachable broker: each seed broker
// gets a DialTimeout per attempt and metadata is tried MetadataRetries+1 times, so a dead
// address fails in a few seconds instead of sarama's default minutes.
const (
	DialTimeout     = 3 * time.Second
	MetadataRetries = 1
	requestTimeout  = 10 * time.Second
	maxErrorsShown  = 5
)

// Config says where and how to produce.
type Config struct {
	Brokers     []string
	Topic       string // "": records name their topics (dlq replay); not checked here
	Partition   int32  // -1: events.Partitioner picks (murmur2 of the key; random without key)
	Acks        string // all | 1 | 0
	Compression string // none | gzip | snappy | lz4 | zstd
	ClientID    string
}

// Producer is a Sink that sends records with a sarama async producer and collects every
// success and error, so Close can account for each record. Send and Close must be called
// from one goroutine (kafkapush's read loop).
type Producer struct {
	client   sarama.Client
	producer sarama.AsyncProducer
	cfg      Config
	start    time.Time

	sent int // records handed to sarama; owned by the goroutine calling Send and Close

	// The collector goroutine owns rep and errs until it closes done.
	closing chan int      // Close tells the collector how many answers to expect
	settled chan struct{} // closed by the collector once every sent record has an answer
	done    chan struct{} // closed when the collector has drained both result channels
	rep     Report
	errs    []string // the first maxErrorsShown rejections, for the error message
}

// SaramaConfig translates Config into a sarama configuration, validating the choices.
func SaramaConfig(c Config) (*sarama.Config, error) {
	clientID := c.ClientID
	if clientID == "" {
		clientID = "kafkapush"
	}
	// events.NewSaramaConfig sets what every Brook client shares: KafkaVersion and the murmur2
	// partitioner, so keyed records go where Brook's services (kit/events), franz-go and the
	// Java client put them and a book's events stay on one partition, in order.
	sc := events.NewSaramaConfig(clientID)
	sc.Net.DialTimeout = DialTimeout
	sc.Net.ReadTimeout = requestTimeout + 5*time.Second // longer than Producer.Timeout
	sc.Net.WriteTimeout = requestTimeout
	sc.Metadata.Retry.Max = MetadataRetries
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.Full = false // only the topic we write to
	sc.Producer.Timeout = requestTimeout
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	// Producer.MaxMessageBytes stays at sarama's 1 MiB: it also caps the size of a batch,
	// and a larger batch would be rejected by brokers at Kafka's default message.max.bytes.
	// A single record above it is reported as rejected (naming its line).
	switch c.Acks {
	case "all", "-1", "":
		sc.Producer.RequiredAcks = sarama.WaitForAll
		// Idempotence keeps records in line order even when a batch is retried.
		sc.Producer.Idempotent = true
		sc.Net.MaxOpenRequests = 1
	case "1":
		sc.Producer.RequiredAcks = sarama.WaitForLocal
		sc.Net.MaxOpenRequests = 1 // keep line order on retries
	case "0":
		sc.Producer.RequiredAcks = sarama.NoResponse
	default:
		return nil, fmt.Errorf("--acks %q: want all, 1 or 0", c.Acks)
	}
	switch c.Compression {
	case "none", "":
		sc.Producer.Compression = sarama.CompressionNone
	case "gzip":
		sc.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		sc.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		sc.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		sc.Producer.Compression = sarama.CompressionZSTD
	default:
		return nil, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if c.Partition >= 0 {
		sc.Producer.Partitioner = sarama.NewManualPartitioner
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("producer configuration: %w", err)
	}
	return sc, nil
}

// NewProducer connects to the brokers and checks that the topic (and partition, when one
// is forced) exists. An unreachable broker fails here, within a few seconds, with an
// error naming the addresses.
func NewProducer(ctx context.Context, c Config) (*Producer, error) {
	sc, err := SaramaConfig(c)
	if err != nil {
		return nil, err
	}
	addrs := strings.Join(c.Brokers, ",")
	client, err := NewClient(ctx, c.Brokers, sc)
	if err != nil {
		return nil, Unreachable(c.Brokers, err)
	}
	if c.Topic == "" {
		return newProducer(client, c)
	}
	// The first metadata request is where a dead address shows up (sarama does not fetch
	// metadata in NewClient when Metadata.Full is off).
	parts, err := client.Partitions(c.Topic)
	if err != nil {
		_ = client.Close()
		switch {
		case errors.Is(err, sarama.ErrOutOfBrokers):
			return nil, Unreachable(c.Brokers, err)
		case errors.Is(err, sarama.ErrUnknownTopicOrPartition):
			return nil, fmt.Errorf("topic %q does not exist on %s and the broker did not create it: %w", c.Topic, addrs, err)
		}
		return nil, fmt.Errorf("topic %q on %s: %w", c.Topic, addrs, err)
	}
	if c.Partition >= 0 && int(c.Partition) >= len(parts) {
		_ = client.Close()
		return nil, fmt.Errorf("-p %d: topic %q has %d partitions (0-%d)", c.Partition, c.Topic, len(parts), len(parts)-1)
	}
	return newProducer(client, c)
}

// newProducer starts the async producer and its collector on a connected client.
func newProducer(client sarama.Client, c Config) (*Producer, error) {
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("producer for %s: %w", strings.Join(c.Brokers, ","), err)
	}
	p := &Producer{
		client:   client,
		producer: ap,
		cfg:      c,
		start:    time.Now(),
		closing:  make(chan int, 1),
		settled:  make(chan struct{}),
		done:     make(chan struct{}),
		rep:      Report{Topic: c.Topic, NoOffsets: c.Acks == "0"},
	}
	go p.collect()
	return p, nil
}

// EnvBrokers is the environment variable shared by every Brook process for the broker list.
const EnvBrokers = "BROOK_KAFKA_BROKERS"

// Unreachable is the error for brokers that could not be reached, naming the addresses and
// how to change them.
func Unreachable(brokers []string, err error) error {
	return fmt.Errorf("cannot reach Kafka at %s (set with -b or %s): %w", strings.Join(brokers, ","), EnvBrokers, err)
}

// NewClient runs sarama.NewClient (which blocks on dialing) but gives up when ctx ends.
func NewClient(ctx context.Context, brokers []string, sc *sarama.Config) (sarama.Client, error) {
	type result struct {
		c   sarama.Client
		err error
	}
	ch := make(chan result, 1)
	// Owned here: it ends by itself within the dial/metadata bounds above; when ctx wins
	// the race, the late client is closed by the goroutine itself.
	go func() {
		c, err := sarama.NewClient(brokers, sc)
		select {
		case ch <- result{c, err}:
		default:
		}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// collect accounts for every success and error until the producer closes both channels,
// and closes settled once the count Close asked for is reached.
func (p *Producer) collect() {
	defer close(p.done)
	target, isSettled := -1, false
	check := func() {
		if !isSettled && target >= 0 && p.rep.Records+p.rep.Rejected >= target {
			close(p.settled)
			isSettled = true
		}
	}
	defer func() {
		if !isSettled {
			close(p.settled)
		}
	}()
	closing := p.closing
	succ, errs := p.producer.Successes(), p.producer.Errors()
	for succ != nil || errs != nil {
		select {
		case n := <-closing:
			target, closing = n, nil
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			p.rep.Records++
			p.rep.Bytes += int64(encLen(m.Key) + encLen(m.Value))
			p.rep.add(m.Topic, m.Partition, m.Offset)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			p.rep.Rejected++
			if len(p.errs) < maxErrorsShown {
				p.errs = append(p.errs, describe(e))
			}
		}
		check()
	}
}

func describe(e *sarama.ProducerError) string {
	if name, ok := e.Msg.Metadata.(string); ok && name != "" {
		return fmt.Sprintf("%s: %v", name, e.Err)
	}
	return e.Err.Error()
}

func encLen(e sarama.Encoder) int {
	if e == nil {
		return 0
	}
	return e.Length()
}

// Send queues rec for its topic (else the configured one) and the configured partition.
func (p *Producer) Send(ctx context.Context, rec Record) error {
	topic := p.cfg.Topic
	if rec.Topic != "" {
		topic = rec.Topic
	}
	msg := &sarama.ProducerMessage{
		Topic:    topic,
		Value:    sarama.ByteEncoder(rec.Value),
		Metadata: rec.name(),
	}
	if rec.Key != nil {
		msg.Key = sarama.ByteEncoder(rec.Key)
	}
	if p.cfg.Partition >= 0 {
		msg.Partition = p.cfg.Partition
	}
	for _, h := range rec.Headers {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: []byte(h.Value)})
	}
	select {
	case p.producer.Input() <- msg:
		p.sent++
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close flushes, waits for every result and reports. The error lists up to five rejected
// records and how many there were in all.
//
// It first waits until sarama has answered for every record sent, and only then shuts the
// producer down: sarama fails records that are being retried (e.g. after a first "broker
// not connected") with ErrShuttingDown when AsyncClose comes in the middle of the retry.
// Every record does get an answer, after at most Producer.Retry.Max bounded attempts.
func (p *Producer) Close() (Report, error) {
	p.closing <- p.sent
	<-p.settled
	p.producer.AsyncClose()
	<-p.done // from here on the collector is gone: rep and errs are ours
	cerr := p.client.Close()
	rep := p.rep
	rep.Duration = time.Since(p.start)
	var err error
	if rep.Rejected > 0 {
		more := ""
		if rep.Rejected > len(p.errs) {
			more = fmt.Sprintf(" (first %d shown)", len(p.errs))
		}
		err = fmt.Errorf("%d %s rejected%s:\n  %s", rep.Rejected, Plural(rep.Rejected, "record"), more, strings.Join(p.errs, "\n  "))
	}
	if cerr != nil && !errors.Is(cerr, sarama.ErrClosedClient) {
		err = errors.Join(err, fmt.Errorf("closing Kafka client: %w", cerr))
	}
	return rep, err
}
