// Package kafka runs the embedded Kafka-protocol broker of devstack: a single
// kfake broker on a fixed address, persistent in a data directory, with the
// platform's topics created on first start (and re-created if missing).
package kafka

import (
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Options configure the broker.
type Options struct {
	Host    string           // listen host, e.g. "127.0.0.1"
	Port    int              // listen port, e.g. 9092
	DataDir string           // persistent state; reused across restarts
	Topics  map[string]int32 // topic -> partitions, created if absent
	// AutoCreatePartitions is the partition count of topics created
	// implicitly by clients (auto.create.topics.enable, as in Kafka's default).
	AutoCreatePartitions int
	SyncWrites           bool      // fsync every produced batch
	Log                  io.Writer // broker warnings and errors; nil = discard
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// Start starts the broker and makes sure every topic of o.Topics exists.
func Start(o Options) (*Broker, error) {
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.Port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			// kfake always asks for 127.0.0.1; honour the configured host.
			return net.Listen(network, addr)
		}),
		kfake.ClusterID("brook-devstack"),
		kfake.DataDir(o.DataDir),
		kfake.AllowAutoTopicCreation(),
	}
	if o.AutoCreatePartitions > 0 {
		opts = append(opts, kfake.DefaultNumPartitions(o.AutoCreatePartitions))
	}
	if o.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if o.Log != nil {
		opts = append(opts, kfake.WithLogger(kfake.BasicLogger(o.Log, kfake.LogLevelWarn)))
	}
	for t, p := range o.Topics {
		opts = append(opts, kfake.SeedTopics(p, t)) // used only when DataDir is new
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start broker on %s (data %s): %w", addr, o.DataDir, err)
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0]}
	// State loaded from an existing data dir skips the seeds: create what is missing.
	for t, p := range o.Topics {
		if c.TopicInfo(t) != nil {
			continue
		}
		if err := c.CreateTopic(t, p, nil); err != nil {
			c.Close()
			return nil, fmt.Errorf("kafka: create topic %s: %w", t, err)
		}
	}
	return b, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Partitions returns the partition count of topic (0 if it does not exist).
func (b *Broker) Partitions(topic string) int {
	return len(b.cluster.PartitionInfos(topic))
}

// Close stops the broker and writes its state to the data dir.
func (b *Broker) Close() { b.cluster.Close() }
