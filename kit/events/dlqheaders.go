package events

// Headers the Consumer adds to a dead letter, next to the original record's own headers (which
// it keeps, with its key and value). Tools reading a dead-letter topic (tools/kafkapush dlq)
// use these names; a replay drops every header starting with DLQHeaderPrefix.
const (
	HeaderDLQTopic     = "dlq_topic"     // topic the record was consumed from
	HeaderDLQPartition = "dlq_partition" // its partition, decimal
	HeaderDLQOffset    = "dlq_offset"    // its offset, decimal
	HeaderDLQError     = "dlq_error"     // why the consumer gave up (after N attempts: ...)
	HeaderDLQService   = "dlq_service"   // ConsumerOptions.Service of the consumer that gave up
	HeaderDLQTime      = "dlq_time"      // when, RFC 3339 with nanoseconds, UTC
	DLQHeaderPrefix    = "dlq_"          // prefix of all of the above (and of any added later)
)
