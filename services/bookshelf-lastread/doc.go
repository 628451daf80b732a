// Command bookshelf-lastread is the read side of the bookshelf (CQRS): a view of the last books
// read, projected from the events on the Kafka topic "bookshelf" and served over gRPC
// (BookshelfLastRead.ListLastRead) and REST (GET /v1/last-read?limit=N).
//
// Exactly-once effects: the view and the consumed offset of each partition are written in one
// bbolt transaction (kit/store.ViewStore), so events redelivered after a crash or a rebalance
// are recognised and skipped. At start, a catch-up replays the topic from the view's own
// checkpoints, so a fresh or lost data dir is refilled from Kafka.
//
// Usage:
//
//	bookshelf-lastread [--config config.yaml] [--key value ...]   serve (the default)
//	bookshelf-lastread rebuild [--config config.yaml]               clear the view, replay the topic
//
// A running instance is rebuilt with POST /mgmt/rebuild (Authorization: Bearer <admin token>).
// Settings: see config.yaml; every key is also a flag and a BROOK_* environment variable.
package main
