package lastread

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/store"
)

// batchSize is how many records a catch-up commits per bbolt transaction: one fsync per batch
// instead of per record (one store.ViewStore.ApplyBatch; see BenchmarkViewBatch100 in kit/store).
const batchSize = 500

// CatchUpStats tells what a catch-up did.
type CatchUpStats struct {
	Read, Applied, Duplicates, Ignored, Bad int
	Took                                    time.Duration
}

func (s *CatchUpStats) add(o CatchUpStats) {
	s.Read += o.Read
	s.Applied += o.Applied
	s.Duplicates += o.Duplicates
	s.Ignored += o.Ignored
	s.Bad += o.Bad
}

// CatchUp brings the view up to the end of topic as it is now, reading every partition
// directly (no consumer group) from the view's own checkpoint + 1, or from the oldest record
// when the view has none. Run it before starting the consumer group: the group then resumes
// from its committed offset and the store skips whatever catch-up already applied.
//
// Why: the view store, not the group's committed offsets, is the truth about what is in the
// view. A lost or fresh data dir (a new replica, a deleted volume) or a Reset (rebuild) is
// therefore refilled from the topic even though the group committed past those records.
//
// Records the view cannot decode are counted and skipped here: the live consumer dead-letters
// them when it reaches them (or already did), so they are never dropped silently.
func CatchUp(ctx context.Context, brokers []string, topic string, p *Projection, logger *slog.Logger) (CatchUpStats, error) {
	start := time.Now()
	var st CatchUpStats
	cfg := events.NewSaramaConfig(p.service + "-catchup")
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond // don't linger at the end of a partition
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return st, fmt.Errorf("lastread: catch-up: connect: %w", err)
	}
	defer client.Close()

	parts, err := client.Partitions(topic)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		logger.InfoContext(ctx, "catch-up: topic does not exist yet, nothing to replay", "topic", topic)
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("lastread: catch-up: partitions of %s: %w", topic, err)
	}
	cps, err := p.views.Checkpoints(topic)
	if err != nil {
		return st, fmt.Errorf("lastread: catch-up: %w", err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return st, fmt.Errorf("lastread: catch-up: %w", err)
	}
	defer consumer.Close()

	// Partitions are read concurrently (bbolt still serialises the writes); the first error
	// cancels the others.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, part := range parts {
		wg.Go(func() {
			var ps CatchUpStats
			err := p.catchUpPartition(ctx, client, consumer, topic, part, cps, &ps)
			mu.Lock()
			defer mu.Unlock()
			st.add(ps)
			if err != nil {
				errs = append(errs, err)
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	logger.InfoContext(ctx, "catch-up done", "topic", topic, "read", st.Read, "applied", st.Applied,
		"duplicates", st.Duplicates, "ignored", st.Ignored, "bad", st.Bad, "took", st.Took)
	return st, nil
}

func (p *Projection) catchUpPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer,
	topic string, part int32, cps map[int32]int64, st *CatchUpStats) error {
	oldest, err := client.GetOffset(topic, part, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("lastread: catch-up: oldest offset of %s/%d: %w", topic, part, err)
	}
	end, err := client.GetOffset(topic, part, sarama.OffsetNewest) // the high watermark, exclusive
	if err != nil {
		return fmt.Errorf("lastread: catch-up: newest offset of %s/%d: %w", topic, part, err)
	}
	from := oldest
	if cp, ok := cps[part]; ok && cp+1 > from {
		from = cp + 1
	}
	if from >= end {
		return nil
	}
	pc, err := consumer.ConsumePartition(topic, part, from)
	if err != nil {
		return fmt.Errorf("lastread: catch-up: consume %s/%d from %d: %w", topic, part, from, err)
	}
	defer pc.Close()

	offsets := make([]int64, 0, batchSize)
	changes := make([]Change, 0, batchSize)
	flush := func() error {
		if len(offsets) == 0 {
			return nil
		}
		applied, err := p.views.ApplyBatch(ctx, topic, part, offsets, func(tx *store.ViewTx, from int) error {
			return applyChanges(tx, changes[from:])
		})
		dup := len(offsets) - applied
		offsets, changes = offsets[:0], changes[:0]
		if err != nil {
			return fmt.Errorf("lastread: catch-up %s/%d: %w", topic, part, err)
		}
		st.Applied += applied
		st.Duplicates += dup
		replayed.WithLabelValues("applied").Add(float64(applied))
		replayed.WithLabelValues("duplicate").Add(float64(dup))
		return nil
	}

	// The end is the high watermark read above. A gap at the very end of the log (a
	// transaction marker) would never be delivered, so an idle partition also ends the read.
	idle := time.NewTimer(idleEnd)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("lastread: catch-up %s/%d: %w", topic, part, ctx.Err())
		case cerr := <-pc.Errors():
			return fmt.Errorf("lastread: catch-up %s/%d: %w", topic, part, cerr)
		case <-idle.C:
			p.logger.WarnContext(ctx, "catch-up: partition idle before its end offset, stopping there",
				"topic", topic, "partition", part, "end", end)
			return flush()
		case msg := <-pc.Messages():
			idle.Reset(idleEnd)
			st.Read++
			ch, err := interpretRecord(msg, p.now())
			switch {
			case err != nil:
				st.Bad++
				replayed.WithLabelValues("bad").Inc()
				p.logger.DebugContext(ctx, "catch-up: skipping a bad record (the live consumer dead-letters it)",
					"topic", topic, "partition", part, "offset", msg.Offset, "error", err)
			case ch.Kind == Ignore:
				st.Ignored++
				replayed.WithLabelValues("ignored").Inc()
			default:
				offsets = append(offsets, msg.Offset)
				changes = append(changes, ch)
			}
			last := msg.Offset >= end-1
			if len(offsets) >= batchSize || last {
				if err := flush(); err != nil {
					return err
				}
			}
			if last {
				return nil
			}
		}
	}
}

// idleEnd is how long a partition may stay silent before catch-up assumes it reached the end.
const idleEnd = 10 * time.Second

// interpretRecord decodes a raw record the way kit/events' consumer does, then Interpret.
func interpretRecord(msg *sarama.ConsumerMessage, now time.Time) (Change, error) {
	ev, err := events.DecodeMessage(msg)
	if err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	return Interpret(ev, now)
}
