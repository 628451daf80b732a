// Package events publishes and consumes CloudEvents on Kafka with IBM/sarama.
//
// Envelope: CloudEvents 1.0 in the Kafka protocol binding. The Publisher writes binary mode
// (ce_* headers, content-type, value = data); Decode and the Consumer also accept structured
// mode (a JSON CloudEvent as the value), so a line pushed by any Kafka client is enough.
// EncodeBinary, EncodeStructured and Decode are pure functions shared with tools/kafkapush.
//
// Delivery: the Publisher waits for acks=all with sarama's idempotent producer. The Consumer
// runs a consumer group, handles each partition in order (partitions concurrently), marks an
// offset only after the handler returned nil or the record was dead-lettered, and commits only
// marked offsets: at-least-once. Errors wrapped with Retryable are retried with exponential
// backoff; undecodable records and exhausted retries go to the dead-letter topic
// ("<group>.dlq" by default) with dlq_* headers naming where they came from and why.
//
// Tracking: request id and W3C traceparent travel as the ce_requestid / ce_traceparent
// extensions; Publish copies them from the context (kit/track) and the Consumer restores them
// into the handler's context, so producer and consumer log lines share them. The Consumer logs
// one "DONE" line per handled event (ConsumerOptions.EventLogLevel, debug by default) with that
// context, and a STATS line per StatsInterval.
//
// Sarama clients must talk a Kafka version the broker supports; KafkaVersion is the one used
// here and works with both real Kafka (>= 3.6) and the embedded kfake broker.
package events
