package events

import "github.com/IBM/sarama"

// KafkaVersion is the protocol version every sarama client in Brook announces. 3.6 is
// supported by the embedded kfake broker (kit/kafkatest, tools/devstack) and by the
// apache/kafka image in deploy/compose, and enables the idempotent producer and
// consumer-group features kit/events relies on.
var KafkaVersion = sarama.V3_6_0_0
