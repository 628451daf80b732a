package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// Lag while no partitions are held. A running consumer knows its lag from the records it is
// fetched (high watermark minus the offset handled); a stopped, starting or failed one holds
// no partition, yet that is when lag matters most ("how much piled up while it was stopped?").
// Then Status asks the Run goroutine's prober for the group's lag as the broker sees it: the
// high watermark of each partition of the topics minus the group's committed offset there.
const (
	// lagRefresh is the least time between two probes; Status reports the cached value in
	// between, so polling /mgmt/streams costs the broker at most one probe per lagRefresh.
	lagRefresh = 3 * time.Second
	// lagStatusWait is how long Status waits for a probe it asked for before it reports the
	// last known value (the next call sees the new one).
	lagStatusWait = 300 * time.Millisecond
	// lagProbeTimeout bounds each network step of a probe (dial, request) and the whole probe.
	lagProbeTimeout = 2 * time.Second
)

// requestLagLocked returns a channel closed when a fresh offline lag is known, asking the prober
// for one if the cached value is older than lagRefresh; nil if the cache is fresh or no Run
// (hence no prober) is active. c.mu must be held.
func (c *Consumer) requestLagLocked(now time.Time) <-chan struct{} {
	if !c.running || now.Sub(c.lagAt) < lagRefresh {
		return nil
	}
	if c.lagWait == nil {
		c.lagWait = make(chan struct{})
		select {
		case c.lagReq <- struct{}{}:
		default: // already queued
		}
	}
	return c.lagWait
}

// lagProber answers lag requests until ctx ends. It is owned by Run, which waits for it.
func (c *Consumer) lagProber(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.lagReq:
		}
		lag, err := c.probeLag(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Debug("could not measure the group's lag; reporting the last known value", "err", err)
		}
		c.mu.Lock()
		if err == nil {
			c.lagVal = lag
		}
		c.lagAt = time.Now()
		if c.lagWait != nil {
			close(c.lagWait)
			c.lagWait = nil
		}
		c.mu.Unlock()
	}
}

// endLagProbesLocked releases Status calls waiting for a probe when Run ends. c.mu must be held.
func (c *Consumer) endLagProbesLocked() {
	if c.lagWait != nil {
		close(c.lagWait)
		c.lagWait = nil
	}
	select {
	case <-c.lagReq:
	default:
	}
}

// probeLag sums, over every partition of the consumer's topics, the high watermark minus the
// group's committed offset. A partition without a committed offset counts from where the group
// would start (InitialOffset): all retained records for OffsetOldest, none for OffsetNewest.
func (c *Consumer) probeLag(ctx context.Context) (int64, error) {
	deadline := time.Now().Add(lagProbeTimeout)
	step := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("lag probe took too long")
		}
		return nil
	}
	cfg := NewSaramaConfig(c.o.Name + "-lag")
	cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = lagProbeTimeout, lagProbeTimeout, lagProbeTimeout
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false
	client, err := sarama.NewClient(c.o.Brokers, cfg)
	if err != nil {
		return 0, fmt.Errorf("lag of %s: connect: %w", c.o.Group, err)
	}
	defer client.Close()

	parts := make(map[string][]int32, len(c.o.Topics))
	for _, t := range c.o.Topics {
		if err := step(); err != nil {
			return 0, err
		}
		ps, err := client.Partitions(t)
		if err != nil {
			return 0, fmt.Errorf("lag of %s: partitions of %s: %w", c.o.Group, t, err)
		}
		parts[t] = ps
	}
	if err := step(); err != nil {
		return 0, err
	}
	coord, err := client.Coordinator(c.o.Group)
	if err != nil {
		return 0, fmt.Errorf("lag of %s: coordinator: %w", c.o.Group, err)
	}
	committed, err := coord.FetchOffset(sarama.NewOffsetFetchRequest(cfg.Version, c.o.Group, parts))
	if err != nil {
		return 0, fmt.Errorf("lag of %s: committed offsets: %w", c.o.Group, err)
	}
	switch gerr := committed.GroupError(); gerr {
	case sarama.ErrNoError:
	case sarama.ErrGroupIDNotFound: // never committed (kfake says so; Kafka answers -1 offsets)
		committed = &sarama.OffsetFetchResponse{}
	default:
		return 0, fmt.Errorf("lag of %s: committed offsets: %w", c.o.Group, gerr)
	}
	var lag int64
	for t, ps := range parts {
		for _, p := range ps {
			if err := step(); err != nil {
				return 0, err
			}
			high, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return 0, fmt.Errorf("lag of %s: end of %s/%d: %w", c.o.Group, t, p, err)
			}
			from := int64(-1)
			if b := committed.GetBlock(t, p); b != nil && b.Err == sarama.ErrNoError {
				from = b.Offset
			}
			if from < 0 {
				if c.o.InitialOffset == sarama.OffsetNewest {
					continue
				}
				if from, err = client.GetOffset(t, p, sarama.OffsetOldest); err != nil {
					return 0, fmt.Errorf("lag of %s: start of %s/%d: %w", c.o.Group, t, p, err)
				}
			}
			lag += max(high-from, 0)
		}
	}
	return lag, nil
}
