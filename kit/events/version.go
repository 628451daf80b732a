package events

import "github.com/IBM/sarama"

// KafkaVersion is the protocol version every sarama client in Brook announces. 3.6 is
// supported by the embedded kfake broker (kit/kafkatest, tools/devstack) and by the
// apache/kafka image in deploy/compose, and enables the idempotent producer and
// consumer-group features kit/events relies on.
var KafkaVersion = sarama.V3_6_0_0

// Partitioner chooses a record's partition from its key exactly as the Java client and
// franz-go's default partitioner do (murmur2), so every producer of a key — services, kafkapush,
// kcat with -X partitioner=murmur2_random — writes it to the same partition and per-key order
// holds whichever client published.
var Partitioner sarama.PartitionerConstructor = sarama.NewMurmur2Partitioner

// NewSaramaConfig returns the base sarama configuration Brook clients share: KafkaVersion, the
// murmur2 partitioner and the client id. Callers add producer or consumer settings on top.
func NewSaramaConfig(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = KafkaVersion
	cfg.Producer.Partitioner = Partitioner
	if clientID != "" {
		cfg.ClientID = clientID
	}
	return cfg
}
