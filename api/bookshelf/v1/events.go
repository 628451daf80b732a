package bookshelfv1

import "google.golang.org/protobuf/proto"

// Names that proto cannot express as constants: the Kafka topic, the
// CloudEvents types and sources of the bookshelf events, and the Consul
// service names. They are public contracts (see ARCHITECTURE.md); change them
// only together with every producer and consumer.

// Topic is the Kafka topic carrying every bookshelf event. The record key is
// the book id, so all events about one book stay in order on one partition.
const Topic = "bookshelf"

// CloudEvents types of the bookshelf events. The data of each is the message
// of the same name in events.proto, encoded as JSON with protojson.
const (
	TypeBookAdded   = "bookshelf.book.added.v1"   // data: BookAdded
	TypeBookRead    = "bookshelf.book.read.v1"    // data: BookRead
	TypeBookRemoved = "bookshelf.book.removed.v1" // data: BookRemoved
)

// DataContentType is the CloudEvents datacontenttype of the event data.
const DataContentType = "application/json"

// CloudEvents sources (URI references naming the producer). Consumers must
// not depend on the source; it is there for tracing where an event came from.
const (
	SourceCommands  = "/brook/bookshelf-commands" // events of the BookshelfCommands aggregate
	SourceKafkaPush = "/brook/kafkapush"          // test events pushed by tools/kafkapush
)

// Consul service names, also used as the service name in logs and metrics.
const (
	ServiceCommands = "bookshelf-commands"
	ServiceLastRead = "bookshelf-lastread"
	ServiceGateway  = "gateway"
)

// Idempotency keys travel in this HTTP header on REST and in this gRPC
// metadata entry on gRPC. grpc-gateway does not forward the header by itself:
// the REST mux must map HeaderIdempotencyKey to MetadataIdempotencyKey.
const (
	HeaderIdempotencyKey   = "Idempotency-Key"
	MetadataIdempotencyKey = "idempotency-key"
)

// NewEventData returns an empty message for the data of the given CloudEvents
// type, ready for protojson.Unmarshal, and false for a type this package does
// not define. Consumers use it to decode, and tools to validate, event data.
func NewEventData(eventType string) (proto.Message, bool) {
	switch eventType {
	case TypeBookAdded:
		return &BookAdded{}, true
	case TypeBookRead:
		return &BookRead{}, true
	case TypeBookRemoved:
		return &BookRemoved{}, true
	}
	return nil, false
}

// EventTypes lists the CloudEvents types defined here, in a fixed order.
func EventTypes() []string {
	return []string{TypeBookAdded, TypeBookRead, TypeBookRemoved}
}
